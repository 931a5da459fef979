"""Webhook configuration as JSON, to keep in version control and move between environments.

workflows.config_io reads and writes the whole file (webhooks and rules) with these pieces.

The format is documented in the README ("Configuration files"). Secrets are left out of exports
unless asked for; on import, a missing secret keeps the value already stored.
"""
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.models import Field, Module, Organization
from dispatcher import webhooks as services
from dispatcher.models import AuthType, Capture, RetryPolicy, Webhook

FORMAT = "crm-webhooks"
VERSION = 1
WEBHOOK_KEYS = {
    "organization", "module", "name", "description", "url", "method", "content_type", "active", "body",
    "date_format", "datetime_format", "time_zone", "auth", "entity_parameters", "custom_parameters", "signing_secret",
    "capture", "retry_policy", "headers", "tls", "previous_signing_secret",
}
AUTH_KEYS = {"type", "username", "password", "token", "token_url", "client_id", "client_secret", "scope",
             "client_auth"}
TLS_KEYS = {"client_certificate", "client_key", "ca_bundle"}
RETRY_POLICY_KEYS = {"code", "name", "delays", "max_retry_after", "failure_emails"}
REQUIRED_KEYS = {"organization", "module", "name", "url"}


class ConfigError(Exception):
    """The file cannot be imported; ``problems`` lists every reason, each naming the webhook."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


CREATED, CHANGED, UNCHANGED = "created", "changed", "unchanged"


@dataclass
class ImportReport:
    """Names of one section's entries by what the import did to them."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def config_export(*, organization: Organization | None = None, include_secrets: bool = False) -> dict[str, Any]:
    webhooks = Webhook.objects.select_related("organization", "module", "retry_policy").prefetch_related(
        "entity_parameters", "custom_parameters", "headers", "captures__field"
    ).order_by("organization__name", "name")
    if organization is not None:
        webhooks = webhooks.filter(organization=organization)
    return {
        "format": FORMAT, "version": VERSION,
        "retry_policies": [retry_policy_export(policy) for policy in RetryPolicy.objects.order_by("code")],
        "webhooks": [webhook_export(w, include_secrets) for w in webhooks],
    }


def retry_policy_export(policy: RetryPolicy) -> dict[str, Any]:
    """Policies are shared by every organization; all of them go into every file, so a webhook's policy
    always travels with it."""
    return {"code": policy.code, "name": policy.name, "delays": policy.delays,
            "max_retry_after": policy.max_retry_after, "failure_emails": policy.failure_emails}


def webhook_export(webhook: Webhook, include_secrets: bool) -> dict[str, Any]:
    secret = (lambda value: value) if include_secrets else (lambda value: None)
    data: dict[str, Any] = {
        "organization": webhook.organization.name,
        "module": webhook.module.api_name,
        "name": webhook.name,
        "description": webhook.description,
        "url": webhook.url,
        "method": webhook.method,
        "content_type": webhook.content_type,
        "active": webhook.is_active,
        "body": webhook.body,
        "date_format": webhook.date_format,
        "datetime_format": webhook.datetime_format,
        "time_zone": webhook.time_zone,
        "retry_policy": webhook.retry_policy.code if webhook.retry_policy is not None else None,
        "auth": _auth_export(webhook, secret),
        "entity_parameters": [{"name": p.name, "value": p.value} for p in webhook.entity_parameters.all()],
        "custom_parameters": [{"name": p.name, "value": secret(p.value)} for p in webhook.custom_parameters.all()],
        "headers": [{"name": h.name, "value": secret(h.value) if h.is_secret else h.value, "secret": h.is_secret}
                    for h in webhook.headers.all()],
        "capture": {
            "enabled": webhook.capture_response, "type": webhook.capture_type,
            "namespaces": webhook.capture_namespaces,
            "captures": [{"when": c.when, "expression": c.expression, "field": c.field.api_name}
                         for c in webhook.captures.all()],
        },
    }
    if webhook.tls_client_certificate or webhook.tls_ca_bundle:
        data["tls"] = {"client_certificate": webhook.tls_client_certificate,
                       "client_key": secret(webhook.tls_client_key) if webhook.tls_client_key else None,
                       "ca_bundle": webhook.tls_ca_bundle}
    if include_secrets:
        data["signing_secret"] = webhook.signing_secret
        if webhook.previous_signing_secret and webhook.previous_secret_expires_at:
            data["previous_signing_secret"] = {"secret": webhook.previous_signing_secret,
                                               "expires": webhook.previous_secret_expires_at.isoformat()}
    return data


def _auth_export(webhook: Webhook, secret: Callable[[str], str | None]) -> dict[str, Any]:
    """type, username and password always (as before); the keys of bearer and OAuth 2.0 when used."""
    auth: dict[str, Any] = {"type": webhook.auth_type, "username": webhook.auth_username,
                            "password": secret(webhook.auth_password) if webhook.auth_type == AuthType.BASIC else None}
    if webhook.auth_type == AuthType.BEARER:
        auth["token"] = secret(webhook.auth_token)
    elif webhook.auth_type == AuthType.OAUTH2:
        auth |= {"token_url": webhook.oauth_token_url, "client_id": webhook.oauth_client_id,
                 "client_secret": secret(webhook.oauth_client_secret), "scope": webhook.oauth_scope,
                 "client_auth": webhook.oauth_client_auth}
    return auth


def config_check_header(data: Any) -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError([f"This is not a webhook configuration file (expected \"format\": \"{FORMAT}\")."])
    if data.get("version") != VERSION:
        raise ConfigError([f"Unsupported version {data.get('version')!r}; this installation reads version {VERSION}."])


def problems_of(where: str, error: ValidationError) -> list[str]:
    """One line per message, each saying which entry and which key it is about (never none at all)."""
    details = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
    lines = [f"{where}: {key + ': ' if key and key != '__all__' else ''}{message}"
             for key, messages in details.items() for message in messages]
    return lines or [f"{where}: not valid."]


def webhooks_import(entries: Any, policies: dict[str, RetryPolicy]) -> tuple[ImportReport, list[str]]:
    """Import inside the caller's transaction; returns what was done and every problem found.

    ``policies`` are the retry policies by code, as they will be once the file's own are imported."""
    return entries_import("webhooks", entries, lambda entry: _webhook_import(entry, policies))


def retry_policies_import(entries: Any) -> tuple[ImportReport, list[str]]:
    """Create or update retry policies by code (they come first: webhooks name them)."""
    return entries_import("retry_policies", entries, _retry_policy_import, key="code")


def entries_import(
    section: str, entries: Any, import_one: Callable[[Any], str], key: str = "name",
) -> tuple[ImportReport, list[str]]:
    """Import each entry of a section on its own savepoint; names by what was done, and every problem.

    An entry whose import changed nothing is rolled back to its savepoint, so that an unchanged file leaves
    every row (and every modified time, which caches watch) exactly as it was."""
    report = ImportReport()
    if entries is None:
        return report, []
    if not isinstance(entries, list):
        return report, [f"\"{section}\" must be a list."]
    problems: list[str] = []
    for index, entry in enumerate(entries):
        where = f"{section}[{index}]" + (f" “{entry.get(key)}”" if isinstance(entry, dict) else "")
        try:
            with transaction.atomic():
                outcome = import_one(entry)
                if outcome == UNCHANGED:
                    transaction.set_rollback(True)
        except ValidationError as error:
            problems.extend(problems_of(where, error))
            continue
        {CREATED: report.created, CHANGED: report.updated, UNCHANGED: report.unchanged}[outcome].append(entry[key])
    return report, problems


def _retry_policy_import(entry: Any) -> str:
    if not isinstance(entry, dict) or set(entry) - RETRY_POLICY_KEYS or not {"code", "delays"} <= set(entry):
        raise ValidationError("expected an object with code, name, delays, max_retry_after and failure_emails.")
    if not isinstance(entry["code"], str):
        raise ValidationError("“code” must be text, e.g. \"vtiger\".")
    policy = RetryPolicy.objects.filter(code=entry["code"]).first()
    before = retry_policy_export(policy) if policy else None
    policy = policy or RetryPolicy(code=entry["code"], name=entry["code"])
    for key in ("name", "delays", "max_retry_after", "failure_emails"):
        if entry.get(key) is not None:
            setattr(policy, key, entry[key])
    policy.full_clean()
    policy.save()
    return outcome_of(before, retry_policy_export(policy))


def outcome_of(before: Any, after: Any) -> str:
    """Compare an entry's export before and after its import."""
    if before is None:
        return CREATED
    return UNCHANGED if before == after else CHANGED


def entry_scope(entry: Any, *, allowed: set[str], what: str) -> tuple[Organization, Module]:
    """Check an entry's keys and find the organization and module it names."""
    if not isinstance(entry, dict):
        raise ValidationError(f"each {what} must be a JSON object.")
    if unknown := set(entry) - allowed:
        raise ValidationError(f"unknown keys {', '.join(sorted(unknown))}.")
    if missing := {"organization", "module", "name"} - set(entry):
        raise ValidationError(f"missing keys {', '.join(sorted(missing))}.")
    organization = Organization.objects.filter(name=entry["organization"]).first()
    if organization is None:
        raise ValidationError(f"there is no organization named “{entry['organization']}”.")
    module = Module.objects.filter(organization=organization, api_name=entry["module"]).first()
    if module is None:
        raise ValidationError(f"{organization.name} has no module “{entry['module']}”.")
    return organization, module


def _webhook_import(entry: Any, policies: dict[str, RetryPolicy]) -> str:
    organization, module = entry_scope(entry, allowed=WEBHOOK_KEYS, what="webhook")
    _webhook_entry_check(entry)
    stored_webhook = Webhook.objects.filter(organization=organization, name=entry["name"]).first()
    created = stored_webhook is None
    before = None if stored_webhook is None else webhook_export(stored_webhook, include_secrets=True)
    webhook = stored_webhook or Webhook(organization=organization, name=entry["name"])
    if "retry_policy" in entry:
        webhook.retry_policy = _retry_policy(entry["retry_policy"], policies)
    stored = _StoredSecrets.of(webhook, created)
    webhook.module = module
    for key, attribute in [("description", "description"), ("url", "url"), ("method", "method"),
                           ("content_type", "content_type"), ("active", "is_active"), ("body", "body"),
                           ("date_format", "date_format"), ("datetime_format", "datetime_format"),
                           ("time_zone", "time_zone"), ("signing_secret", "signing_secret")]:
        if entry.get(key) is not None:
            setattr(webhook, attribute, entry[key])
    auth, tls = _auth_import(webhook, entry.get("auth")), _tls_import(webhook, entry.get("tls"))
    for name in services.webhook_unused_secrets(auth_type=webhook.auth_type, certificate=webhook.tls_client_certificate):
        setattr(webhook, name, "")
    _previous_secret_import(webhook, entry.get("previous_signing_secret"))
    entity = [services.Parameter(**_parameter(p, "entity_parameters")) for p in entry.get("entity_parameters") or []]
    custom = _custom_parameters_import(entry.get("custom_parameters") or [], stored.custom)
    headers = _headers_import(entry.get("headers") or [], stored.headers)
    if before is not None:
        _retarget_check(webhook, entry, auth, tls, stored, stored_url=before["url"])
    captures = _captures_import(webhook, module, entry.get("capture"))
    services.webhook_save(webhook=webhook, entity_parameters=entity, custom_parameters=custom, captures=captures,
                          headers=headers if "headers" in entry else None)
    saved = Webhook.objects.select_related("organization", "module", "retry_policy").get(pk=webhook.pk)
    return outcome_of(before, webhook_export(saved, include_secrets=True))


def _webhook_entry_check(entry: dict) -> None:
    """The shape of a webhook entry: required keys, and text, booleans and lists where they belong."""
    if missing := REQUIRED_KEYS - set(entry):
        raise ValidationError(f"missing keys {', '.join(sorted(missing))}.")
    for key in sorted(WEBHOOK_KEYS - {"active", "auth", "entity_parameters", "custom_parameters", "capture", "headers",
                                      "tls", "previous_signing_secret"}):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ValidationError(f"“{key}” must be text.")
    if not isinstance(entry.get("active", True), bool):
        raise ValidationError("“active” must be true or false.")
    for key in ("entity_parameters", "custom_parameters", "headers"):
        if not isinstance(entry.get(key) or [], list):
            raise ValidationError(f"“{key}” must be a list.")


@dataclass
class _StoredSecrets:
    """What a re-imported webhook already holds, for a file that leaves its secrets out."""

    custom: dict[str, str]
    headers: dict[str, str]
    token_url: str

    @classmethod
    def of(cls, webhook: Webhook, created: bool) -> "_StoredSecrets":
        if created:
            return cls({}, {}, "")
        return cls({p.name: p.value for p in webhook.custom_parameters.all()},
                   {h.name: h.value for h in webhook.headers.all() if h.is_secret}, webhook.oauth_token_url)


def _text_object(data: Any, keys: set[str]) -> bool:
    return isinstance(data, dict) and not set(data) - keys and all(
        value is None or isinstance(value, str) for value in data.values())


def _auth_import(webhook: Webhook, data: Any) -> dict:
    """The auth object onto the webhook; a secret the file leaves out (null) keeps the stored one."""
    auth = data or {"type": AuthType.NONE}
    if not _text_object(auth, AUTH_KEYS):
        raise ValidationError(f"“auth” must be an object with text values for {', '.join(sorted(AUTH_KEYS))}.")
    webhook.auth_type = auth.get("type", AuthType.NONE)
    oauth = webhook.auth_type == AuthType.OAUTH2
    webhook.auth_username = (auth.get("username") or "") if webhook.auth_type == AuthType.BASIC else ""
    webhook.oauth_token_url = (auth.get("token_url") or "") if oauth else ""
    webhook.oauth_client_id = (auth.get("client_id") or "") if oauth else ""
    webhook.oauth_scope = (auth.get("scope") or "") if oauth else ""
    webhook.oauth_client_auth = auth.get("client_auth") or webhook.oauth_client_auth
    for key, attribute in (("password", "auth_password"), ("token", "auth_token"),
                           ("client_secret", "oauth_client_secret")):
        if auth.get(key) is not None:
            setattr(webhook, attribute, auth[key])
    return auth


def _tls_import(webhook: Webhook, data: Any) -> dict:
    tls = data or {}
    if not _text_object(tls, TLS_KEYS):
        raise ValidationError("“tls” must be an object with client_certificate, client_key and ca_bundle (PEM text).")
    webhook.tls_client_certificate = tls.get("client_certificate") or ""
    webhook.tls_ca_bundle = tls.get("ca_bundle") or ""
    if tls.get("client_key") is not None:
        webhook.tls_client_key = tls["client_key"]
    return tls


def _custom_parameters_import(items: list, stored: dict[str, str]) -> list[services.Parameter]:
    custom = []
    for item in items:
        parameter = _parameter(item, "custom_parameters")
        if parameter["value"] is None:
            parameter["value"] = stored.get(parameter["name"], "")
        custom.append(services.Parameter(**parameter))
    return custom


def _header_entry_valid(item: Any) -> bool:
    return (isinstance(item, dict) and not set(item) - {"name", "value", "secret"} and isinstance(item.get("name"), str)
            and isinstance(item.get("value", ""), (str, type(None))) and isinstance(item.get("secret", False), bool))


def _headers_import(items: list, stored: dict[str, str]) -> list[services.Header]:
    headers = []
    for item in items:
        if not _header_entry_valid(item):
            raise ValidationError("each of “headers” must be an object with a name, a value (text) and secret "
                                  "(true or false).")
        value = item.get("value")
        if value is None and item.get("secret"):
            value = stored.get(item["name"], "")
        headers.append(services.Header(item["name"], value or "", item.get("secret", False)))
    return headers


def _retarget_check(webhook: Webhook, entry: dict, auth: dict, tls: dict, stored: _StoredSecrets, *,
                    stored_url: str) -> None:
    """A secret the file leaves out is not sent to a host it was not entered for."""
    given = {"auth.password": ("auth_password", auth.get("password")), "auth.token": ("auth_token", auth.get("token")),
             "tls.client_key": ("tls_client_key", tls.get("client_key"))}
    kept = [label for label, (name, value) in given.items() if value is None and getattr(webhook, name)]
    kept += [f"the value of custom parameter “{item['name']}”" for item in entry.get("custom_parameters") or []
             if isinstance(item, dict) and item.get("value") is None and stored.custom.get(str(item.get("name")))]
    kept += [f"the value of header “{item['name']}”" for item in entry.get("headers") or []
             if item.get("value") is None and stored.headers.get(item["name"])]
    if problem := services.webhook_retarget_problem(stored_url=stored_url, url=webhook.url, kept=kept):
        raise ValidationError(problem)
    if webhook.oauth_client_secret and auth.get("client_secret") is None and (
            problem := services.webhook_retarget_problem(stored_url=stored.token_url, url=webhook.oauth_token_url,
                                                         kept=["auth.client_secret"])):
        raise ValidationError(problem)


def _previous_secret_import(webhook: Webhook, data: Any) -> None:
    """A rotation's previous secret and its expiry, as exported with --include-secrets."""
    if data is None:
        return
    expires = parse_datetime(data.get("expires") or "") if isinstance(data, dict) and isinstance(
        data.get("expires"), str) else None
    if expires is not None and timezone.is_naive(expires):
        expires = timezone.make_aware(expires, datetime.UTC)
    if expires is None or not isinstance(data.get("secret"), str) or set(data) != {"secret", "expires"}:
        raise ValidationError("“previous_signing_secret” must be an object with secret and expires "
                              "(an ISO 8601 date and time).")
    webhook.previous_signing_secret, webhook.previous_secret_expires_at = data["secret"], expires


def _retry_policy(code: Any, policies: dict[str, RetryPolicy]) -> RetryPolicy | None:
    """null is the default policy (Zoho's); a code must name a policy of this installation or of the file."""
    if code is None:
        return None
    if not isinstance(code, str) or code not in policies:
        known = ", ".join(sorted(policies)) or "none"
        raise ValidationError(f"retry_policy: there is no retry policy “{code}” here or in the file (known: {known}).")
    return policies[code]


def _captures_import(webhook: Webhook, module: Module, data: Any) -> list[Capture] | None:
    """The "capture" object: settings on the webhook, and the captures (None when the file has none)."""
    if data is None:
        return None
    if not isinstance(data, dict) or set(data) - {"enabled", "type", "namespaces", "captures"}:
        raise ValidationError("“capture” must be an object with enabled, type, namespaces and captures.")
    webhook.capture_response = bool(data.get("enabled", False))
    webhook.capture_type = data.get("type") or webhook.capture_type
    webhook.capture_namespaces = data.get("namespaces") or ""
    captures = []
    for index, item in enumerate(data.get("captures") or []):
        if not isinstance(item, dict) or set(item) != {"when", "expression", "field"}:
            raise ValidationError(f"capture.captures[{index}]: expected an object with when, expression and field.")
        field = Field.objects.filter(module=module, api_name=item["field"]).first()
        if field is None:
            raise ValidationError(f"capture.captures[{index}].field: {module.api_name} has no field “{item['field']}”.")
        captures.append(Capture(when=item["when"], expression=str(item["expression"]), field=field))
    return captures


def _parameter(item: Any, key: str) -> dict[str, Any]:
    if not isinstance(item, dict) or set(item) - {"name", "value"} or not isinstance(item.get("name"), str):
        raise ValidationError(f"each of “{key}” must be an object with a name and a value.")
    value = item.get("value")
    if value is not None and not isinstance(value, str):
        raise ValidationError(f"the value of “{item['name']}” must be text.")
    return {"name": item["name"], "value": value}
