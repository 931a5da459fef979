"""Writes to CRM data. Every record change goes through here, so values are always valid."""
import datetime
import hashlib
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from crm import events
from crm.counters import counter_increment
from crm.field_types import kind_of
from crm.models import (
    DEFAULT_API_SCOPES, ApiKey, ApiKeyWindow, CrmUser, Edition, Field, FieldType, Module, Organization, Record, SystemField,
    schema_changed, validate_api_scopes,
)
from crm.standard_modules import STANDARD_MODULES



@transaction.atomic
def organization_create(*, name: str, edition: Edition, user_licences: int = 1, **attributes: Any) -> Organization:
    """Create an organization with the standard modules, as a new CRM account starts."""
    organization = Organization(name=name, edition=edition, user_licences=user_licences, **attributes)
    organization.full_clean()
    organization.save()
    modules_install_standard(organization=organization)
    return organization


@transaction.atomic
def modules_install_standard(*, organization: Organization) -> list[Module]:
    """Create the standard modules and fields that are missing; existing ones are left as they are."""
    modules = {module.api_name: module for module in Module.objects.filter(organization=organization)}
    Module.objects.bulk_create(
        Module(organization=organization, api_name=spec.api_name, singular_label=spec.singular, aliases=spec.aliases,
               name_field=spec.name_field, supports_webhooks=spec.supports_webhooks)
        for spec in STANDARD_MODULES if spec.api_name not in modules
    )
    modules = {module.api_name: module for module in Module.objects.filter(organization=organization)}
    fields = [field for module in modules.values() for field in _system_fields(module)]
    for spec in STANDARD_MODULES:
        fields.extend(
            Field(module=modules[spec.api_name], label=f.label, api_name=f.api_name, field_type=f.field_type,
                  lookup_module=modules[f.lookup] if f.lookup else None, picklist_values=list(f.picklist),
                  is_required=f.required, position=position)
            for position, f in enumerate(spec.fields, start=10)
        )
    existing = set(Field.objects.filter(module__organization=organization).values_list("module_id", "api_name"))
    Field.objects.bulk_create(f for f in fields if (f.module_id, f.api_name) not in existing)
    schema_changed([organization.pk])  # bulk_create sends no signals
    return list(modules.values())


def _system_fields(module: Module) -> list[Field]:
    singular = module.singular_label
    return [
        Field(module=module, api_name=api_name, label=label, field_type=field_type, is_system=True, position=position)
        for api_name, label, field_type, position in [
            (SystemField.ID, f"{singular} Id", FieldType.NUMBER, 0),
            (SystemField.OWNER, f"{singular} Owner", FieldType.USER, 1),
            (SystemField.CREATED_TIME, "Created Time", FieldType.DATETIME, 900),
            (SystemField.MODIFIED_TIME, "Modified Time", FieldType.DATETIME, 901),
        ]
    ]


@transaction.atomic
def module_create(
    *, organization: Organization, api_name: str, singular_label: str, name_field: str = "", aliases: str = ""
) -> Module:
    """Create a custom module with its system fields (id, owner, created and modified time)."""
    module = Module(
        organization=organization, api_name=api_name, singular_label=singular_label,
        name_field=name_field, aliases=aliases, is_custom=True,
    )
    module.full_clean()
    module.save()
    Field.objects.bulk_create(_system_fields(module))
    schema_changed([organization.pk])
    return module


def record_clean_values(*, module: Module, values: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    """Check values against the module's fields and return them in their stored form.

    Raises ValidationError keyed by field API name, with a message a person understands.
    """
    fields = {field.api_name: field for field in module.fields.filter(is_system=False)}
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for api_name, raw in values.items():
        field = fields.get(api_name)
        if field is None:
            errors[api_name] = [f"{module.api_name} has no field with API name “{api_name}”."]
            continue
        if not field.is_usable:
            errors[api_name] = [f"The field “{field.label}” is deleted or disabled and cannot be set."]
            continue
        if raw is None or raw == "":
            cleaned[api_name] = None
            continue
        try:
            cleaned[api_name] = kind_of(field).clean(field, raw, module.organization)
        except ValidationError as error:
            errors[api_name] = [f"{field.label}: {message}" for message in error.messages]
    for field in fields.values():
        missing = cleaned.get(field.api_name) is None and (not partial or field.api_name in cleaned)
        if field.is_required and field.is_usable and missing:
            errors.setdefault(field.api_name, []).append(f"{field.label} is required.")
    if errors:
        raise ValidationError(errors)
    return cleaned


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


@transaction.atomic
def record_create(*, module: Module, owner: CrmUser, values: dict[str, Any]) -> Record:
    if owner.organization_id != module.organization_id:
        raise ValidationError({"owner": ["The owner must belong to the record's organization."]})
    cleaned = record_clean_values(module=module, values=values)
    record = Record.objects.create(module=module, owner=owner, values=_drop_empty(cleaned))
    events.announce(events.RecordEvent(record=record, operation=events.CREATE, old_values={},
                                       new_values=dict(record.values)))
    return record


class RecordsInvalid(Exception):
    """Some records of a batch are not valid, so none was created: each one's messages by its position."""

    def __init__(self, errors: dict[str, Any], total: int) -> None:
        super().__init__(f"{len(errors)} of {total} records are not valid; none was created.")
        self.errors = errors


def records_create(*, module: Module, owner: CrmUser, items: list[Any]) -> list[Record]:
    """Create every record or none (the records API's bulk create): one invalid and nothing is kept, neither
    the records made before it nor what their events queued (deliveries of rules and channels), all in one
    transaction. Every item is checked, so RecordsInvalid tells all that is wrong at once."""
    errors: dict[str, Any] = {}
    with transaction.atomic():
        made = []
        for index, values in enumerate(items):
            if not isinstance(values, dict):
                errors[str(index)] = {"__all__": ["Send a JSON object of field values keyed by API name."]}
                continue
            try:
                made.append(record_create(module=module, owner=owner, values=values))
            except ValidationError as error:
                errors[str(index)] = error.message_dict if hasattr(error, "error_dict") else error.messages
        if errors:
            raise RecordsInvalid(errors, total=len(items))  # leaving the block undoes the records made
    return made


@transaction.atomic
def record_update(
    *, record: Record, values: dict[str, Any], owner: CrmUser | None = None, replace: bool = False,
    system: bool = False,
) -> Record:
    """Change values of a record: keys not given keep their value and None clears one; with replace,
    the given values are the whole record. system marks changes the product makes itself (response
    capture), which never fire workflow rules."""
    cleaned = record_clean_values(module=record.module, values=values, partial=not replace)
    # The values as they are now, under a row lock, not as the caller loaded them: a change written
    # meanwhile (another user's edit, a response capture) is kept, and events compare with the truth.
    current = Record.objects.select_for_update(no_key=True).only("values").get(pk=record.pk).values
    old_values = dict(current)
    record.values = _drop_empty(cleaned if replace else {**current, **cleaned})
    if owner is not None:
        if owner.organization_id != record.module.organization_id:
            raise ValidationError({"owner": ["The owner must belong to the record's organization."]})
        record.owner = owner
    record.save()
    events.announce(events.RecordEvent(record=record, operation=events.EDIT, old_values=old_values,
                                       new_values=dict(record.values), system=system))
    return record


@transaction.atomic
def record_delete(*, record: Record) -> None:
    """Delete a record; listeners hear of it first, while the record can still be read."""
    events.announce(events.RecordEvent(record=record, operation=events.DELETE, old_values=dict(record.values),
                                       new_values={}))
    record.delete()


API_KEY_PREFIX = "crm_"


def _api_key_hash(raw: str) -> str:
    # Keys are 256 random bits, so a plain SHA-256 is enough (no need for a slow password hash).
    return hashlib.sha256(raw.encode()).hexdigest()


def api_key_create(*, user: CrmUser, name: str, scopes: list[str] | None = None) -> tuple[ApiKey, str]:
    """A new key for user, with scopes (default: records and channels, as keys had before scopes); the raw key
    is returned once and never stored."""
    raw = API_KEY_PREFIX + secrets.token_urlsafe(32)
    scopes = list(DEFAULT_API_SCOPES) if scopes is None else scopes
    validate_api_scopes(scopes)
    key = ApiKey.objects.create(organization_id=user.organization_id, user=user, name=name, scopes=scopes,
                                prefix=raw[:12], key_hash=_api_key_hash(raw))
    return key, raw


API_KEY_USE_RESOLUTION = datetime.timedelta(minutes=1)  # last_used_at is written at most this often


def api_key_authenticate(*, raw: str) -> ApiKey | None:
    key = ApiKey.objects.active().select_related("organization", "user").filter(key_hash=_api_key_hash(raw)).first()
    now = timezone.now()
    # Not on every call: a busy integration would otherwise add a write to each of its requests.
    if key is not None and (key.last_used_at is None or now - key.last_used_at >= API_KEY_USE_RESOLUTION):
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def api_rate_take(*, key: ApiKey, now: datetime.datetime) -> int | None:
    """Count one call of the key in the current minute: None when it may go, else the seconds until the next
    minute, when it may call again (the 429's Retry-After). One conditional UPDATE decides, whatever the number
    of web processes. Old windows are dropped by ``api_rate_windows_purge`` (hourly, with the log purge)."""
    minute = now.replace(second=0, microsecond=0)
    if counter_increment(ApiKeyWindow, {"key": key, "minute": minute}, below=settings.API_RATE_LIMIT_PER_MINUTE):
        return None
    return max(1, 60 - now.second)


def api_rate_windows_purge(*, now: datetime.datetime) -> int:
    return ApiKeyWindow.objects.filter(minute__lt=now - datetime.timedelta(hours=1)).delete()[0]


def api_key_revoke(*, key: ApiKey) -> None:
    ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


# The roles a staff login can be given, by the name a command line uses: the groups the role migrations create
# (workflows/migrations/0002_roles.py, crm/migrations/0011_record_editor_role.py; their permissions are data,
# changed in the admin).
STAFF_ROLES = {"auditor": "Auditor", "integration-admin": "Integration admin", "record-editor": "Record editor"}


@transaction.atomic
def staff_login_create(*, organization: Organization, roles: list[str], email: str, username: str = "",
                       first_name: str = "", last_name: str = "") -> tuple[Any, str]:
    """A staff login with roles in one organization, in one step: the Django user in the roles' groups, and
    the CRM user that ties it to the organization (an existing one with that e-mail, else a new one). Until
    then an auditor took two pages (Users → group, then CRM users → login). Returns the user and its
    generated password, which is shown once and never stored in clear."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    if not roles or (unknown := [role for role in roles if role not in STAFF_ROLES]):
        raise ValidationError(f"Unknown role “{', '.join(unknown) if roles else ''}”: choose from "
                              f"{', '.join(STAFF_ROLES)}.")
    groups = list(Group.objects.filter(name__in=[STAFF_ROLES[role] for role in roles]))
    if missing := sorted({STAFF_ROLES[role] for role in roles} - {group.name for group in groups}):
        raise ValidationError(f"The group “{', '.join(missing)}” does not exist (deleted in the admin?); the "
                              "role migrations create it.")
    User = get_user_model()
    username = username or email
    if User.objects.filter(username=username).exists():
        raise ValidationError(f"A login named “{username}” exists already.")
    crm_user = CrmUser.objects.filter(organization=organization, email__iexact=email).select_related("user").first()
    if crm_user is not None and crm_user.user is not None:
        raise ValidationError(f"The CRM user {email} of {organization.name} has a login already "
                              f"(“{crm_user.user.get_username()}”).")
    password = secrets.token_urlsafe(12)
    user = User(username=username, email=email, first_name=first_name, last_name=last_name, is_staff=True)
    user.set_password(password)
    user.full_clean()
    user.save()
    user.groups.add(*groups)
    if crm_user is None:
        crm_user = CrmUser(organization=organization, email=email, first_name=first_name,
                           last_name=last_name or email.split("@")[0])
    crm_user.user = user
    crm_user.full_clean()
    crm_user.save()
    return user, password
