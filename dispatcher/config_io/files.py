"""Webhook configuration as JSON, to keep in version control and move between environments.

workflows.config_io reads and writes the whole file (webhooks and rules) with these pieces.

The format is documented in docs/operate/config-files.md. Secrets are left out of exports
unless asked for; on import, a missing secret keeps the value already stored, for the host it was entered for.

An import's statements do not grow with its new or unchanged webhooks, and grow by one UPDATE per changed
one: each entry is checked for its shape (config_shapes), everything the entries name is looked up with one
query per kind (organizations, modules, stored webhooks with their rows, capture fields), each webhook is
validated in memory by the admin's own validation (webhooks.webhook_problems), and what changed is written in
bulk (webhooks.webhooks_store). An entry that would change nothing is not written at all.
"""
import datetime
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from crm.models import Field, Module, Organization
from dispatcher.senders import webhooks as services
from dispatcher.config_io.shapes import (
    AuthShape, CaptureSettingsShape, HeaderShape, PreviousSecretShape, RetryPolicyShape, TlsShape, WebhookShape,
    shape_parse, text_problems,
)
from dispatcher.models import AuthType, Capture, RetryPolicy, Webhook

FORMAT = "crm-webhooks"
VERSION = 1
SECTIONS = ("retry_policies", "webhooks", "workflow_rules")
RETRY_POLICY_KEYS = {"code", "name", "delays", "max_retry_after", "failure_emails"}


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

    def add(self, outcome: str, name: str) -> None:
        {CREATED: self.created, CHANGED: self.updated, UNCHANGED: self.unchanged}[outcome].append(name)


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


@dataclass
class WebhookRowsOf:
    """The rows a webhook owns, as stored or as an import would store them (captures: (when, expression,
    field API name) in the order the database keeps them)."""

    entity: list[services.Parameter]
    custom: list[services.Parameter]
    headers: list[services.Header]
    captures: list[tuple[str, str, str]]

    @classmethod
    def stored(cls, webhook: Webhook) -> "WebhookRowsOf":
        return cls([services.Parameter(p.name, p.value) for p in webhook.entity_parameters.all()],
                   [services.Parameter(p.name, p.value) for p in webhook.custom_parameters.all()],
                   [services.Header(h.name, h.value, h.is_secret) for h in webhook.headers.all()],
                   [(c.when, c.expression, c.field.api_name) for c in webhook.captures.all()])


def webhook_export(webhook: Webhook, include_secrets: bool, rows: WebhookRowsOf | None = None) -> dict[str, Any]:
    """The webhook's entry of the file; rows default to the stored ones (an import passes what it would store,
    to see whether anything changes without writing)."""
    rows = rows or WebhookRowsOf.stored(webhook)
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
        "entity_parameters": [{"name": p.name, "value": p.value} for p in rows.entity],
        "custom_parameters": [{"name": p.name, "value": secret(p.value)} for p in rows.custom],
        "headers": [{"name": h.name, "value": secret(h.value) if h.secret else h.value, "secret": h.secret}
                    for h in rows.headers],
        "capture": {
            "enabled": webhook.capture_response, "type": webhook.capture_type,
            "namespaces": webhook.capture_namespaces,
            "captures": [{"when": when, "expression": expression, "field": name}
                         for when, expression, name in rows.captures],
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
    """What the whole file must be before any entry is read: ours, of this version, with known sections, and
    text a database can store."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError([f"This is not a webhook configuration file (expected \"format\": \"{FORMAT}\")."])
    if data.get("version") != VERSION:
        raise ConfigError([f"Unsupported version {data.get('version')!r}; this installation reads version {VERSION}."])
    problems = [f"unknown key “{key}” (a file has format, version, {', '.join(SECTIONS)})."
                for key in sorted(set(data) - {"format", "version", *SECTIONS})]
    problems += [f"\"{section}\" must be a list." for section in SECTIONS
                 if data.get(section) is not None and not isinstance(data[section], list)]
    if problems := problems + text_problems(data):
        raise ConfigError(problems)


def problems_of(where: str, error: ValidationError) -> list[str]:
    """One line per message, each saying which entry and which key it is about (never none at all)."""
    details = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
    lines = [f"{where}: {key + ': ' if key and key != '__all__' else ''}{message}"
             for key, messages in details.items() for message in messages]
    return lines or [f"{where}: not valid."]


def entry_where(section: str, index: int, entry: Any, key: str = "name") -> str:
    """How a problem names its entry: section, index and name (``webhooks[2] “Invoice”``)."""
    return f"{section}[{index}]" + (f" “{entry.get(key)}”" if isinstance(entry, dict) else "")


def scope_problem(section: str, index: int, entry: Any, organization: Organization | None) -> str | None:
    """An entry of another organization than the importer's (the REST API imports for its key's only)."""
    if organization is None or not isinstance(entry, dict) or entry.get("organization") == organization.name:
        return None
    return (f"{entry_where(section, index, entry)}: organization: this key belongs to {organization.name}; entries "
            "of other organizations are not imported.")


@dataclass
class ImportScope:
    """The organizations and modules a section's entries name, looked up once for the whole section."""

    organizations: dict[str, Organization]
    modules: dict[tuple[int, str], Module]

    @classmethod
    def load(cls, entries: Iterable[Any]) -> "ImportScope":
        named = [(entry.organization, entry.module) for entry in entries]
        organizations = {o.name: o for o in Organization.objects.select_related("edition").filter(
            name__in={organization for organization, _ in named})}
        by_id = {organization.pk: organization for organization in organizations.values()}
        modules = {}
        for module in Module.objects.filter(organization__in=list(by_id), api_name__in={m for _, m in named}):
            module.organization = by_id[module.organization_id]  # loaded already: no query per webhook checked
            modules[module.organization_id, module.api_name] = module
        return cls(organizations, modules)

    def find(self, organization_name: str, module_name: str) -> tuple[Organization, Module]:
        organization = self.organizations.get(organization_name)
        if organization is None:
            raise ValidationError(f"there is no organization named “{organization_name}”.")
        module = self.modules.get((organization.pk, module_name))
        if module is None:
            raise ValidationError(f"{organization.name} has no module “{module_name}”.")
        return organization, module


def retry_policies_import(entries: Any) -> tuple[ImportReport, list[str]]:
    """Create or update retry policies by code (they come first: webhooks name them)."""
    return entries_import("retry_policies", entries, _retry_policy_import, key="code")


def entries_import(
    section: str, entries: Any, import_one: Callable[[Any], str], key: str = "name",
) -> tuple[ImportReport, list[str]]:
    """Import each entry of a small section on its own savepoint; names by what was done, and every problem.

    An entry whose import changed nothing is rolled back to its savepoint, so that an unchanged file leaves
    every row (and every modified time, which caches watch) exactly as it was."""
    report = ImportReport()
    if entries is None:
        return report, []
    if not isinstance(entries, list):
        return report, [f"\"{section}\" must be a list."]
    problems: list[str] = []
    for index, entry in enumerate(entries):
        try:
            with transaction.atomic():
                outcome = import_one(entry)
                if outcome == UNCHANGED:
                    transaction.set_rollback(True)
        except ValidationError as error:
            problems.extend(problems_of(entry_where(section, index, entry, key), error))
            continue
        report.add(outcome, entry[key])
    return report, problems


def _retry_policy_import(entry: Any) -> str:
    if not isinstance(entry, dict) or set(entry) - RETRY_POLICY_KEYS or not {"code", "delays"} <= set(entry):
        raise ValidationError("expected an object with code, name, delays, max_retry_after and failure_emails.")
    if not isinstance(entry["code"], str):
        raise ValidationError("“code” must be text, e.g. \"vtiger\".")
    if problems := shape_parse(RetryPolicyShape, entry, what="retry policy")[1]:
        raise ValidationError(problems)
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


def webhooks_import(entries: Any, policies: dict[str, RetryPolicy], *,
                    organization: Organization | None = None) -> tuple[ImportReport, list[str]]:
    """Import inside the caller's transaction; returns what was done and every problem found. What is valid
    is written even when other entries have problems (rules later in the file name these webhooks); the
    caller rolls everything back then.

    ``policies`` are the retry policies by code, as they will be once the file's own are imported;
    ``organization`` limits the section to that organization's entries (the REST API's key)."""
    report = ImportReport()
    if entries is None:
        return report, []
    if not isinstance(entries, list):
        return report, ["\"webhooks\" must be a list."]
    problems: list[str] = []
    shaped: list[tuple[int, WebhookShape]] = []
    for index, entry in enumerate(entries):
        if problem := scope_problem("webhooks", index, entry, organization):
            problems.append(problem)
            continue
        parsed, found = shape_parse(WebhookShape, entry, what="webhook")
        problems += [f"{entry_where('webhooks', index, entry)}: {line}" for line in found]
        if parsed is not None:
            shaped.append((index, parsed))
    seen: dict[tuple[int, str], int] = {}
    for start in range(0, len(shaped), IMPORT_CHUNK):
        problems += _webhooks_chunk_import(shaped[start:start + IMPORT_CHUNK], policies, report, seen)
    return report, problems


# Webhooks looked up, validated and written together. Bounds what a process holds in memory, and how long the
# import's transaction goes without a statement while it validates (PostgreSQL ends a session idle in a
# transaction after DATABASE_IDLE_IN_TRANSACTION_TIMEOUT): a few seconds per chunk, whatever the file.
IMPORT_CHUNK = 500


def _webhooks_chunk_import(chunk: list[tuple[int, WebhookShape]], policies: dict[str, RetryPolicy],
                           report: ImportReport, seen: dict[tuple[int, str], int]) -> list[str]:
    stored = _Stored.load([entry for _, entry in chunk], seen)
    problems: list[str] = []
    plans: list[services.WebhookRows] = []
    for index, entry in chunk:
        try:
            outcome, plan = _webhook_plan(entry, index, stored, policies)
        except ValidationError as error:
            problems.extend(problems_of(f"webhooks[{index}] “{entry.name}”", error))
            continue
        report.add(outcome, entry.name)
        if plan is not None:
            plans.append(plan)
    try:
        with transaction.atomic():
            services.webhooks_store(items=plans)
    except IntegrityError:
        problems.append("webhooks: another change to these webhooks was saved while the file was imported; "
                        "import it again.")
    return problems


@dataclass
class _Stored:
    """Everything a chunk of entries names, each kind looked up with one query for the whole chunk."""

    scope: ImportScope
    webhooks: dict[tuple[int, str], Webhook]
    fields: dict[tuple[int, str], Field]
    seen: dict[tuple[int, str], int]  # (organization, name) -> index in the file, across the chunks

    @classmethod
    def load(cls, entries: list[WebhookShape], seen: dict[tuple[int, str], int]) -> "_Stored":
        scope = ImportScope.load(entries)
        webhooks = Webhook.objects.filter(
            organization__in=list(scope.organizations.values()), name__in={entry.name for entry in entries},
        ).select_related("organization__edition", "module", "retry_policy").prefetch_related(
            "entity_parameters", "custom_parameters", "headers", "captures__field")
        captured = {c.field for entry in entries if entry.capture and entry.capture.captures
                    for c in entry.capture.captures}
        fields = Field.objects.filter(module__in=list(scope.modules.values()), api_name__in=captured)
        return cls(scope, {(w.organization_id, w.name): w for w in webhooks},
                   {(f.module_id, f.api_name): f for f in fields}, seen)


@dataclass
class _Secrets:
    """What a re-imported webhook already holds, for a file that leaves its secrets out, and the addresses
    those secrets were entered for."""

    custom: dict[str, str]
    headers: dict[str, str]
    origins: dict[str, str]  # URL field name -> the stored URL

    @classmethod
    def of(cls, webhook: Webhook | None) -> "_Secrets":
        if webhook is None:
            return cls({}, {}, {})
        return cls({p.name: p.value for p in webhook.custom_parameters.all()},
                   {h.name: h.value for h in webhook.headers.all() if h.is_secret},
                   {"url": webhook.url, "oauth_token_url": webhook.oauth_token_url})


SCALARS = [("description", "description"), ("url", "url"), ("method", "method"), ("content_type", "content_type"),
           ("active", "is_active"), ("body", "body"), ("date_format", "date_format"),
           ("datetime_format", "datetime_format"), ("time_zone", "time_zone"), ("signing_secret", "signing_secret")]


@dataclass
class _Wanted:
    """The rows an entry gives its webhook (None: the file leaves that kind as stored)."""

    entity: list[services.Parameter]
    custom: list[services.Parameter]
    headers: list[services.Header] | None
    captures: list[Capture] | None


def _webhook_plan(entry: WebhookShape, index: int, stored: _Stored,
                  policies: dict[str, RetryPolicy]) -> tuple[str, services.WebhookRows | None]:
    """What importing one entry does (created, changed, unchanged) and the rows to write for it, checked
    exactly as the admin checks a save; raises ValidationError with every problem."""
    organization, module = stored.scope.find(entry.organization, entry.module)
    key = (organization.pk, entry.name)
    if key in stored.seen:
        raise ValidationError({"name": f"the file has webhooks[{stored.seen[key]}] of {organization.name} with this "
                                       "name too; a name is unique per organization."})
    stored.seen[key] = index
    current = stored.webhooks.get(key)
    before = None if current is None else webhook_export(current, include_secrets=True)
    values = {} if current is None else _field_values(current)
    stored_rows = WebhookRowsOf([], [], [], []) if current is None else WebhookRowsOf.stored(current)
    secrets = _Secrets.of(current)
    webhook = current or Webhook(organization=organization, name=entry.name)
    wanted = _webhook_apply(webhook, entry, module, secrets, stored.fields, policies)
    if current is not None:
        _retarget_check(webhook, entry, secrets)
    signing_given = entry.signing_secret is not None or entry.previous_signing_secret is not None
    if problems := services.webhook_problems(
            webhook=webhook, entity_parameters=wanted.entity, custom_parameters=wanted.custom,
            captures=wanted.captures, headers=wanted.headers, references_loaded=True, signing_given=signing_given):
        raise ValidationError(problems)
    rows = WebhookRowsOf(wanted.entity, wanted.custom,
                         stored_rows.headers if wanted.headers is None else wanted.headers,
                         stored_rows.captures if wanted.captures is None else _capture_rows(wanted.captures))
    after = webhook_export(webhook, include_secrets=True, rows=rows)
    outcome = outcome_of(before, after)
    if outcome == UNCHANGED:
        return outcome, None
    return outcome, services.WebhookRows(
        webhook, fields=[name for name, value in values.items() if getattr(webhook, name) != value],
        entity_parameters=wanted.entity if _differs(before, after, "entity_parameters") else None,
        custom_parameters=wanted.custom if _differs(before, after, "custom_parameters") else None,
        headers=wanted.headers if _differs(before, after, "headers") else None,
        captures=wanted.captures if _differs(before, after, "capture") else None)


def _webhook_apply(webhook: Webhook, entry: WebhookShape, module: Module, secrets: _Secrets,
                   fields: dict[tuple[int, str], Field], policies: dict[str, RetryPolicy]) -> _Wanted:
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
    for name in services.webhook_unused_secrets(auth_type=webhook.auth_type, certificate=webhook.tls_client_certificate):
        setattr(webhook, name, "")
    _previous_secret_apply(webhook, entry.previous_signing_secret)
    return _Wanted(
        entity=[services.Parameter(p.name, p.value) for p in entry.entity_parameters or []],
        custom=[services.Parameter(p.name, secrets.custom.get(p.name, "") if p.value is None else p.value)
                for p in entry.custom_parameters or []],
        headers=None if entry.headers is None else _headers_of(entry.headers, secrets.headers),
        captures=_captures_apply(webhook, module, entry.capture, fields))


def _field_values(webhook: Webhook) -> dict[str, Any]:
    """The stored webhook's own fields (foreign keys by id), to write back only those an import changes."""
    return {f.attname: getattr(webhook, f.attname) for f in Webhook._meta.concrete_fields
            if not f.primary_key and f.name not in ("created_at", "modified_at")}


def _differs(before: dict[str, Any] | None, after: dict[str, Any], key: str) -> bool:
    """Whether this kind of row changes (a new webhook: every kind given): only those are written again."""
    return before is None or before[key] != after[key]


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


def _headers_of(items: list[HeaderShape], stored: dict[str, str]) -> list[services.Header]:
    """A secret header left null keeps its stored value (for the same host: _retarget_check)."""
    return [services.Header(item.name, (stored.get(item.name, "") if item.value is None and item.secret
                                        else item.value or ""), item.secret) for item in items]


# Secret fields of the webhook and how the file names them in a problem.
SECRET_KEYS = {"auth_password": "auth.password", "auth_token": "auth.token",
               "oauth_client_secret": "auth.client_secret", "tls_client_key": "tls.client_key"}


def _kept_secrets(webhook: Webhook, entry: WebhookShape, secrets: _Secrets) -> dict[str, list[str]]:
    """Every secret the import would keep from what is stored rather than take from the file, by the URL
    field whose host it was entered for: whatever the file leaves out (null, or a whole key such as
    "headers") counts as kept."""
    auth, tls = entry.auth or AuthShape(), entry.tls or TlsShape()
    given = {"auth_password": auth.password, "auth_token": auth.token, "oauth_client_secret": auth.client_secret,
             "tls_client_key": tls.client_key}
    kept: dict[str, list[str]] = defaultdict(list)
    for name, (_, origins) in services.WEBHOOK_SECRETS.items():
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


def _retarget_check(webhook: Webhook, entry: WebhookShape, secrets: _Secrets) -> None:
    """A secret the file leaves out is not sent to a host it was not entered for (docs/operate/security.md)."""
    for origin, kept in _kept_secrets(webhook, entry, secrets).items():
        if problem := services.webhook_retarget_problem(stored_url=secrets.origins[origin],
                                                        url=getattr(webhook, origin), kept=kept):
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


def _capture_rows(captures: list[Capture]) -> list[tuple[str, str, str]]:
    """As the database will order them: by when, then by their place in the file."""
    ordered = sorted(enumerate(captures), key=lambda pair: (pair[1].when, pair[0]))
    return [(c.when, c.expression, c.field.api_name) for _, c in ordered]

