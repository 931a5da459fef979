"""One "webhooks" entry of a file onto its webhook, in memory: its fields, authorization, TLS, previous
signing secret, retry policy and captures, and the rows it wants. What the file leaves out keeps what is
stored where the format says so, and a secret kept that way is sent only to the host it was entered for."""
import datetime
from collections import defaultdict
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.models import Field, Module
from dispatcher.config_io.shapes import (
    AuthShape, CaptureSettingsShape, HeaderShape, PreviousSecretShape, TlsShape, WebhookShape,
)
from dispatcher.models import AuthType, Capture, RetryPolicy, Webhook
from dispatcher.senders.webhook_rows import Header, Parameter
from dispatcher.senders.webhook_secrets import WEBHOOK_SECRETS, webhook_retarget_problem, webhook_unused_secrets


@dataclass
class StoredSecrets:
    """What a re-imported webhook already holds, for a file that leaves its secrets out, and the addresses
    those secrets were entered for."""

    custom: dict[str, str]
    headers: dict[str, str]
    origins: dict[str, str]  # URL field name -> the stored URL

    @classmethod
    def of(cls, webhook: Webhook | None) -> "StoredSecrets":
        if webhook is None:
            return cls({}, {}, {})
        return cls({p.name: p.value for p in webhook.custom_parameters.all()},
                   {h.name: h.value for h in webhook.headers.all() if h.is_secret},
                   {"url": webhook.url, "oauth_token_url": webhook.oauth_token_url})


SCALARS = [("description", "description"), ("url", "url"), ("method", "method"), ("content_type", "content_type"),
           ("active", "is_active"), ("body", "body"), ("date_format", "date_format"),
           ("datetime_format", "datetime_format"), ("time_zone", "time_zone"), ("signing_secret", "signing_secret")]


@dataclass
class WantedRows:
    """The rows an entry gives its webhook (None: the file leaves that kind as stored)."""

    entity: list[Parameter]
    custom: list[Parameter]
    headers: list[Header] | None
    captures: list[Capture] | None


def webhook_entry_apply(webhook: Webhook, entry: WebhookShape, module: Module, secrets: StoredSecrets,
                        fields: dict[tuple[int, str], Field], policies: dict[str, RetryPolicy]) -> WantedRows:
    """The entry onto the webhook (in memory), and the rows it wants; what the file leaves out keeps what is
    stored where the format says so."""
    webhook.module = module
    if "retry_policy" in entry.model_fields_set:
        webhook.retry_policy = _retry_policy(entry.retry_policy, policies)
    for name, attribute in SCALARS:
        if getattr(entry, name) is not None:
            setattr(webhook, attribute, getattr(entry, name))
    _auth_apply(webhook, entry.auth or AuthShape(type=AuthType.NONE))
    _tls_apply(webhook, entry.tls or TlsShape())
    for name in webhook_unused_secrets(auth_type=webhook.auth_type, certificate=webhook.tls_client_certificate):
        setattr(webhook, name, "")
    _previous_secret_apply(webhook, entry.previous_signing_secret)
    return WantedRows(
        entity=[Parameter(p.name, p.value) for p in entry.entity_parameters or []],
        custom=[Parameter(p.name, secrets.custom.get(p.name, "") if p.value is None else p.value)
                for p in entry.custom_parameters or []],
        headers=None if entry.headers is None else _headers_of(entry.headers, secrets.headers),
        captures=_captures_apply(webhook, module, entry.capture, fields))


def _auth_apply(webhook: Webhook, auth: AuthShape) -> None:
    """The auth object onto the webhook; a secret the file leaves out (null) keeps the stored one."""
    webhook.auth_type = auth.type or AuthType.NONE
    oauth = webhook.auth_type == AuthType.OAUTH2
    webhook.auth_username = (auth.username or "") if webhook.auth_type == AuthType.BASIC else ""
    webhook.oauth_token_url = (auth.token_url or "") if oauth else ""
    webhook.oauth_client_id = (auth.client_id or "") if oauth else ""
    webhook.oauth_scope = (auth.scope or "") if oauth else ""
    webhook.oauth_client_auth = auth.client_auth or webhook.oauth_client_auth
    for value, attribute in ((auth.password, "auth_password"), (auth.token, "auth_token"),
                             (auth.client_secret, "oauth_client_secret")):
        if value is not None:
            setattr(webhook, attribute, value)


def _tls_apply(webhook: Webhook, tls: TlsShape) -> None:
    webhook.tls_client_certificate = tls.client_certificate or ""
    webhook.tls_ca_bundle = tls.ca_bundle or ""
    if tls.client_key is not None:
        webhook.tls_client_key = tls.client_key


def _headers_of(items: list[HeaderShape], stored: dict[str, str]) -> list[Header]:
    """A secret header left null keeps its stored value (for the same host: retarget_check)."""
    return [Header(item.name, (stored.get(item.name, "") if item.value is None and item.secret
                               else item.value or ""), item.secret) for item in items]


# Secret fields of the webhook and how the file names them in a problem.
SECRET_KEYS = {"auth_password": "auth.password", "auth_token": "auth.token",
               "oauth_client_secret": "auth.client_secret", "tls_client_key": "tls.client_key"}


def _kept_secrets(webhook: Webhook, entry: WebhookShape, secrets: StoredSecrets) -> dict[str, list[str]]:
    """Every secret the import would keep from what is stored rather than take from the file, by the URL
    field whose host it was entered for: whatever the file leaves out (null, or a whole key such as
    "headers") counts as kept."""
    auth, tls = entry.auth or AuthShape(), entry.tls or TlsShape()
    given = {"auth_password": auth.password, "auth_token": auth.token, "oauth_client_secret": auth.client_secret,
             "tls_client_key": tls.client_key}
    kept: dict[str, list[str]] = defaultdict(list)
    for name, (_, origins) in WEBHOOK_SECRETS.items():
        if given[name] is None and getattr(webhook, name):
            for origin in origins:
                kept[origin].append(SECRET_KEYS[name])
    kept["url"] += [f"the value of custom parameter “{p.name}”" for p in entry.custom_parameters or []
                    if p.value is None and secrets.custom.get(p.name)]
    if entry.headers is None:  # no "headers" key: every stored header stays, its secret values too
        names = [name for name, value in secrets.headers.items() if value]
    else:
        names = [h.name for h in entry.headers if h.secret and h.value is None and secrets.headers.get(h.name)]
    kept["url"] += [f"the value of header “{name}”" for name in names]
    return kept


def retarget_check(webhook: Webhook, entry: WebhookShape, secrets: StoredSecrets) -> None:
    """A secret the file leaves out is not sent to a host it was not entered for (docs/operate/security.md)."""
    for origin, kept in _kept_secrets(webhook, entry, secrets).items():
        if problem := webhook_retarget_problem(stored_url=secrets.origins[origin], url=getattr(webhook, origin),
                                               kept=kept):
            raise ValidationError(problem)


def _previous_secret_apply(webhook: Webhook, data: PreviousSecretShape | None) -> None:
    """A rotation's previous secret and its expiry, as exported with --include-secrets."""
    if data is None:
        return
    try:
        expires = parse_datetime(data.expires)
        if expires is not None and timezone.is_naive(expires):
            expires = timezone.make_aware(expires, datetime.UTC)
        expires = expires.astimezone(datetime.UTC) if expires is not None else None
    except (ValueError, OverflowError):  # a date that does not exist, or none once in UTC
        expires = None
    if expires is None:
        raise ValidationError({"previous_signing_secret": "“expires” must be an ISO 8601 date and time that "
                                                          "exists in UTC, e.g. 2026-12-03T10:00:00+00:00."})
    webhook.previous_signing_secret, webhook.previous_secret_expires_at = data.secret, expires


def _retry_policy(code: str | None, policies: dict[str, RetryPolicy]) -> RetryPolicy | None:
    """null is the default policy (Zoho's); a code must name a policy of this installation or of the file."""
    if code is None:
        return None
    if code not in policies:
        known = ", ".join(sorted(policies)) or "none"
        raise ValidationError(f"retry_policy: there is no retry policy “{code}” here or in the file (known: {known}).")
    return policies[code]


def _captures_apply(webhook: Webhook, module: Module, data: CaptureSettingsShape | None,
                    fields: dict[tuple[int, str], Field]) -> list[Capture] | None:
    """The "capture" object: settings on the webhook, and the captures (None when the file has none)."""
    if data is None:
        return None
    webhook.capture_response = data.enabled
    webhook.capture_type = data.type or webhook.capture_type
    webhook.capture_namespaces = data.namespaces or ""
    captures = []
    for index, item in enumerate(data.captures or []):
        found = fields.get((module.pk, item.field))
        if found is None:
            raise ValidationError(f"capture.captures[{index}].field: {module.api_name} has no field “{item.field}”.")
        captures.append(Capture(when=item.when, expression=item.expression, field=found))
    return captures


def capture_rows(captures: list[Capture]) -> list[tuple[str, str, str]]:
    """As the database will order them: by when, then by their place in the file."""
    ordered = sorted(enumerate(captures), key=lambda pair: (pair[1].when, pair[0]))
    return [(c.when, c.expression, c.field.api_name) for _, c in ordered]
