"""CRM data: organizations and their editions, users, module metadata and records, API keys. One module per
concept; every model and helper is re-exported here, so ``from crm.models import X`` is the way in."""
from crm.models.api_keys import (
    DEFAULT_API_SCOPES, ApiAddressWindow, ApiKey, ApiKeyQuerySet, ApiKeyWindow, ApiOrganizationWindow, ApiScope,
    IdempotentRequest, default_api_scopes, validate_api_scopes,
)
from crm.models.modules import (
    Field, FieldQuerySet, FieldType, MetadataQuerySet, Module, ModuleQuerySet, SystemField,
)
from crm.models.organizations import Edition, Organization, schema_changed
from crm.models.records import Record
from crm.models.users import CrmUser

__all__ = [
    "DEFAULT_API_SCOPES", "ApiAddressWindow", "ApiKey", "ApiKeyQuerySet", "ApiKeyWindow", "ApiOrganizationWindow",
    "ApiScope", "CrmUser", "Edition", "Field", "FieldQuerySet", "FieldType", "IdempotentRequest", "MetadataQuerySet",
    "Module", "ModuleQuerySet", "Organization", "Record", "SystemField", "default_api_scopes", "schema_changed",
    "validate_api_scopes",
]
