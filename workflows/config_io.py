"""The whole configuration as one JSON file: webhooks (dispatcher.config_io) and workflow rules.

Rules refer to modules and fields by API name and to webhooks by name, so a file moves between
environments whose ids differ. Imports are all or nothing, every problem named with its location.

Like the webhooks, the rules of a file are looked up with one query per kind (organizations, modules,
fields, the webhooks their actions name, the stored rules), and a rule the file would not change is not
saved at all. A file too large to import within a web request is imported by a worker, as a job
(ConfigImportJob, config_import_job_run).
"""
import datetime
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from pydantic import AfterValidator

from crm.models import Field, Module, Organization
from dispatcher.models import RetryPolicy, Webhook
from dispatcher.config_io.export import config_export
from dispatcher.config_io.imports import ImportScope, config_check_header, retry_policies_import, webhooks_import
from dispatcher.config_io.report import UNCHANGED, ConfigError, ImportReport, outcome_of, problems_of, scope_problem
from dispatcher.config_io.shapes import Shape, Whole, shape_parse
from dispatcher.crypto import decrypt as secret_decrypt
from workflows import services
from workflows.models import Action, Condition, ConfigImportJob, ImportStatus, WorkflowRule

logger = logging.getLogger(__name__)


def _scalar_text(value: Any) -> str | None:
    """A condition's value as the file may give it: text or a number (kept as text, as the admin stores it)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError("must be text or a number")


ScalarText = Annotated[Any, AfterValidator(_scalar_text)]


class ConditionShape(Shape):
    number: Whole | None = None
    lookup: str | None = None
    field: str
    operator: str | None = None
    value: ScalarText = None
    value_to: ScalarText = None


class ActionShape(Shape):
    webhook: str
    kind: str | None = None
    delay: Whole | None = None
    unit: str | None = None
    relative_field: str | None = None
    relative_offset_days: Whole | None = None
    relative_time: str | None = None


class RuleShape(Shape):
    organization: str
    module: str
    name: str
    description: str | None = None
    active: bool | None = None
    execution_order: Whole | None = None
    trigger: str | None = None
    edit_mode: str | None = None
    trigger_field: str | None = None
    trigger_value: str | None = None
    date_offset_days: Whole | None = None
    date_time: str | None = None
    date_yearly: bool | None = None
    all_records: bool | None = None
    criteria_pattern: str | None = None
    conditions: list[ConditionShape] | None = None
    actions: list[ActionShape] | None = None


@dataclass
class FullReport:
    """What an import did, or (dry run) would do, section by section, and what it took away."""

    retry_policies: ImportReport
    webhooks: ImportReport
    rules: ImportReport
    actions_added: list[str] = field(default_factory=list)
    actions_changed: list[str] = field(default_factory=list)
    actions_removed: list[str] = field(default_factory=list)
    runs_cancelled: int = 0

    @property
    def changes_anything(self) -> bool:
        sections = (self.retry_policies, self.webhooks, self.rules)
        return any(s.created or s.updated for s in sections) or bool(self.actions_removed)


def config_export_all(*, organization: Organization | None = None, include_secrets: bool = False) -> dict[str, Any]:
    data = config_export(organization=organization, include_secrets=include_secrets)
    rules = rules_loaded().order_by("organization__name", "module__api_name", "execution_order", "name")
    if organization is not None:
        rules = rules.filter(organization=organization)
    data["workflow_rules"] = [rule_export(rule) for rule in rules]
    return data


def _time(value: datetime.time | None) -> str | None:
    return value.strftime("%H:%M") if value else None


def rule_export(rule: WorkflowRule) -> dict[str, Any]:
    return rule_data(rule, rule.conditions.all(), rule.actions.all())


def rule_data(rule: WorkflowRule, conditions: Iterable[Condition], actions: Iterable[Action]) -> dict[str, Any]:
    """A rule's entry of the file, from its stored rows or from those an import would store."""
    return {
        "organization": rule.organization.name, "module": rule.module.api_name, "name": rule.name,
        "description": rule.description, "active": rule.is_active, "execution_order": rule.execution_order,
        "trigger": rule.trigger, "edit_mode": rule.edit_mode,
        "trigger_field": rule.trigger_field.api_name if rule.trigger_field else None,
        "trigger_value": rule.trigger_value, "date_offset_days": rule.date_offset_days,
        "date_time": _time(rule.date_time), "date_yearly": rule.date_yearly,
        "all_records": rule.match_all_records, "criteria_pattern": rule.criteria_pattern,
        "conditions": [{
            "number": c.number, "lookup": c.lookup.api_name if c.lookup else None, "field": c.field.api_name,
            "operator": c.operator, "value": c.value, "value_to": c.value_to,
        } for c in conditions],
        "actions": [{
            "webhook": a.webhook.name, "kind": a.kind, "delay": a.delay_amount, "unit": a.delay_unit,
            "relative_field": a.relative_field.api_name if a.relative_field else None,
            "relative_offset_days": a.relative_offset_days, "relative_time": _time(a.relative_time),
        } for a in actions],
    }


def config_import_all(*, data: Any, dry_run: bool = False, organization: Organization | None = None) -> FullReport:
    """Retry policies, then webhooks (they name policies), then rules (they name webhooks); one problem
    anywhere and nothing changes. A dry run does the whole import and rolls it back, so its report is
    exactly what the import would do, cancelled runs included.

    organization (the REST API's: a key's own) limits the file to that organization's webhooks and rules,
    and to the retry policies as they are (they are shared, changed by superusers only)."""
    config_check_header(data)
    with transaction.atomic():
        policies, problems = retry_policies_import(data.get("retry_policies"))
        if organization is not None:
            problems += [
                f"retry_policies “{code}”: retry policies are shared by every organization; the file would "
                f"{verb} it, which only a superuser may (admin or import_config)."
                for verb, codes in (("create", policies.created), ("change", policies.updated)) for code in codes]
        by_code = {policy.code: policy for policy in RetryPolicy.objects.all()}
        webhooks, webhook_problems = webhooks_import(data.get("webhooks"), by_code, organization=organization)
        report = FullReport(retry_policies=policies, webhooks=webhooks, rules=ImportReport())
        rule_problems = rules_import(data.get("workflow_rules"), report, organization=organization)
        problems += webhook_problems + rule_problems
        if problems:
            transaction.set_rollback(True)
            raise ConfigError(problems)
        if dry_run:
            transaction.set_rollback(True)
    return report


def rules_import(entries: list[Any] | None, report: FullReport, *, organization: Organization | None) -> list[str]:
    """The "workflow_rules" section into report.rules; returns every problem found."""
    problems: list[str] = []
    shaped: list[tuple[int, RuleShape]] = []
    for index, entry in enumerate(entries or []):
        if problem := scope_problem("workflow_rules", index, entry, organization):
            problems.append(problem)
            continue
        parsed, found = shape_parse(RuleShape, entry, what="rule")
        where = f"workflow_rules[{index}]" + (f" “{entry.get('name')}”" if isinstance(entry, dict) else "")
        problems += [f"{where}: {line}" for line in found]
        if parsed is not None:
            shaped.append((index, parsed))
    lookups = _RuleLookups.load([entry for _, entry in shaped])
    for index, entry in shaped:
        try:
            report.rules.add(_rule_import(entry, index, lookups, report), entry.name)
        except ValidationError as error:
            problems.extend(problems_of(f"workflow_rules[{index}] “{entry.name}”", error))
    return problems


@dataclass
class _RuleLookups:
    """What the rules of a file name, each kind looked up once for the whole section."""

    scope: ImportScope
    fields: dict[tuple[int, str], Field]
    webhooks: dict[tuple[int, str], Webhook]
    rules: dict[tuple[int, str], WorkflowRule]
    seen: dict[tuple[int, str], int] = field(default_factory=dict)

    @classmethod
    def load(cls, entries: list[RuleShape]) -> "_RuleLookups":
        scope = ImportScope.load(entries)
        organizations = list(scope.organizations.values())
        fields = Field.objects.filter(module__organization__in=organizations).select_related("module", "lookup_module")
        webhooks = Webhook.objects.filter(organization__in=organizations, name__in={
            action.webhook for entry in entries for action in entry.actions or []}).select_related("module")
        rules = rules_loaded().filter(organization__in=organizations, name__in={entry.name for entry in entries})
        return cls(scope, {(f.module_id, f.api_name): f for f in fields},
                   {(w.organization_id, w.name): w for w in webhooks}, {(r.organization_id, r.name): r for r in rules})

    def field(self, module: Module, api_name: str | None, where: str) -> Field | None:
        if api_name is None:
            return None
        found = self.fields.get((module.pk, api_name))
        if found is None:
            raise ValidationError(f"{where}: {module.api_name} has no field “{api_name}”.")
        return found


RULE_SCALARS = [("description", "description"), ("active", "is_active"), ("execution_order", "execution_order"),
                ("trigger", "trigger"), ("edit_mode", "edit_mode"), ("trigger_value", "trigger_value"),
                ("date_offset_days", "date_offset_days"), ("date_yearly", "date_yearly"),
                ("all_records", "match_all_records"), ("criteria_pattern", "criteria_pattern")]


def _rule_import(entry: RuleShape, index: int, lookups: _RuleLookups, report: FullReport) -> str:
    organization, module = lookups.scope.find(entry.organization, entry.module)
    key = (organization.pk, entry.name)
    if key in lookups.seen:
        raise ValidationError({"name": f"the file has workflow_rules[{lookups.seen[key]}] of {organization.name} "
                                       "with this name too; a name is unique per organization."})
    lookups.seen[key] = index
    rule = lookups.rules.get(key)
    before = None if rule is None else rule_export(rule)
    rule = rule or WorkflowRule(organization=organization, name=entry.name)
    rule.organization, rule.module = organization, module  # with its edition: no query when checked
    for name, attribute in RULE_SCALARS:
        if getattr(entry, name) is not None:
            setattr(rule, attribute, getattr(entry, name))
    rule.trigger_field = lookups.field(module, entry.trigger_field, "trigger_field")
    rule.date_time = _parse_time(entry.date_time, "date_time")
    conditions = [_condition(module, item, i, lookups) for i, item in enumerate(entry.conditions or [])]
    actions = [_action(organization, module, item, i, lookups) for i, item in enumerate(entry.actions or [])]
    outcome = outcome_of(before, rule_data(rule, sorted(conditions, key=lambda c: c.number), actions))
    if outcome == UNCHANGED:
        return outcome  # not saved at all: its modified time, which the compiled rules watch, stays
    saved = services.rule_save(rule=rule, conditions=conditions, actions=actions)
    report.actions_added += saved.actions_added
    report.actions_changed += saved.actions_changed
    report.actions_removed += saved.actions_removed
    report.runs_cancelled += saved.runs_cancelled
    return outcome


def rules_loaded() -> Any:
    return WorkflowRule.objects.select_related("organization", "module", "trigger_field").prefetch_related(
        "conditions__field", "conditions__lookup", "actions__webhook", "actions__relative_field",
    )


def _parse_time(value: str | None, where: str) -> datetime.time | None:
    if value is None:
        return None
    try:
        return datetime.time.fromisoformat(value)
    except ValueError:
        raise ValidationError(f"{where}: “{value}” is not a time such as 09:00.") from None


# Model fields of an action under the names the file gives them.
ACTION_KEYS = {"delay_amount": "delay", "delay_unit": "unit"}


def _row_check(row: models.Model, where: str, exclude: list[str]) -> None:
    """The row's own model validation (choices, number ranges), as the admin's inline form runs it."""
    try:
        row.full_clean(exclude=exclude, validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        raise ValidationError([f"{where}.{ACTION_KEYS.get(name, name)}: {message}"
                               for name, messages in error.message_dict.items() for message in messages]) from None


def _condition(module: Module, item: ConditionShape, index: int, lookups: _RuleLookups) -> Condition:
    where = f"conditions[{index}]"
    lookup = lookups.field(module, item.lookup, f"{where}.lookup")
    target = lookup.lookup_module if lookup is not None and lookup.lookup_module is not None else module
    found = lookups.field(target, item.field, f"{where}.field")
    condition = Condition(number=index + 1 if item.number is None else item.number, lookup=lookup, field=found,
                          operator=item.operator or "is", value=item.value or "", value_to=item.value_to or "")
    _row_check(condition, where, ["rule", "lookup", "field"])
    return condition


def _action(organization: Organization, module: Module, item: ActionShape, index: int,
            lookups: _RuleLookups) -> Action:
    where = f"actions[{index}]"
    webhook = lookups.webhooks.get((organization.pk, item.webhook))
    if webhook is None:
        raise ValidationError(f"{where}: there is no webhook named “{item.webhook}”.")
    action = Action(webhook=webhook, kind=item.kind or "instant", delay_amount=item.delay or 0,
                    delay_unit=item.unit or "hours",
                    relative_field=lookups.field(module, item.relative_field, f"{where}.relative_field"),
                    relative_offset_days=item.relative_offset_days or 0,
                    relative_time=_parse_time(item.relative_time, f"{where}.relative_time"), position=index)
    _row_check(action, where, ["rule", "webhook", "relative_field"])
    return action


def report_lines(report: FullReport, *, dry_run: bool) -> list[str]:
    """What was (or would be) created, changed, deleted and cancelled, and what stays as it is."""
    create, change, delete, cancel, add = ("Would create", "Would change", "Would delete", "Would cancel",
                                           "Would add") if dry_run \
        else ("Created", "Changed", "Deleted", "Cancelled", "Added")
    lines = []
    for kind, section in [("retry policy(ies)", report.retry_policies), ("webhook(s)", report.webhooks),
                          ("workflow rule(s)", report.rules)]:
        for verb, names in [(create, section.created), (change, section.updated)]:
            if names:
                lines.append(f"{verb} {len(names)} {kind}: {', '.join(names)}")
        if section.unchanged:
            lines.append(f"Unchanged {len(section.unchanged)} {kind}: {', '.join(section.unchanged)}")
    for verb, actions in [(add, report.actions_added), (change, report.actions_changed),
                          (delete, report.actions_removed)]:
        if actions:
            lines.append(f"{verb} {len(actions)} action(s): {'; '.join(actions)}")
    if report.runs_cancelled or report.actions_removed:
        lines.append(f"{cancel} {report.runs_cancelled} scheduled run(s) of the deleted actions")
    if not report.changes_anything:
        lines.append("Nothing to change: the installation already matches the file.")
    return lines


def report_data(report: FullReport, *, dry_run: bool) -> dict[str, Any]:
    """The report as the REST API answers it (synchronously, or as a job's result)."""
    def section(s: ImportReport) -> dict[str, list[str]]:
        return {"created": s.created, "updated": s.updated, "unchanged": s.unchanged}

    return {"dry_run": dry_run, "retry_policies": section(report.retry_policies), "webhooks": section(report.webhooks),
            "workflow_rules": section(report.rules), "actions_added": report.actions_added,
            "actions_changed": report.actions_changed, "actions_removed": report.actions_removed,
            "runs_cancelled": report.runs_cancelled, "summary": report_lines(report, dry_run=dry_run)}


# A job a worker took longer ago than its hard time limit is not running any more (the worker died; its
# transaction rolled back): it is shown as failed, and a redelivered task may take it over.
JOB_TIME_LIMIT_SECONDS = 900
JOB_STOPPED = ("The worker importing the file stopped before it ended (killed, or over its time limit); "
               "nothing was imported. Send the file again.")


def config_import_job_run(*, job_id: int) -> None:
    """Import a job's file in this worker: all or nothing in one transaction, as a synchronous import; the
    job records the report or every problem, and the file is forgotten."""
    now = timezone.now()
    stale = now - datetime.timedelta(seconds=JOB_TIME_LIMIT_SECONDS)
    claimed = ConfigImportJob.objects.filter(pk=job_id).filter(
        models.Q(status=ImportStatus.PENDING) | models.Q(status=ImportStatus.RUNNING, started_at__lt=stale),
    ).update(status=ImportStatus.RUNNING, started_at=now)
    if not claimed:
        return  # done already, or another worker has it (a redelivered message)
    job = ConfigImportJob.objects.select_related("organization").get(pk=job_id)
    status, report, problems = ImportStatus.FAILED, None, []
    try:
        result = config_import_all(data=json.loads(secret_decrypt(job.file)), dry_run=job.dry_run,
                                   organization=job.organization)
    except ConfigError as error:
        problems = error.problems
    except Exception:  # a job records its failure instead of leaving "running" behind
        logger.exception("config_import.failed job=%s", job.public_id)
        problems = ["The import stopped on an unexpected error; nothing was imported."]
    else:
        status, report = ImportStatus.DONE, report_data(result, dry_run=job.dry_run)
    ConfigImportJob.objects.filter(pk=job_id).update(status=status, report=report, problems=problems, file="",
                                                     finished_at=timezone.now())
    logger.info("config_import.%s job=%s entries=%s problems=%s", status, job.public_id, job.entries, len(problems))
