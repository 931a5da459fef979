"""REST API keys and their scopes, and what is kept per key: the rate-limit windows (per key, organization and
client address) and the answers to Idempotency-Key requests."""
from django.core.exceptions import ValidationError
from django.db import models

from crm.models.organizations import Organization
from crm.models.users import CrmUser


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
