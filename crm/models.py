"""CRM data: organizations and their editions, users, module metadata and records."""
import uuid
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from crm.formats import DATE_FORMAT_CHOICES, DATETIME_FORMAT_CHOICES, validate_time_zone

if TYPE_CHECKING:
    from crm.field_types import FieldKind


class Edition(models.Model):
    """A CRM edition: what an organization's plan allows (webhook quota, webhooks per rule)."""

    code = models.SlugField("code", max_length=50, unique=True, help_text="Stable identifier, e.g. 'professional'.")
    name = models.CharField("name", max_length=100, help_text="Shown to admins, e.g. 'Professional Edition'.")
    webhooks_enabled = models.BooleanField(
        "webhooks available", default=True, help_text="Editions without webhooks refuse webhook definitions."
    )
    daily_call_limit = models.PositiveIntegerField(
        "daily call limit", default=10_000, help_text="Most webhook calls an organization may make per local day."
    )
    calls_per_licence = models.PositiveIntegerField(
        "calls per user licence",
        default=100,
        help_text="Calls per day per user licence; the daily quota is the lower of this total and the daily limit.",
    )
    webhooks_per_rule = models.PositiveSmallIntegerField(
        "webhooks per workflow rule", default=6, help_text="Zoho allows 6 (1 instant + 5 time-based); Vtiger 3."
    )
    instant_webhooks_per_rule = models.PositiveSmallIntegerField(
        "instant webhooks per workflow rule", default=1, help_text="Zoho: 1 (the other 5 are time-based); Vtiger: 3."
    )

    class Meta:
        verbose_name = "edition"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def daily_quota(self, user_licences: int) -> int:
        """The lower of the fixed daily limit and the per-licence allowance (seed 003)."""
        return min(self.daily_call_limit, self.calls_per_licence * user_licences)


class Organization(models.Model):
    """A CRM account (Zoho calls it the company): the tenant every other row belongs to."""

    name = models.CharField("name", max_length=200, help_text="Company name, available as ${Organization.Name}.")
    edition = models.ForeignKey(
        Edition, on_delete=models.PROTECT, related_name="organizations", verbose_name="edition",
        help_text="Decides whether webhooks are available and the daily call quota.",
    )
    user_licences = models.PositiveIntegerField(
        "user licences", default=1, validators=[MinValueValidator(1)],
        help_text="Number of paid user licences; part of the daily webhook quota.",
    )
    time_zone = models.CharField(
        "time zone", max_length=64, default="UTC", validators=[validate_time_zone],
        help_text="IANA time zone; a quota day is a local day, and webhooks render datetimes in it by default.",
    )
    date_format = models.CharField(
        "date format", max_length=32, choices=DATE_FORMAT_CHOICES, default="yyyy-MM-dd",
        help_text="Default format of dates in webhook payloads.",
    )
    datetime_format = models.CharField(
        "date/time format", max_length=32, choices=DATETIME_FORMAT_CHOICES, default="yyyy-MM-dd'T'HH:mm:ssXXX",
        help_text="Default format of date/times in webhook payloads.",
    )
    phone = models.CharField("phone", max_length=50, blank=True, help_text="Available as ${Organization.Phone}.")
    website = models.CharField("website", max_length=200, blank=True, help_text="Available as ${Organization.Website}.")
    street = models.CharField("street", max_length=200, blank=True,
                              help_text="Street and number of the address; the merge field ${Organization.Street}.")
    city = models.CharField("city", max_length=100, blank=True, help_text="The merge field ${Organization.City}.")
    country = models.CharField("country", max_length=100, blank=True,
                               help_text="The merge field ${Organization.Country}.")
    currency_code = models.CharField("currency", max_length=3, default="USD", help_text="ISO 4217 code, e.g. EUR.")
    schema_version = models.UUIDField(
        "metadata version", default=uuid.uuid4, editable=False,
        help_text="Changes whenever a module or field changes, so cached metadata is known to be stale. "
        "Random rather than counted: a rolled-back change can never make an old number mean new metadata.",
    )

    class Meta:
        verbose_name = "organization"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CrmUser(models.Model):
    """A person in the CRM: owns records, receives failure e-mails; may log in to the admin."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="users", verbose_name="organization",
        help_text="The organization this user works in; a staff login linked to the user sees only its data.",
    )
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="crm_user",
        verbose_name="login", help_text="The Django login of this person, if they use the admin.",
    )
    first_name = models.CharField("first name", max_length=100, blank=True,
                                  help_text="The merge field ${User.First Name} when this user owns the record.")
    last_name = models.CharField("last name", max_length=100,
                                 help_text="The merge field ${User.Last Name} when this user owns the record.")
    email = models.EmailField("e-mail",
                              help_text="Failure e-mails about the records this user owns go here; also ${User.Email}.")
    mobile = models.CharField("mobile", max_length=50, blank=True, help_text="Available as ${User.Mobile}.")
    phone = models.CharField("phone", max_length=50, blank=True,
                             help_text="The merge field ${User.Phone} when this user owns the record.")
    role = models.CharField("role", max_length=100, blank=True, help_text="E.g. 'Sales Rep', 'CEO'.")
    is_admin = models.BooleanField("CRM administrator", default=False, help_text="Admins are told about failures.")
    is_active = models.BooleanField("active", default=True,
                                    help_text=("Inactive users receive no failure e-mails and are not offered as "
                                               "owners."))

    class Meta:
        verbose_name = "CRM user"
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "email"], name="crm_user_unique_email_per_org"),
        ]

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def schema_changed(organization_ids) -> None:
    """Mark the metadata of these organizations as changed (modules or fields were written)."""
    Organization.objects.filter(pk__in=set(organization_ids)).update(schema_version=uuid.uuid4())


class MetadataQuerySet(models.QuerySet):
    """Bulk writes to modules and fields bump the organization's metadata version, like single saves do."""

    organization_path = ""

    def _organizations(self) -> list[int]:
        return list(self.values_list(self.organization_path, flat=True).distinct())

    def update(self, **kwargs) -> int:
        organizations = self._organizations()
        count = super().update(**kwargs)
        schema_changed(organizations)
        return count

    def delete(self):
        organizations = self._organizations()
        result = super().delete()
        schema_changed(organizations)
        return result


class ModuleQuerySet(MetadataQuerySet):
    organization_path = "organization_id"

    def webhook_capable(self) -> "ModuleQuerySet":
        return self.filter(supports_webhooks=True)


class Module(models.Model):
    """A CRM module (Leads, Deals, a custom module…): the type of a record."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="modules", verbose_name="organization",
        help_text="Modules belong to one organization; its webhooks and rules use them.",
    )
    api_name = models.CharField(
        "API name", max_length=100, help_text="Name used in merge fields and the API, e.g. 'Deals'."
    )
    singular_label = models.CharField("singular label", max_length=100, help_text="E.g. 'Deal'.")
    aliases = models.CharField(
        "merge-field aliases", max_length=200, blank=True,
        help_text="Other names accepted in merge fields, comma separated, e.g. 'Potentials, Potential'.",
    )
    name_field = models.CharField(
        "name field", max_length=100, blank=True,
        help_text="API name of the field that names a record (shown for lookups), e.g. 'Deal_Name'.",
    )
    is_custom = models.BooleanField("custom module", default=False,
                                    help_text="Made by the organization, not one of the CRM's standard modules.")
    supports_webhooks = models.BooleanField(
        "webhooks allowed", default=True, help_text="Call logs and Notes cannot have webhooks (seed 003)."
    )

    objects = ModuleQuerySet.as_manager()

    class Meta:
        verbose_name = "module"
        ordering = ["organization", "api_name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "api_name"], name="module_unique_api_name_per_org"),
        ]

    def __str__(self) -> str:
        return self.api_name

    @property
    def merge_names(self) -> set[str]:
        """Every spelling that may stand before the dot of a merge field for this module."""
        names = {self.api_name, self.singular_label}
        names.update(alias.strip() for alias in self.aliases.split(",") if alias.strip())
        return names


class FieldType(models.TextChoices):
    TEXT = "text", "Text"
    TEXTAREA = "textarea", "Multi-line text"
    EMAIL = "email", "E-mail"
    PHONE = "phone", "Phone"
    URL = "url", "URL"
    NUMBER = "number", "Number"
    DECIMAL = "decimal", "Decimal"
    CURRENCY = "currency", "Currency"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date/time"
    BOOLEAN = "boolean", "Checkbox"
    PICKLIST = "picklist", "Pick list"
    LOOKUP = "lookup", "Lookup"
    USER = "user", "User"


class SystemField(models.TextChoices):
    """Fields every module has, held in record columns rather than in the values document."""

    ID = "id", "Record id"
    OWNER = "Owner", "Record owner"
    CREATED_TIME = "Created_Time", "Created time"
    MODIFIED_TIME = "Modified_Time", "Modified time"


class FieldQuerySet(MetadataQuerySet):
    organization_path = "module__organization_id"

    def usable(self) -> "FieldQuerySet":
        """Fields a merge field or the API may use: neither deleted nor switched off with their integration."""
        return self.filter(is_deleted=False, is_disabled=False)


class Field(models.Model):
    """Metadata of one module field; its label is what merge fields refer to (``${Deals.Deal Name}``)."""

    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="fields", verbose_name="module",
                               help_text="The module whose records hold this field.")
    label = models.CharField("label", max_length=100, help_text="As used in merge fields, e.g. 'Account Name'.")
    api_name = models.CharField(
        "API name", max_length=100, help_text="Key in the record's values and in the API, e.g. 'Account_Name'."
    )
    field_type = models.CharField("type", max_length=20, choices=FieldType.choices, default=FieldType.TEXT,
                                  help_text=("How values are checked, rendered in merge fields and compared in "
                                             "conditions."))
    lookup_module = models.ForeignKey(
        Module, on_delete=models.PROTECT, null=True, blank=True, related_name="lookup_fields",
        verbose_name="looks up", help_text="For lookup fields: the module of the referenced record.",
    )
    picklist_values = models.JSONField(
        "pick-list values", default=list, blank=True, help_text="For pick lists: the allowed values, in order."
    )
    is_required = models.BooleanField("required", default=False,
                                      help_text="A record cannot be saved without a value for it.")
    is_system = models.BooleanField("system field", default=False, help_text="Id, owner and timestamps.")
    is_deleted = models.BooleanField(
        "deleted", default=False, help_text="Deleted fields render as ${Unsupported_Field} in webhooks."
    )
    is_disabled = models.BooleanField(
        "disabled", default=False,
        help_text="Fields of a switched-off feature or integration; they render as ${Unsupported_Field}.",
    )
    position = models.PositiveIntegerField("position", default=0,
                                           help_text="Order in lists and in the merge-field catalogue.")

    objects = FieldQuerySet.as_manager()

    class Meta:
        verbose_name = "field"
        ordering = ["module", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["module", "api_name"], name="field_unique_api_name_per_module"),
            models.UniqueConstraint(
                fields=["module", "label"], condition=models.Q(is_deleted=False), name="field_unique_live_label"
            ),
            models.CheckConstraint(
                condition=~models.Q(field_type="lookup") | models.Q(lookup_module__isnull=False),
                name="field_lookup_has_module",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.module.api_name}.{self.label}"

    @property
    def is_usable(self) -> bool:
        return not (self.is_deleted or self.is_disabled)

    @property
    def kind(self) -> "FieldKind":
        """What its type does: cleaning, rendering, comparing, capturing (crm/field_types.py). Looked up
        once per instance and type (rendering asks for every value)."""
        kind = self.__dict__.get("_kind")
        if kind is None or kind.code != self.field_type:
            from crm.field_types import field_kind  # the registry imports these models

            kind = self.__dict__["_kind"] = field_kind(self.field_type)
        return kind


class Record(models.Model):
    """A CRM record: field values keyed by API name; lookups hold the id of the referenced record."""

    module = models.ForeignKey(Module, on_delete=models.PROTECT, related_name="records", verbose_name="module",
                               help_text="The module (Deals, Leads, …) whose fields the values follow.")
    owner = models.ForeignKey(
        CrmUser, on_delete=models.PROTECT, related_name="owned_records", verbose_name="owner",
        help_text="Record owner: ${User.…} merge fields and failure e-mails refer to this person.",
    )
    values = models.JSONField("values", default=dict, blank=True, help_text="Field values keyed by API name.")
    created_at = models.DateTimeField("created", auto_now_add=True,
                                      help_text="The merge field ${Module.Created Time}, e.g. ${Deals.Created Time}.")
    modified_at = models.DateTimeField("modified", auto_now=True,
                                       help_text="The merge field ${Module.Modified Time}; set on every change.")

    class Meta:
        verbose_name = "record"
        ordering = ["-id"]
        indexes = [models.Index(fields=["module", "-id"], name="record_module_recent")]

    def __str__(self) -> str:
        return f"{self.module.singular_label} {self.display_name} (#{self.pk})"

    @property
    def display_name(self) -> str:
        name = self.values.get(self.module.name_field) if self.module.name_field else None
        return str(name) if name not in (None, "") else f"#{self.pk}"


class ApiScope(models.TextChoices):
    """What an API key may do; each operation of the REST API needs one (docs/integrate/rest-api.md)."""

    RECORDS_READ = "records:read", "read records"
    RECORDS_WRITE = "records:write", "create, change and delete records (which fires workflow rules)"
    DELIVERIES_READ = "deliveries:read", "read the delivery log, attempts and usage"
    DELIVERIES_REPLAY = "deliveries:replay", "resend and recover deliveries"
    CHANNELS = "channels", "manage event subscription channels"
    CONFIG = "config", "read webhooks and rules, import and export the configuration"


# What keys could do before scopes existed, and what a new key gets unless told otherwise.
DEFAULT_API_SCOPES = [ApiScope.RECORDS_READ.value, ApiScope.RECORDS_WRITE.value, ApiScope.CHANNELS.value]


def default_api_scopes() -> list[str]:
    return list(DEFAULT_API_SCOPES)


def validate_api_scopes(value) -> None:
    from django.core.exceptions import ValidationError

    if not isinstance(value, list) or not all(isinstance(scope, str) for scope in value):
        raise ValidationError("Scopes are a list of names such as records:read.")
    if unknown := sorted(set(value) - set(ApiScope.values)):
        raise ValidationError(f"Unknown scopes: {', '.join(unknown)}. Known: {', '.join(ApiScope.values)}.")


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiKey(models.Model):
    """A key for the REST API, acting as one CRM user of one organization. Only its hash is stored."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys",
                                     help_text="The key reads and writes this organization's data only.")
    user = models.ForeignKey(CrmUser, on_delete=models.CASCADE, related_name="api_keys", verbose_name="acts as",
                             help_text="Records created with this key are owned by this user.")
    name = models.CharField("name", max_length=100, help_text="What uses the key, e.g. 'Web shop'.")
    prefix = models.CharField("key starts with", max_length=12, editable=False,
                              help_text="The first characters, to recognise a key without storing it.")
    key_hash = models.CharField("key hash", max_length=64, unique=True, editable=False,
                                help_text=("SHA-256 of the key: the key itself is shown once, when it is made, and "
                                           "never stored."))
    created_at = models.DateTimeField("created", auto_now_add=True, help_text="When the key was made.")
    last_used_at = models.DateTimeField("last used", null=True, blank=True, editable=False,
                                        help_text="The last authenticated call with this key.")
    revoked_at = models.DateTimeField("revoked", null=True, blank=True,
                                      help_text="A revoked key is refused from that moment on.")
    scopes = models.JSONField(
        "scopes", default=default_api_scopes, validators=[validate_api_scopes],
        help_text="What the key may do: " + "; ".join(f"{c.value}: {c.label}" for c in ApiScope) + ".")

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class ApiKeyWindow(models.Model):
    """Calls of one API key in one minute, for its rate limit (API_RATE_LIMIT_PER_MINUTE)."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    minute = models.DateTimeField("minute (UTC)")
    calls = models.PositiveIntegerField("calls", default=0)

    class Meta:
        verbose_name = "API key window"
        constraints = [models.UniqueConstraint(fields=["key", "minute"], name="api_key_window_once")]


class ApiOrganizationWindow(models.Model):
    """Calls of all the keys of one organization in one minute, for API_RATE_LIMIT_PER_ORGANIZATION: many keys
    of one organization cannot add up to more than that (crm/api/throttle.py)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+",
                                     help_text="Whose keys made the calls.")
    minute = models.DateTimeField("minute (UTC)", help_text="The minute the calls were made in.")
    calls = models.PositiveIntegerField("calls", default=0, help_text="Calls let through in that minute.")

    class Meta:
        verbose_name = "API organization window"
        constraints = [models.UniqueConstraint(fields=["organization", "minute"], name="api_organization_window_once")]


class ApiAddressWindow(models.Model):
    """Calls with an API key that is not valid from one client address in one minute, for
    API_AUTH_FAILURES_PER_MINUTE: guessing keys is throttled, and costs no key lookup once refused."""

    address = models.CharField("client address", max_length=64, help_text="The caller's IP address.")
    minute = models.DateTimeField("minute (UTC)", help_text="The minute the calls were made in.")
    calls = models.PositiveIntegerField("calls", default=0, help_text="Calls with an invalid key in that minute.")

    class Meta:
        verbose_name = "API address window"
        constraints = [models.UniqueConstraint(fields=["address", "minute"], name="api_address_window_once")]


class IdempotentRequest(models.Model):
    """A POST made with an Idempotency-Key, and its answer: the same key with the same request within
    IDEMPOTENCY_KEY_HOURS gets this answer again, without doing anything (crm/api/idempotency.py)."""

    key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+", verbose_name="API key")
    idempotency_key = models.CharField("Idempotency-Key", max_length=255)
    fingerprint = models.CharField("request fingerprint", max_length=64,
                                   help_text="SHA-256 of the method, path and body.")
    status = models.PositiveSmallIntegerField("answer status", null=True, blank=True,
                                              help_text="Empty while the first request is still being answered.")
    response = models.JSONField("answer", null=True, blank=True)
    created_at = models.DateTimeField("received", auto_now_add=True)

    class Meta:
        verbose_name = "idempotent request"
        constraints = [models.UniqueConstraint(fields=["key", "idempotency_key"], name="idempotency_key_once")]
        indexes = [models.Index(fields=["created_at"], name="idempotent_request_age")]
