"""The workflow engine: which rules a record event fires, and what their actions do.

Rules are compiled once per module and kept until one of the module's rules changes (checked with one
small aggregate query per event). Instant actions become deliveries in the same transaction as the
record change; time-based actions and date rules become scheduled runs, fired by a periodic task that
checks the record again when they fall due.
"""
import datetime
import logging
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from config.caches import VersionedCache
from crm import events
from crm.field_types import kind_of
from crm.models import Record
from dispatcher.delivery import Enqueue, deliveries_enqueue, delivery_enqueue, delivery_log_cancelled, record_ref_of
from dispatcher.models import DeliverySource, Webhook
from workflows.conditions import CompiledCondition
from workflows.models import Action, ActionKind, ActionRun, EditMode, RunStatus, Trigger, WorkflowRule
from workflows.pattern import Evaluator, pattern_compile

logger = logging.getLogger(__name__)

DUE_BATCH = 100  # scheduled runs fired per transaction
UNITS = {"minutes": 60, "hours": 3600, "days": 86400}


@dataclass(frozen=True)
class CompiledRule:
    rule: WorkflowRule
    conditions: tuple[CompiledCondition, ...]
    evaluate: Evaluator
    instant: tuple[Action, ...]
    timed: tuple[Action, ...]

    def matches(self, record: Record, values: dict[str, Any], old_values: dict[str, Any] | None,
                now: datetime.datetime, lookups: dict | None = None) -> bool:
        """Evaluate lazily: the pattern asks for a condition only when it still matters (1 and … stops at a
        false 1), and looked-up records are read once per event (lookups is shared by the event's rules)."""
        if self.rule.match_all_records or not self.conditions:
            return True
        time_zone = self.rule.organization.time_zone
        lookups = {} if lookups is None else lookups
        by_number = {condition.number: condition for condition in self.conditions}

        def compute(number: int) -> bool:
            condition = by_number[number]
            if condition.lookup is None:
                return condition.holds(values, old_values, time_zone, now)
            target_id = values.get(condition.lookup.api_name)
            if target_id not in lookups:
                found = Record.objects.filter(pk=target_id).values_list("values", flat=True).first() \
                    if target_id is not None else None
                lookups[target_id] = found or {}
            return condition.holds(lookups[target_id], None, time_zone, now)

        return self.evaluate(_LazyResults(compute))


class _LazyResults(dict):
    """Condition results computed on first use."""

    def __init__(self, compute) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, number: int) -> bool:
        result = self[number] = self.compute(number)
        return result


_compiled: VersionedCache[int, list[CompiledRule]] = VersionedCache("compiled workflow rules", size=10_000)


def rules_for(module_id: int) -> list[CompiledRule]:
    """The module's active rules, compiled; rebuilt when any rule of the module was saved or deleted."""
    version = tuple(WorkflowRule.objects.filter(module_id=module_id).aggregate(
        changed=Max("modified_at"), count=Count("id")).values())
    return _compiled.get(module_id, version, lambda: [
        rule_compile(rule) for rule in WorkflowRule.objects.filter(module_id=module_id, is_active=True)
        .select_related("organization", "trigger_field", "module")
        .prefetch_related("conditions__field", "conditions__lookup", "actions__relative_field")
        .order_by("execution_order", "id")])


def rule_compile(rule: WorkflowRule) -> CompiledRule:
    conditions = tuple(
        CompiledCondition(c.number, c.field, c.lookup, c.operator, c.value, c.value_to) for c in rule.conditions.all()
    )
    evaluate = pattern_compile(rule.criteria_pattern, {c.number for c in conditions})
    actions = list(rule.actions.all())
    return CompiledRule(
        rule=rule, conditions=conditions, evaluate=evaluate,
        instant=tuple(a for a in actions if a.kind == ActionKind.INSTANT),
        timed=tuple(a for a in actions if a.kind == ActionKind.TIME_BASED),
    )


def record_event_handle(event: events.RecordEvent) -> int:
    """Fire the rules an event matches; returns how many fired. System changes never fire rules."""
    if event.system:
        return 0
    now = timezone.now()
    lookups: dict = {}
    matched = []
    for compiled in rules_for(event.record.module_id):
        rule = compiled.rule
        if rule.trigger == Trigger.DATE:
            _date_rule_reschedule(compiled, event, now)
            continue
        if not _trigger_matches(rule, event):
            continue
        if event.operation == events.DELETE:
            hit = compiled.matches(event.record, event.old_values, None, now, lookups)
        else:
            hit = compiled.matches(event.record, event.new_values, event.old_values or None, now, lookups)
            if hit and event.operation == events.EDIT and rule.edit_mode == EditMode.FIRST_MATCH:
                hit = not compiled.matches(event.record, event.old_values, None, now, lookups)
        if hit:
            matched.append(compiled)
    rules_fire(matched, event.record, event.operation, now)
    return len(matched)


def _trigger_matches(rule: WorkflowRule, event: events.RecordEvent) -> bool:
    operation = event.operation
    if rule.trigger == Trigger.CREATE:
        return operation == events.CREATE
    if rule.trigger == Trigger.EDIT:
        return operation == events.EDIT
    if rule.trigger == Trigger.CREATE_OR_EDIT:
        return operation in (events.CREATE, events.EDIT)
    if rule.trigger == Trigger.DELETE:
        return operation == events.DELETE
    if rule.trigger == Trigger.FIELD_UPDATE:
        name = watched_field(rule)
        if operation != events.EDIT or name not in event.changed_fields:
            return False
        return not rule.trigger_value or str(event.new_values.get(name, "")) == rule.trigger_value
    return False


def rule_fire(compiled: CompiledRule, record: Record, operation: str, now: datetime.datetime) -> list[ActionRun]:
    return rules_fire([compiled], record, operation, now)


def rules_fire(matched: list[CompiledRule], record: Record, operation: str,
               now: datetime.datetime) -> list[ActionRun]:
    """Run the actions of the rules an event matched: instant ones queued for delivery now, time-based ones
    scheduled. One query loads their webhooks; one insert stores the runs."""
    if not matched:
        return []
    ids = {a.webhook_id for compiled in matched for a in compiled.instant + compiled.timed}
    webhooks = {w.pk: w for w in Webhook.objects.select_related("organization__edition", "module").filter(pk__in=ids)}
    record_ref = record_ref_of(record)
    runs, sends = [], []
    for compiled in matched:
        rule = compiled.rule
        for action in compiled.instant:
            run = ActionRun(rule=rule, action=action, record=record, record_ref=record_ref, event=operation,
                            due_at=now)
            webhook = webhooks[action.webhook_id]
            if not webhook.is_active:
                run.status, run.reason = RunStatus.SKIPPED, f"The webhook “{webhook.name}” is inactive."
            else:
                run.status = RunStatus.ENQUEUED
                sends.append((run, Enqueue(webhook, record, DeliverySource.WORKFLOW,
                                                  f"Rule “{rule.name}” on {operation}",
                                                  render_now=operation == events.DELETE)))
            runs.append(run)
        for action in compiled.timed:
            run = ActionRun(rule=rule, action=action, record=record, record_ref=record_ref, event=operation)
            if operation == events.DELETE:
                run.status, run.reason = RunStatus.SKIPPED, "The record was deleted; time-based actions cannot run."
            else:
                run.due_at = action_due_at(action, record, now, rule.organization.time_zone)
                if run.due_at is not None and run.due_at <= now and _due_today(action, run.due_at, now,
                                                                               rule.organization.time_zone):
                    run.due_at = now  # a reminder for a date that is today still goes out today (seed 003, 2)
                if run.due_at is None or run.due_at < now:
                    run.status = RunStatus.SKIPPED
                    run.reason = "The due time is already past." if run.due_at else "The date field is empty."
            runs.append(run)
        logger.info("workflow.fire", extra={"rule_id": rule.pk, "record_id": record.pk,
                                            "organization_id": rule.organization_id, "operation": operation})
    for (run, _), delivery in zip(sends, deliveries_enqueue([send for _, send in sends]), strict=True):
        run.delivery = delivery
    ActionRun.objects.bulk_create(runs)
    return runs


def action_due_at(action: Action, record: Record, now: datetime.datetime, time_zone: str) -> datetime.datetime | None:
    """When a time-based action falls due: after the firing, or relative to a date field of the record."""
    if action.relative_field is None:
        return now + datetime.timedelta(seconds=action.delay_amount * UNITS[action.delay_unit])
    return date_occurrence(record.values.get(action.relative_field.api_name), action.relative_offset_days,
                           action.relative_time, time_zone)


def _due_today(action: Action, due: datetime.datetime, now: datetime.datetime, time_zone: str) -> bool:
    """Relative to a date (not a date/time) field whose day, in the organization's zone, is today."""
    if action.relative_field is None or not kind_of(action.relative_field).date_only:
        return False
    zone = zoneinfo.ZoneInfo(time_zone)
    return due.astimezone(zone).date() == now.astimezone(zone).date()


def date_occurrence(value: Any, offset_days: int, at: datetime.time | None, time_zone: str,
                    year_shift: int = 0) -> datetime.datetime | None:
    """A date field's value plus offset days, at a local time (date fields) or at its own time (date/times)."""
    if not value:
        return None
    zone = zoneinfo.ZoneInfo(time_zone)
    text = str(value)
    if len(text) <= 10:
        day = datetime.date.fromisoformat(text)
        day = _shift_years(day, year_shift) + datetime.timedelta(days=offset_days)
        return datetime.datetime.combine(day, at or datetime.time(9, 0), tzinfo=zone).astimezone(datetime.UTC)
    moment = datetime.datetime.fromisoformat(text).astimezone(zone)
    moment = moment.replace(year=moment.year + year_shift) if year_shift else moment
    return (moment + datetime.timedelta(days=offset_days)).astimezone(datetime.UTC)


def _shift_years(day: datetime.date, years: int) -> datetime.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year + years, day=28)


def _date_rule_reschedule(compiled: CompiledRule, event: events.RecordEvent, now: datetime.datetime) -> None:
    """A date rule fires when the record's date comes: (re)schedule it whenever the record changes."""
    rule, record = compiled.rule, event.record
    if event.operation == events.DELETE:
        ActionRun.objects.filter(rule=rule, record=record, action__isnull=True, status=RunStatus.SCHEDULED) \
            .update(status=RunStatus.CANCELLED, reason="The record was deleted.")
        return
    if event.operation == events.EDIT and watched_field(rule) not in event.changed_fields:
        return
    date_rule_schedule(rule, record, now)


def watched_field(rule: WorkflowRule) -> str:
    """The API name of the field a field-update or date rule watches (rule_check makes sure it has one)."""
    if rule.trigger_field is None:
        raise ValueError(f"The rule “{rule.name}” watches no field.")
    return rule.trigger_field.api_name


def date_rule_schedule(rule: WorkflowRule, record: Record, now: datetime.datetime) -> ActionRun | None:
    """Schedule the next occurrence of a date rule for a record, replacing one already scheduled."""
    ActionRun.objects.filter(rule=rule, record=record, action__isnull=True, status=RunStatus.SCHEDULED) \
        .update(status=RunStatus.CANCELLED, reason="The date changed; scheduled again.")
    due = _next_date_occurrence(rule, record.values.get(watched_field(rule)), now)
    if due is None:
        return None
    return ActionRun.objects.create(rule=rule, record=record, record_ref=record_ref_of(record), event="date",
                                    due_at=due)


def _next_date_occurrence(rule: WorkflowRule, value: Any, now: datetime.datetime) -> datetime.datetime | None:
    zone = rule.organization.time_zone
    due = date_occurrence(value, rule.date_offset_days, rule.date_time, zone)
    if due is None or due > now or not rule.date_yearly:
        return due if due is not None and due > now else None
    years = 1
    while (due := date_occurrence(value, rule.date_offset_days, rule.date_time, zone, years)) is not None \
            and due <= now:
        years += 1
    return due


def runs_fire_due(*, now: datetime.datetime | None = None) -> int:
    """Fire scheduled runs whose time has come (periodic); each is claimed so it fires once."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            runs = list(ActionRun.objects.filter(status=RunStatus.SCHEDULED, due_at__lte=now)
                        .select_for_update(skip_locked=True).order_by("due_at")[:DUE_BATCH])
            if not runs:
                return done
            for run in runs:
                if ActionRun.objects.filter(pk=run.pk, status=RunStatus.SCHEDULED).update(status=RunStatus.RUNNING):
                    _run_fire(run, now)
                    done += 1


def _run_fire(run: ActionRun, now: datetime.datetime) -> None:
    run = ActionRun.objects.select_related("rule__organization", "rule__trigger_field", "action__webhook",
                                           "record__module").get(pk=run.pk)
    rule, record = run.rule, run.record
    compiled = next((c for c in rules_for(rule.module_id) if c.rule.pk == rule.pk), None)
    if record is None:
        return run_cancel(run, "The record was deleted.")
    if compiled is None:
        return run_cancel(run, "The rule was deactivated or deleted.")
    if not compiled.matches(record, record.values, None, now):
        return run_cancel(run, "The record no longer meets the rule's criteria.")
    if run.action is None:  # a date rule's moment has come
        rule_fire(compiled, record, "date", now)
        run.status = RunStatus.ENQUEUED
        if rule.date_yearly:
            due = _next_date_occurrence(rule, record.values.get(watched_field(rule)), now)
            if due is not None:
                ActionRun.objects.create(rule=rule, record=record, record_ref=run.record_ref, event="date",
                                         due_at=due)
    elif not run.action.webhook.is_active:
        return run_cancel(run, f"The webhook “{run.action.webhook.name}” is inactive.")
    else:
        run.delivery = delivery_enqueue(webhook=run.action.webhook, record=record,
                                        trigger=f"Rule “{rule.name}”, time-based action")
        run.status = RunStatus.ENQUEUED
    run.save(update_fields=["status", "delivery"])


def run_cancel(run: ActionRun, reason: str) -> None:
    """Cancelled with its reason, on the run and, for webhook actions, in the delivery log."""
    run.status, run.reason = RunStatus.CANCELLED, reason
    if run.action is not None:
        run.delivery = delivery_log_cancelled(
            webhook=run.action.webhook, record=run.record, record_ref=run.record_ref,
            trigger=f"Rule “{run.rule.name}”, time-based action", reason=reason,
        )
    run.save(update_fields=["status", "reason", "delivery"])
