"""Importing a configuration file: its header checked, the retry policies, then the webhooks.

workflows.config_io reads and writes the whole file (webhooks and rules) with these pieces.

The format is documented in docs/operate/config-files.md. On import, a missing secret keeps the value
already stored, for the host it was entered for (webhook_entry.py).

An import's statements do not grow with its new or unchanged webhooks, and grow by one UPDATE per changed
one: each entry is checked for its shape (shapes.py), everything the entries name is looked up with one
query per kind (organizations, modules, stored webhooks with their rows, capture fields), each webhook is
validated in memory by the admin's own validation (webhook_checks.webhook_problems), and what changed is
written in bulk (webhook_rows.webhooks_store). An entry that would change nothing is not written at all.
"""
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm.models import Field, Module, Organization
from dispatcher.config_io.export import FORMAT, SECTIONS, VERSION, WebhookRowsOf, retry_policy_export, webhook_export
from dispatcher.config_io.report import (
    UNCHANGED, ConfigError, ImportReport, entry_where, outcome_of, problems_of, scope_problem,
)
from dispatcher.config_io.shapes import RetryPolicyShape, WebhookShape, shape_parse, text_problems
from dispatcher.config_io.webhook_entry import StoredSecrets, capture_rows, retarget_check, webhook_entry_apply
from dispatcher.models import RetryPolicy, Webhook
from dispatcher.senders.webhook_checks import webhook_problems
from dispatcher.senders.webhook_rows import WebhookRows, webhooks_store

RETRY_POLICY_KEYS = {"code", "name", "delays", "max_retry_after", "failure_emails"}


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
    plans: list[WebhookRows] = []
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
            webhooks_store(items=plans)
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


def _webhook_plan(entry: WebhookShape, index: int, stored: _Stored,
                  policies: dict[str, RetryPolicy]) -> tuple[str, WebhookRows | None]:
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
    secrets = StoredSecrets.of(current)
    webhook = current or Webhook(organization=organization, name=entry.name)
    wanted = webhook_entry_apply(webhook, entry, module, secrets, stored.fields, policies)
    if current is not None:
        retarget_check(webhook, entry, secrets)
    signing_given = entry.signing_secret is not None or entry.previous_signing_secret is not None
    if problems := webhook_problems(
            webhook=webhook, entity_parameters=wanted.entity, custom_parameters=wanted.custom,
            captures=wanted.captures, headers=wanted.headers, references_loaded=True, signing_given=signing_given):
        raise ValidationError(problems)
    rows = WebhookRowsOf(wanted.entity, wanted.custom,
                         stored_rows.headers if wanted.headers is None else wanted.headers,
                         stored_rows.captures if wanted.captures is None else capture_rows(wanted.captures))
    after = webhook_export(webhook, include_secrets=True, rows=rows)
    outcome = outcome_of(before, after)
    if outcome == UNCHANGED:
        return outcome, None
    return outcome, WebhookRows(
        webhook, fields=[name for name, value in values.items() if getattr(webhook, name) != value],
        entity_parameters=wanted.entity if _differs(before, after, "entity_parameters") else None,
        custom_parameters=wanted.custom if _differs(before, after, "custom_parameters") else None,
        headers=wanted.headers if _differs(before, after, "headers") else None,
        captures=wanted.captures if _differs(before, after, "capture") else None)


def _field_values(webhook: Webhook) -> dict[str, Any]:
    """The stored webhook's own fields (foreign keys by id), to write back only those an import changes."""
    return {f.attname: getattr(webhook, f.attname) for f in Webhook._meta.concrete_fields
            if not f.primary_key and f.name not in ("created_at", "modified_at")}


def _differs(before: dict[str, Any] | None, after: dict[str, Any], key: str) -> bool:
    """Whether this kind of row changes (a new webhook: every kind given): only those are written again."""
    return before is None or before[key] != after[key]
