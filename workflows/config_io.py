"""The whole configuration as one JSON file: webhooks (dispatcher.config_io) and workflow rules.

Rules refer to modules and fields by API name and to webhooks by name, so a file moves between
environments whose ids differ. Imports are all or nothing, every problem named with its location.
"""
import datetime
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.models import Field, Module, Organization
from dispatcher.services import (
    ConfigError, ImportReport, config_check_header, config_export, entries_import, entry_scope, outcome_of,
    retry_policies_import, webhooks_import,
)
from dispatcher.models import RetryPolicy, Webhook
from workflows import services
from workflows.models import Action, Condition, WorkflowRule

RULE_KEYS = {
    "organization", "module", "name", "description", "active", "execution_order", "trigger", "edit_mode",
    "trigger_field", "trigger_value", "date_offset_days", "date_time", "date_yearly", "all_records",
    "criteria_pattern", "conditions", "actions",
}
CONDITION_KEYS = {"number", "lookup", "field", "operator", "value", "value_to"}
ACTION_KEYS = {"webhook", "kind", "delay", "unit", "relative_field", "relative_offset_days", "relative_time"}


@dataclass
class FullReport:
    """What an import did, or (dry run) would do, section by section, and what it took away."""

    retry_policies: ImportReport
    webhooks: ImportReport
    rules: ImportReport
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
        } for c in rule.conditions.all()],
        "actions": [{
            "webhook": a.webhook.name, "kind": a.kind, "delay": a.delay_amount, "unit": a.delay_unit,
            "relative_field": a.relative_field.api_name if a.relative_field else None,
            "relative_offset_days": a.relative_offset_days, "relative_time": _time(a.relative_time),
        } for a in rule.actions.all()],
    }


def config_import_all(*, data: Any, dry_run: bool = False, organization: Organization | None = None) -> FullReport:
    """Retry policies, then webhooks (they name policies), then rules (they name webhooks); one problem
    anywhere and nothing changes. A dry run does the whole import and rolls it back, so its report is
    exactly what the import would do, cancelled runs included.

    organization (the REST API's: a key's own) limits the file to that organization's webhooks and rules,
    and to the retry policies as they are (they are shared, changed by superusers only)."""
    config_check_header(data)
    scope_problems = _outside(data, organization) if organization is not None else []
    with transaction.atomic():
        policies, problems = retry_policies_import(data.get("retry_policies"))
        if organization is not None:
            problems = scope_problems + problems + [
                f"retry_policies “{code}”: retry policies are shared by every organization; the file would "
                f"{verb} it, which only a superuser may (admin or import_config)."
                for verb, codes in (("create", policies.created), ("change", policies.updated)) for code in codes]
        by_code = {policy.code: policy for policy in RetryPolicy.objects.all()}
        webhooks, webhook_problems = webhooks_import(data.get("webhooks"), by_code)
        report = FullReport(retry_policies=policies, webhooks=webhooks, rules=ImportReport())
        report.rules, rule_problems = entries_import(
            "workflow_rules", data.get("workflow_rules"), lambda entry: _rule_import(entry, report))
        problems += webhook_problems + rule_problems
        if problems:
            transaction.set_rollback(True)
            raise ConfigError(problems)
        if dry_run:
            transaction.set_rollback(True)
    return report


def _outside(data: dict, organization: Organization) -> list[str]:
    """Entries of the file that name another organization than the importer's."""
    problems = []
    for section in ("webhooks", "workflow_rules"):
        entries = data.get(section)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(entry, dict) and entry.get("organization") != organization.name:
                problems.append(f"{section}[{index}] “{entry.get('name')}”: organization: this key belongs to "
                                f"{organization.name}; entries of other organizations are not imported.")
    return problems


def _rule_import(entry: Any, report: FullReport) -> str:
    organization, module = entry_scope(entry, allowed=RULE_KEYS, what="rule")
    rule = WorkflowRule.objects.filter(organization=organization, name=entry["name"]).first()
    before = None if rule is None else rule_export(_rule_loaded(rule.pk))
    rule = rule or WorkflowRule(organization=organization, name=entry["name"])
    rule.module = module
    for key, attribute in [("description", "description"), ("active", "is_active"),
                           ("execution_order", "execution_order"), ("trigger", "trigger"), ("edit_mode", "edit_mode"),
                           ("trigger_value", "trigger_value"), ("date_offset_days", "date_offset_days"),
                           ("date_yearly", "date_yearly"), ("all_records", "match_all_records"),
                           ("criteria_pattern", "criteria_pattern")]:
        if entry.get(key) is not None:
            setattr(rule, attribute, entry[key])
    rule.trigger_field = _field(module, entry.get("trigger_field"), "trigger_field")
    rule.date_time = _parse_time(entry.get("date_time"), "date_time")
    conditions = [_condition(module, item, i) for i, item in enumerate(entry.get("conditions") or [])]
    actions = [_action(organization, module, item, i) for i, item in enumerate(entry.get("actions") or [])]
    saved = services.rule_save(rule=rule, conditions=conditions, actions=actions)
    outcome = outcome_of(before, rule_export(_rule_loaded(rule.pk)))
    report.actions_removed += saved.actions_removed
    report.runs_cancelled += saved.runs_cancelled
    return outcome


def rules_loaded() -> Any:
    return WorkflowRule.objects.select_related("organization", "module", "trigger_field").prefetch_related(
        "conditions__field", "conditions__lookup", "actions__webhook", "actions__relative_field",
    )


def _rule_loaded(pk: int) -> WorkflowRule:
    return rules_loaded().get(pk=pk)


def _field(module: Module, api_name: Any, where: str) -> Field | None:
    if api_name is None:
        return None
    found = Field.objects.filter(module=module, api_name=api_name).first()
    if found is None:
        raise ValidationError(f"{where}: {module.api_name} has no field “{api_name}”.")
    return found


def _parse_time(value: Any, where: str) -> datetime.time | None:
    if value is None:
        return None
    try:
        return datetime.time.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{where}: “{value}” is not a time such as 09:00.") from None


def _condition(module: Module, item: Any, index: int) -> Condition:
    where = f"conditions[{index}]"
    if not isinstance(item, dict) or set(item) - CONDITION_KEYS or "field" not in item:
        raise ValidationError(f"{where}: expected an object with number, field, operator, value (and lookup).")
    lookup = _field(module, item.get("lookup"), f"{where}.lookup")
    target = lookup.lookup_module if lookup is not None and lookup.lookup_module is not None else module
    return Condition(number=item.get("number", index + 1), lookup=lookup,
                     field=_field(target, item["field"], f"{where}.field"),
                     operator=item.get("operator", "is"), value=str(item.get("value") or ""),
                     value_to=str(item.get("value_to") or ""))


def _action(organization: Organization, module: Module, item: Any, index: int) -> Action:
    where = f"actions[{index}]"
    if not isinstance(item, dict) or set(item) - ACTION_KEYS or "webhook" not in item:
        raise ValidationError(f"{where}: expected an object with webhook, kind, delay and unit.")
    webhook = Webhook.objects.filter(organization=organization, name=item["webhook"]).first()
    if webhook is None:
        raise ValidationError(f"{where}: there is no webhook named “{item['webhook']}”.")
    return Action(webhook=webhook, kind=item.get("kind", "instant"), delay_amount=item.get("delay") or 0,
                  delay_unit=item.get("unit", "hours"),
                  relative_field=_field(module, item.get("relative_field"), f"{where}.relative_field"),
                  relative_offset_days=item.get("relative_offset_days") or 0,
                  relative_time=_parse_time(item.get("relative_time"), f"{where}.relative_time"))


def report_lines(report: FullReport, *, dry_run: bool) -> list[str]:
    """What was (or would be) created, changed, deleted and cancelled, and what stays as it is."""
    create, change, delete, cancel = ("Would create", "Would change", "Would delete", "Would cancel") if dry_run \
        else ("Created", "Changed", "Deleted", "Cancelled")
    lines = []
    for kind, section in [("retry policy(ies)", report.retry_policies), ("webhook(s)", report.webhooks),
                          ("workflow rule(s)", report.rules)]:
        for verb, names in [(create, section.created), (change, section.updated)]:
            if names:
                lines.append(f"{verb} {len(names)} {kind}: {', '.join(names)}")
        if section.unchanged:
            lines.append(f"Unchanged {len(section.unchanged)} {kind}: {', '.join(section.unchanged)}")
    if report.actions_removed:
        lines.append(f"{delete} {len(report.actions_removed)} action(s): {'; '.join(report.actions_removed)}")
    if report.runs_cancelled or report.actions_removed:
        lines.append(f"{cancel} {report.runs_cancelled} scheduled run(s) of the deleted actions")
    if not report.changes_anything:
        lines.append("Nothing to change: the installation already matches the file.")
    return lines
