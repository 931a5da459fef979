"""Resolving merge fields: which value ``${Accounts.Account Name}`` means for a given record.

Binding (which field of which reachable record) depends only on the webhook's module and the
organization's metadata; values depend on the record. Both follow seed 003: a deleted, disabled
or unknown field, a deleted lookup, or a module the webhook cannot reach is ``${Unsupported_Field}``.
"""
import uuid
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from config.caches import VersionedCache
from crm.field_types import kind_of
from crm.formats import format_datetime
from crm.models import CrmUser, Field, Module, Organization, Record, SystemField
from crm.selectors import records_related
from dispatcher.rendering.template import MergeField

USER_MODULE_NAMES = frozenset({"User", "Users", "Owner"})
ORGANIZATION_MODULE_NAMES = frozenset({"Organization", "Org", "Company"})
USER_FIELDS: dict[str, str] = {
    "First Name": "first_name", "Last Name": "last_name", "Full Name": "full_name", "Name": "full_name",
    "Email": "email", "Mobile": "mobile", "Phone": "phone", "Role": "role",
}
ORGANIZATION_FIELDS: dict[str, str] = {
    "Name": "name", "Company Name": "name", "Phone": "phone", "Website": "website", "Street": "street",
    "City": "city", "Country": "country", "Currency": "currency_code", "Time Zone": "time_zone",
}
RELATED_RECORDS_LIMIT = 100  # a related list in one request; more would make payloads unbounded


@dataclass(frozen=True, slots=True)
class Unsupported:
    reason: str


@dataclass(frozen=True, slots=True)
class OnRecord:
    field: Field


@dataclass(frozen=True, slots=True)
class OnLookup:
    via: Field  # lookup field of the webhook's module
    field: Field


@dataclass(frozen=True, slots=True)
class OnRelated:
    via: Field  # lookup field of the related module, pointing at the webhook's module
    field: Field


@dataclass(frozen=True, slots=True)
class OnOwner:
    attribute: str


@dataclass(frozen=True, slots=True)
class OnOrganization:
    attribute: str


Binding = Unsupported | OnRecord | OnLookup | OnRelated | OnOwner | OnOrganization


class Schema:
    """The organization's modules and fields, loaded in two queries, seen from one webhook module."""

    def __init__(self, module: Module) -> None:
        self.module = module
        modules = list(Module.objects.filter(organization_id=module.organization_id))
        self._modules_by_name: dict[str, Module] = {}
        for candidate in modules:
            for name in candidate.merge_names:
                self._modules_by_name.setdefault(name, candidate)
        self._fields: dict[int, list[Field]] = {candidate.pk: [] for candidate in modules}
        for field in Field.objects.filter(module__organization_id=module.organization_id).order_by("position", "id"):
            self._fields[field.module_id].append(field)
        self._bindings: dict[MergeField, Binding] = {}
        # What renderers compile against this metadata (a parameter's template and binding), by their key:
        # every render of the version shares it (dispatcher/rendering/request.py).
        self.compiled: dict[Hashable, Any] = {}

    def binding(self, merge_field: MergeField) -> Binding:
        """bind(), kept: it depends only on this metadata, so every render of the version shares it."""
        try:
            return self._bindings[merge_field]
        except KeyError:
            binding = self._bindings[merge_field] = self.bind(merge_field)
            return binding

    def fields(self, module: Module) -> list[Field]:
        return self._fields[module.pk]

    def bind(self, merge_field: MergeField) -> Binding:
        name, label = merge_field.module, merge_field.label
        if name in self.module.merge_names:
            return self._field_binding(self.module, label, OnRecord)
        if name in USER_MODULE_NAMES:
            return OnOwner(USER_FIELDS[label]) if label in USER_FIELDS else Unsupported(f"User has no field “{label}”")
        if name in ORGANIZATION_MODULE_NAMES:
            if label in ORGANIZATION_FIELDS:
                return OnOrganization(ORGANIZATION_FIELDS[label])
            return Unsupported(f"Organization has no field “{label}”")
        target = self._modules_by_name.get(name)
        if target is None:
            return Unsupported(f"there is no module “{name}”")
        lookups = [f for f in self.fields(self.module) if kind_of(f).links_records and f.lookup_module_id == target.pk]
        if lookups:
            live = [f for f in lookups if f.is_usable]
            if not live:
                return Unsupported(f"the lookup field “{lookups[0].label}” to {target.api_name} is deleted or disabled")
            return self._field_binding(target, label, lambda field: OnLookup(live[0], field))
        backlinks = [f for f in self.fields(target) if kind_of(f).links_records and f.lookup_module_id == self.module.pk]
        live = [f for f in backlinks if f.is_usable]
        if live:
            return self._field_binding(target, label, lambda field: OnRelated(live[0], field))
        return Unsupported(f"{target.api_name} fields are not available for {self.module.api_name} webhooks")

    def _field_binding(self, module: Module, label: str, make) -> Binding:
        candidates = [f for f in self.fields(module) if f.label == label]
        for spelling in [] if candidates else self._label_aliases(module, label):
            if candidates := [f for f in self.fields(module) if f.label == spelling]:
                break
        live = [f for f in candidates if not f.is_deleted]
        if not candidates:
            return Unsupported(f"{module.api_name} has no field “{label}”")
        if not live:
            return Unsupported(f"the field “{module.api_name}.{label}” is deleted")
        if live[0].is_disabled:
            return Unsupported(f"the field “{module.api_name}.{label}” is disabled")
        return make(live[0])

    def _label_aliases(self, module: Module, label: str) -> list[str]:
        """Zoho's older spellings, which people copy from its documentation (seed 003): a label that starts with
        a module alias (``Potential Name``, ``Potential Owner`` for a Deal's) and ``Name`` for the field that
        names a record (``${Account.Name}``). Used only when no field has the label as written."""
        spellings = [module.singular_label + label[len(alias):] for alias in sorted(module.merge_names)
                     if alias != module.singular_label and label.startswith(alias + " ")]
        if label == "Name":
            spellings += [f.label for f in self.fields(module) if f.api_name == module.name_field]
        return spellings


SCHEMA_CACHE_SIZE = 512  # webhook modules whose metadata a worker keeps; far more than an organization has
_schemas: VersionedCache[int, Schema] = VersionedCache("merge-field schemas", size=SCHEMA_CACHE_SIZE)


def schema_for(module: Module, *, version: uuid.UUID | None = None) -> Schema:
    """The module's Schema, built once per metadata version of its organization (see crm.schema_changed).

    Pass the organization's schema_version when it is at hand (the engine's loader reads it with the delivery);
    otherwise it costs one small query.
    """
    if version is None:
        version = Organization.objects.values_list("schema_version", flat=True).get(pk=module.organization_id)
    return _schemas.get(module.pk, version, lambda: Schema(module))


class MergeContext:
    """Values of merge fields for one record, formatted the way the webhook asks."""

    def __init__(self, *, schema: Schema, record: Record, organization: Organization,
                 date_format: str, datetime_format: str, time_zone: str) -> None:
        self.schema = schema
        self.record = record
        self.organization = organization
        self.date_format = date_format
        self.datetime_format = datetime_format
        self.time_zone = time_zone
        self._records: dict[int, Record | None] = {record.pk: record}
        self._users: dict[int, CrmUser | None] = {record.owner_id: record.owner}
        self._related: dict[int, list[Record]] = {}

    def binding(self, merge_field: MergeField) -> Binding:
        return self.schema.binding(merge_field)

    def related_records(self, via: Field) -> list[Record]:
        if via.pk not in self._related:
            self._related[via.pk] = records_related(record=self.record, via_field=via, limit=RELATED_RECORDS_LIMIT)
        return self._related[via.pk]

    def value(self, merge_field: MergeField, related: Record | None = None) -> Any:
        """The value of a merge field; for a related-module field, its value on the given related record."""
        binding = self.binding(merge_field)
        if type(binding) is OnRecord:
            return self.field_value(self.record, binding.field)
        if isinstance(binding, OnLookup):
            target = self.record_of(self.record.values.get(binding.via.api_name))
            return self.field_value(target, binding.field) if target else None
        if isinstance(binding, OnRelated):
            if related is not None:
                return self.field_value(related, binding.field)
            return [self.field_value(item, binding.field) for item in self.related_records(binding.via)]
        if isinstance(binding, OnOwner):
            return getattr(self.record.owner, binding.attribute)
        if isinstance(binding, OnOrganization):
            return getattr(self.organization, binding.attribute)
        return binding  # Unsupported

    def field_value(self, record: Record, field: Field) -> Any:
        if field.is_system:
            if field.api_name == SystemField.ID:
                return record.pk
            if field.api_name == SystemField.OWNER:
                return record.owner.full_name
            stamp = record.created_at if field.api_name == SystemField.CREATED_TIME else record.modified_at
            return format_datetime(stamp, self.datetime_format, self.time_zone)
        raw = record.values.get(field.api_name)
        return None if raw is None else kind_of(field).render(raw, self)

    def record_of(self, pk: Any) -> Record | None:
        """A looked-up record, fetched once per rendering."""
        if pk is None:
            return None
        if pk not in self._records:
            self._records[pk] = Record.objects.select_related("module").filter(pk=pk).first()
        return self._records[pk]

    def user_of(self, pk: Any) -> CrmUser | None:
        if pk not in self._users:
            self._users[pk] = CrmUser.objects.filter(pk=pk).first()
        return self._users[pk]
