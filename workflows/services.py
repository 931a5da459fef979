"""Workflow rules: the checks that span a rule, its conditions and actions; saving; running on existing records."""
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from crm.field_types import kind_of
from crm.models import Field, Record
from dispatcher.ops.quotas import quota_remaining, webhooks_refusal
from dispatcher.models import Capture
from workflows.conditions import condition_value_error
from workflows.engine import date_rule_schedule, rule_compile, rule_fire, run_cancel
from workflows.models import Action, ActionKind, ActionRun, Condition, Operator, RunStatus, Trigger, WorkflowRule
from workflows.pattern import PatternError, pattern_compile

EDIT_TRIGGERS = (Trigger.EDIT, Trigger.CREATE_OR_EDIT, Trigger.FIELD_UPDATE)
RUN_ON_EXISTING_MAX = 10_000  # records one "run on existing records" may fire for


def rule_check(*, rule: WorkflowRule, conditions: list[Condition], actions: list[Action]) -> dict[str, list[str]]:
    """Every rule of seed 003/004 that involves more than one field; messages keyed by where they belong."""
    errors: dict[str, list[str]] = defaultdict(list)
    module, organization = rule.module, rule.organization
    if module.organization_id != organization.pk:
        errors["module"].append(f"The module {module.api_name} belongs to another organization.")
        return dict(errors)
    if problem := _trigger_problem(rule):
        errors[problem[0]].append(problem[1])
    numbers = [c.number for c in conditions]
    for number in sorted({n for n in numbers if numbers.count(n) > 1}):
        errors["conditions"].append(f"Condition number {number} is used twice.")
    for condition in conditions:
        if condition_problem := _condition_problem(rule, condition):
            errors["conditions"].append(f"Condition {condition.number}: {condition_problem}")
    if not rule.match_all_records:
        try:
            pattern_compile(rule.criteria_pattern, set(numbers))
        except PatternError as error:
            errors["criteria_pattern"].append(str(error))

    if problems := _actions_problems(rule, actions):
        errors["actions"] = problems
    return dict(errors)


def _trigger_problem(rule: WorkflowRule) -> tuple[str, str] | None:
    """The watched field of a field-update or date trigger: (form field, message), or None."""
    field = rule.trigger_field
    if rule.trigger not in (Trigger.FIELD_UPDATE, Trigger.DATE):
        return None
    if field is None:
        return "trigger_field", "Choose the field this trigger watches."
    if field.module_id != rule.module_id:
        return "trigger_field", f"“{field.label}” is not a field of {rule.module.api_name}."
    if rule.trigger == Trigger.DATE and not kind_of(field).temporal:
        return "trigger_field", f"“{field.label}” is not a date or date/time field."
    if rule.trigger == Trigger.FIELD_UPDATE and rule.trigger_value and (
            problem := kind_of(field).condition_value_problem(field, rule.trigger_value)):
        return "trigger_value", problem
    return None


def _actions_problems(rule: WorkflowRule, actions: list[Action]) -> list[str]:
    """The edition's limits on a rule's actions (seed 003: six per rule, one instant), then each action."""
    problems = []
    edition = rule.organization.edition
    if actions and (refusal := webhooks_refusal(rule.organization)):
        problems.append(refusal)
    instant = [a for a in actions if a.kind == ActionKind.INSTANT]
    if len(actions) > edition.webhooks_per_rule:
        problems.append(
            f"A rule can have at most {edition.webhooks_per_rule} webhook actions in the {edition.name}; "
            f"this one has {len(actions)}.")
    if len(instant) > edition.instant_webhooks_per_rule:
        problems.append(
            f"A rule can have at most {edition.instant_webhooks_per_rule} instant webhook action(s) in the "
            f"{edition.name} (the others must be time-based); this one has {len(instant)}.")
    problems += [problem for action in actions if (problem := _action_problem(rule, action))]
    return problems


def _condition_problem(rule: WorkflowRule, condition: Condition) -> str | None:
    field, lookup = condition.field, condition.lookup
    if lookup is None and field.module_id != rule.module_id:
        return f"“{field.label}” is a field of {field.module.api_name}; choose the lookup that reaches it."
    if lookup is not None:
        if lookup.module_id != rule.module_id or not kind_of(lookup).links_records:
            return f"“{lookup.label}” is not a lookup field of {rule.module.api_name}."
        if lookup.lookup_module is None or lookup.lookup_module_id != field.module_id:
            looked_up = lookup.lookup_module.api_name if lookup.lookup_module else "nothing"
            return f"“{lookup.label}” looks up {looked_up}, not {field.module.api_name}."
        if condition.operator in (Operator.CHANGED, Operator.CHANGED_TO):
            return "“changed” can only test a field of the record itself."
    if not field.is_usable:
        return f"“{field.label}” is deleted or disabled."
    if condition.operator in (Operator.CHANGED, Operator.CHANGED_TO) and rule.trigger not in EDIT_TRIGGERS:
        return "“changed” and “changed to” need a trigger on edits."
    if condition.operator == Operator.BETWEEN and not condition.value_to:
        return "“between” needs two values."
    return condition_value_error(field, condition.operator, condition.value, condition.value_to)


def _action_problem(rule: WorkflowRule, action: Action) -> str | None:
    webhook = action.webhook
    if webhook.organization_id != rule.organization_id:
        return f"The webhook “{webhook.name}” belongs to another organization."
    if webhook.module_id != rule.module_id:
        return f"The webhook “{webhook.name}” is for {webhook.module.api_name} records; this rule is for " \
               f"{rule.module.api_name}."
    if action.kind == ActionKind.TIME_BASED:
        if rule.trigger == Trigger.DELETE:
            return f"“{webhook.name}”: a rule on deleted records can only have instant actions."
        relative: Field | None = action.relative_field
        if relative is None and not action.delay_amount:
            return f"“{webhook.name}”: a time-based action needs a delay or a date field to be relative to."
        if relative is not None and (relative.module_id != rule.module_id or not kind_of(relative).temporal):
            return f"“{webhook.name}”: “{relative.label}” is not a date field of {rule.module.api_name}."
    return None


@dataclass
class RuleSaved:
    """What saving a rule did to what was there: the rule, the actions it removed and the runs that cancelled."""

    rule: WorkflowRule
    actions_added: list[str] = field(default_factory=list)
    actions_changed: list[str] = field(default_factory=list)
    actions_removed: list[str] = field(default_factory=list)
    runs_cancelled: int = 0


CONDITION_FIELDS = ("lookup", "field", "operator", "value", "value_to")
ACTION_FIELDS = ("kind", "delay_amount", "delay_unit", "relative_field", "relative_offset_days", "relative_time",
                 "position")


@transaction.atomic
def rule_save(*, rule: WorkflowRule, conditions: list[Condition], actions: list[Action]) -> RuleSaved:
    """Validate and store a rule with its conditions and actions (the import path; the admin uses inlines).

    What is there is updated in place, as the admin's inlines do, so that scheduled runs and firing history
    survive: conditions are matched by number, actions by webhook (the n-th action of a webhook in the file is
    the n-th one stored). Actions left over are removed with ``actions_remove``, which cancels their runs."""
    errors: dict[str, list[str]] = defaultdict(list)
    try:
        rule.full_clean()
    except ValidationError as error:
        for key, messages in error.message_dict.items():
            errors[key].extend(messages)
    if not errors:
        for key, messages in rule_check(rule=rule, conditions=conditions, actions=actions).items():
            errors[key].extend(messages)
    if errors:
        raise ValidationError(dict(errors))
    rule.save()
    _conditions_sync(rule, conditions)
    added, changed, removed = _actions_sync(rule, actions)
    return RuleSaved(rule=rule, actions_added=[action_describe(action) for action in added],
                     actions_changed=[action_describe(action) for action in changed],
                     actions_removed=[action_describe(action) for action in removed],
                     runs_cancelled=actions_remove(actions=removed))


def _conditions_sync(rule: WorkflowRule, conditions: list[Condition]) -> None:
    stored = {c.number: c for c in rule.conditions.all()}
    for condition in conditions:
        kept = stored.pop(condition.number, None)
        if kept is None:
            condition.rule = rule
            condition.save()
        elif _copy(condition, kept, CONDITION_FIELDS):
            kept.save()
    Condition.objects.filter(pk__in=[c.pk for c in stored.values()]).delete()


def _actions_sync(rule: WorkflowRule, actions: list[Action]) -> tuple[list[Action], list[Action], list[Action]]:
    """Update the stored actions from the wanted ones; returns the actions added, the stored ones changed (a
    move in the list alone is not a change a person needs told) and the stored ones no wanted one matched."""
    added: list[Action] = []
    changed: list[Action] = []
    by_webhook: dict[int, list[Action]] = defaultdict(list)
    for action in rule.actions.select_related("webhook").order_by("position", "id"):
        by_webhook[action.webhook_id].append(action)
    for position, action in enumerate(actions):
        action.position = position
        queue = by_webhook.get(action.webhook_id)
        if not queue:
            action.rule = rule
            action.save()
            added.append(action)
            continue
        kept = queue.pop(0)
        moved_only = all(getattr(action, name) == getattr(kept, name) for name in ACTION_FIELDS if name != "position")
        if _copy(action, kept, ACTION_FIELDS):
            kept.save()
            if not moved_only:
                changed.append(kept)
    return added, changed, [action for queue in by_webhook.values() for action in queue]


def _copy(source: Condition | Action, target: Condition | Action, names: tuple[str, ...]) -> bool:
    """Copy fields onto the stored row; True when one differed (only then is it saved)."""
    changed = False
    for name in names:
        value = getattr(source, name)
        if getattr(target, name) != value:
            setattr(target, name, value)
            changed = True
    return changed


def action_describe(action: Action) -> str:
    """How the log and the import report name an action: its rule, kind, webhook and timing."""
    if action.kind == ActionKind.INSTANT:
        timing = "instant"
    elif action.relative_field is not None:
        timing = f"{action.relative_offset_days:+d} days from {action.relative_field.label}"
    else:
        timing = f"after {action.delay_amount} {action.delay_unit}"
    return f"“{action.rule.name}”: {action.webhook.name} ({timing})"


def actions_remove(*, actions: list[Action]) -> int:
    """Delete actions; their scheduled runs are cancelled first, each with its reason in the run and the log,
    and their past runs stay as firing history. Returns how many runs were cancelled."""
    cancelled = 0
    for action in actions:
        runs = ActionRun.objects.filter(action=action, status=RunStatus.SCHEDULED).select_related(
            "rule", "record", "action__webhook")
        reason = f"The action {action_describe(action)} was removed from the rule."
        for run in runs:
            run_cancel(run, reason[:300])
            cancelled += 1
        action.delete()
    return cancelled


@dataclass(frozen=True)
class ExistingRunReport:
    matching: int
    deliveries: int  # instant: sent now, charged to today's quota
    scheduled: int  # time-based actions and date-rule occurrences: sent later, when due
    quota_left: int
    fired: bool

    @property
    def fits_quota(self) -> bool:
        return self.deliveries <= self.quota_left


def rule_capture_fields(*, rule: WorkflowRule) -> list[str]:
    """Labels of the record fields the rule's webhooks write from their receivers' answers (response capture)."""
    return sorted(set(Capture.objects.filter(
        webhook__workflow_actions__rule=rule, webhook__capture_response=True).values_list("field__label", flat=True)))


def rule_run_on_existing(*, rule: WorkflowRule, dry_run: bool = True) -> ExistingRunReport:
    """Fire a rule once over the records that match it now; the dry run only counts."""
    compiled = rule_compile(WorkflowRule.objects.select_related("organization", "module", "trigger_field")
                            .prefetch_related("conditions__field", "conditions__lookup", "actions__relative_field")
                            .get(pk=rule.pk))
    now = timezone.now()
    records = Record.objects.filter(module_id=rule.module_id).select_related("module", "owner").order_by("id")
    matching = [r for r in records[:RUN_ON_EXISTING_MAX] if compiled.matches(r, r.values, None, now)]
    is_date_rule = rule.trigger == Trigger.DATE
    # A date rule is not fired now: its next occurrence is scheduled for each record, like on an edit.
    deliveries = 0 if is_date_rule else len(matching) * len(compiled.instant)
    scheduled = len(matching) if is_date_rule else len(matching) * len(compiled.timed)
    quota_left = quota_remaining(organization=rule.organization, now=now)
    if not dry_run:
        with transaction.atomic():
            for record in matching:
                if is_date_rule:
                    date_rule_schedule(compiled.rule, record, now)
                else:
                    rule_fire(compiled, record, "manual", now)  # one record at a time: each is its own firing
    return ExistingRunReport(len(matching), deliveries, scheduled, quota_left, fired=not dry_run)
