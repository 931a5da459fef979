"""Workflow rules on record events: triggers, criteria, instant and time-based actions, limits."""
import datetime
import html
import zoneinfo

import pytest
from django.urls import reverse
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm import services as crm_services
from crm.models import Edition, Field
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery
from workflows import engine, services
from workflows.conditions import CompiledCondition
from workflows.models import Action, ActionRun, Condition, WorkflowRule
from tests.factories import webhook_create

HOUR = datetime.timedelta(hours=1)


@pytest.fixture
def hook(modules):
    return webhook_create(module=modules["Deals"], name="Books", entity=[("deal", "${Deals.Deal Name}")])


def field(modules, module: str, api_name: str) -> Field:
    return Field.objects.get(module=modules[module], api_name=api_name)


def make_rule(modules, hook, *, conditions=(), actions=None, module="Deals", **attributes) -> WorkflowRule:
    attributes.setdefault("name", "Rule")
    attributes.setdefault("trigger", "create")
    rule = WorkflowRule(organization=modules[module].organization, module=modules[module], **attributes)
    built = [Condition(number=i + 1, **c) for i, c in enumerate(conditions)]
    return services.rule_save(rule=rule, conditions=built, actions=actions if actions is not None else
                              [Action(webhook=hook, kind="instant")]).rule


def deal_create(owner, modules, **values):
    values.setdefault("Deal_Name", "Big deal")
    return crm_services.record_create(module=modules["Deals"], owner=owner, values=values)


def deliveries() -> list[tuple[str, str]]:
    return list(Delivery.objects.order_by("id").values_list("record_ref", "trigger"))


def test_create_rule_fires_on_create_only(owner, modules, hook):
    make_rule(modules, hook)
    deal = deal_create(owner, modules)
    crm_services.record_update(record=deal, values={"Amount": "5"})
    assert deliveries() == [(f"Deals #{deal.pk}", "Rule “Rule” on create")]
    run = ActionRun.objects.get()
    assert (run.status, run.delivery.record_id) == ("enqueued", deal.pk)


def test_edit_rule_every_time_or_only_when_criteria_become_true(owner, modules, hook):
    stage = [{"field": field(modules, "Deals", "Stage"), "operator": "is", "value": "Closed Won"}]
    make_rule(modules, hook, name="Every", trigger="edit", conditions=stage)
    make_rule(modules, hook, name="First", trigger="edit", edit_mode="first_match", conditions=stage)
    deal = deal_create(owner, modules, Stage="Qualification")
    crm_services.record_update(record=deal, values={"Stage": "Closed Won"})
    crm_services.record_update(record=deal, values={"Amount": "10"})
    triggers = [t for _, t in deliveries()]
    assert triggers == ["Rule “Every” on edit", "Rule “First” on edit", "Rule “Every” on edit"]


def test_create_or_edit_and_all_records(owner, modules, hook):
    make_rule(modules, hook, trigger="create_or_edit", match_all_records=True)
    deal = deal_create(owner, modules)
    crm_services.record_update(record=deal, values={"Amount": "1"})
    assert [t for _, t in deliveries()] == ["Rule “Rule” on create", "Rule “Rule” on edit"]


def test_field_update_to_a_value_is_the_stage_change_event(owner, modules, hook):
    make_rule(modules, hook, trigger="field_update", trigger_field=field(modules, "Deals", "Stage"),
              trigger_value="Closed Won")
    deal = deal_create(owner, modules, Stage="Qualification")
    crm_services.record_update(record=deal, values={"Amount": "1"})  # another field
    crm_services.record_update(record=deal, values={"Stage": "Negotiation/Review"})  # another value
    crm_services.record_update(record=deal, values={"Stage": "Closed Won"})
    crm_services.record_update(record=deal, values={"Stage": "Closed Won", "Amount": "2"})  # not a change of Stage
    assert len(deliveries()) == 1


def test_delete_rule_sends_the_record_as_it_was(owner, modules, hook, receiver):
    hook.url = receiver.url_for("/hook")
    hook.save()
    receiver.expect_request("/hook").respond_with_data("ok")
    make_rule(modules, hook, trigger="delete")
    deal = deal_create(owner, modules, Deal_Name="Gone soon")
    crm_services.record_delete(record=deal)
    delivery = Delivery.objects.get()
    assert delivery_engine.delivery_run(delivery_id=delivery.pk).status == "success"
    assert receiver.log[0][0].get_json() == {"deal": "Gone soon"}


def test_system_changes_never_fire_rules(owner, modules, hook):
    make_rule(modules, hook, trigger="edit", match_all_records=True)
    deal = deal_create(owner, modules)
    crm_services.record_update(record=deal, values={"Amount": "3"}, system=True)  # e.g. a captured response
    assert deliveries() == []


def test_criteria_with_a_pattern_and_a_lookup_field(owner, modules, hook):
    tech = crm_services.record_create(module=modules["Accounts"], owner=owner,
                                      values={"Account_Name": "Zylker", "Industry": "Technology"})
    shop = crm_services.record_create(module=modules["Accounts"], owner=owner,
                                      values={"Account_Name": "Shop", "Industry": "Retail"})
    make_rule(modules, hook, criteria_pattern="(1 and 2) or 3", conditions=[
        {"field": field(modules, "Deals", "Type"), "operator": "is", "value": "New Business"},
        {"lookup": field(modules, "Deals", "Account_Name"), "field": field(modules, "Accounts", "Industry"),
         "operator": "is", "value": "Technology"},
        {"field": field(modules, "Deals", "Amount"), "operator": "gte", "value": "100000"},
    ])
    fired = deal_create(owner, modules, Deal_Name="a", Type="New Business", Account_Name=tech.pk)
    deal_create(owner, modules, Deal_Name="b", Type="New Business", Account_Name=shop.pk)
    big = deal_create(owner, modules, Deal_Name="c", Amount="250000", Account_Name=shop.pk)
    deal_create(owner, modules, Deal_Name="d", Type="Existing Business", Account_Name=tech.pk)
    assert [ref for ref, _ in deliveries()] == [f"Deals #{fired.pk}", f"Deals #{big.pk}"]


NOW = datetime.datetime(2026, 6, 15, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(("api_name", "operator", "value", "value_to", "stored", "old", "holds"), [
    ("Deal_Name", "is", "big DEAL", "", "Big deal", None, True),
    ("Deal_Name", "isnt", "Big deal", "", "Big deal", None, False),
    ("Deal_Name", "isnt", "x", "", None, None, True),
    ("Deal_Name", "contains", "DEAL", "", "Big deal", None, True),
    ("Deal_Name", "starts_with", "big", "", "Big deal", None, True),
    ("Deal_Name", "starts_with", "deal", "", "Big deal", None, False),
    ("Deal_Name", "empty", "", "", None, None, True),
    ("Deal_Name", "not_empty", "", "", "x", None, True),
    ("Amount", "lt", "100", "", "99.99", None, True),
    ("Amount", "lte", "100", "", "100.00", None, True),
    ("Amount", "gt", "100", "", "100.00", None, False),
    ("Amount", "gte", "100", "", "100.00", None, True),
    ("Amount", "between", "10", "20", "15.00", None, True),
    ("Amount", "between", "10", "20", "20.01", None, False),
    ("Amount", "is", "12500", "", "12500.00", None, True),
    ("Closing_Date", "before", "2026-07-01", "", "2026-06-30", None, True),
    ("Closing_Date", "after", "2026-07-01", "", "2026-06-30", None, False),
    ("Closing_Date", "today", "", "", "2026-06-15", None, True),
    ("Closing_Date", "between", "2026-06-01", "2026-06-30", "2026-06-15", None, True),
    ("Stage", "changed", "", "", "Closed Won", "Qualification", True),
    ("Stage", "changed", "", "", "Closed Won", "Closed Won", False),
    ("Stage", "changed_to", "Closed Won", "", "Closed Won", "Qualification", True),
    ("Stage", "changed_to", "Closed Lost", "", "Closed Won", "Qualification", False),
    ("Probability", "gt", "50", "", 60, None, True),
])
def test_each_operator(modules, api_name, operator, value, value_to, stored, old, holds):
    condition = CompiledCondition(1, field(modules, "Deals", api_name), None, operator, value, value_to)
    values = {api_name: stored} if stored is not None else {}
    old_values = {api_name: old} if old is not None else None
    assert condition.holds(values, old_values, "Europe/Amsterdam", NOW) is holds


def test_datetime_today_and_before_use_the_local_day(modules):
    start = field(modules, "Events", "Start_DateTime")
    late_evening = "2026-06-15T05:00:00+00:00"  # 07:00 on the 15th in Amsterdam; in Kiritimati (UTC+14) it is
    # 19:00 on the 15th while "now" there is already the 16th
    assert CompiledCondition(1, start, None, "today", "", "").holds({"Start_DateTime": late_evening}, None,
                                                                       "Europe/Amsterdam", NOW)
    assert not CompiledCondition(1, start, None, "today", "", "").holds({"Start_DateTime": late_evening}, None,
                                                                           "Pacific/Kiritimati", NOW)
    assert CompiledCondition(1, start, None, "before", "2026-06-16", "").holds({"Start_DateTime": late_evening},
                                                                               None, "Europe/Amsterdam", NOW)


def test_time_based_action_fires_when_due_if_the_record_still_qualifies(owner, modules, hook):
    stage = [{"field": field(modules, "Deals", "Stage"), "operator": "is", "value": "Closed Won"}]
    make_rule(modules, hook, conditions=stage,
              actions=[Action(webhook=hook, kind="time_based", delay_amount=2, delay_unit="hours")])
    kept = deal_create(owner, modules, Deal_Name="kept", Stage="Closed Won")
    lost = deal_create(owner, modules, Deal_Name="lost", Stage="Closed Won")
    gone = deal_create(owner, modules, Deal_Name="gone", Stage="Closed Won")
    assert deliveries() == [] and ActionRun.objects.filter(status="scheduled").count() == 3
    crm_services.record_update(record=lost, values={"Stage": "Closed Lost"})
    gone_ref = f"Deals #{gone.pk}"
    crm_services.record_delete(record=gone)
    assert engine.runs_fire_due(now=timezone.now() + HOUR) == 0
    assert engine.runs_fire_due(now=timezone.now() + 2 * HOUR + datetime.timedelta(minutes=1)) == 3
    by_record = {run.record_ref: (run.status, run.reason) for run in ActionRun.objects.all()}
    assert by_record == {
        f"Deals #{kept.pk}": ("enqueued", ""),
        f"Deals #{lost.pk}": ("cancelled", "The record no longer meets the rule's criteria."),
        gone_ref: ("cancelled", "The record was deleted."),
    }
    log = {d.record_ref: (d.status, d.status_reason) for d in Delivery.objects.all()}
    assert log == {
        f"Deals #{kept.pk}": ("queued", ""),
        f"Deals #{lost.pk}": ("cancelled", "The record no longer meets the rule's criteria."),
        gone_ref: ("cancelled", "The record was deleted."),
    }


def test_time_based_action_relative_to_a_date_field(owner, modules, hook, organization):
    make_rule(modules, hook, actions=[Action(
        webhook=hook, kind="time_based", relative_field=field(modules, "Deals", "Payment_Due_Date"),
        relative_offset_days=-1, relative_time=datetime.time(8, 30))])
    deal_create(owner, modules, Payment_Due_Date="2030-03-10")
    deal_create(owner, modules, Deal_Name="past", Payment_Due_Date="2020-01-01")
    deal_create(owner, modules, Deal_Name="no date")
    runs = list(ActionRun.objects.order_by("id").values_list("status", "due_at", "reason"))
    amsterdam = zoneinfo.ZoneInfo("Europe/Amsterdam")
    assert runs == [
        ("scheduled", datetime.datetime(2030, 3, 9, 8, 30, tzinfo=amsterdam), ""),
        ("skipped", datetime.datetime(2019, 12, 31, 8, 30, tzinfo=amsterdam), "The due time is already past."),
        ("skipped", None, "The date field is empty."),
    ]


def test_date_rule_fires_on_the_day_and_yearly_again(owner, modules, hook):
    make_rule(modules, hook, trigger="date", trigger_field=field(modules, "Deals", "Closing_Date"),
              date_offset_days=-2, date_time=datetime.time(9, 0), date_yearly=True, match_all_records=True)
    deal = deal_create(owner, modules, Closing_Date="2024-02-29")
    [run] = ActionRun.objects.filter(status="scheduled")
    first_due = run.due_at
    assert first_due > timezone.now() and first_due.astimezone(zoneinfo.ZoneInfo("Europe/Amsterdam")).timetuple()[1:4] \
        == (2, 26, 9)  # two days before 28 February (no 29th that year), at 09:00 local
    assert engine.runs_fire_due(now=first_due + datetime.timedelta(minutes=1)) == 1
    assert deliveries() == [(f"Deals #{deal.pk}", "Rule “Rule” on date")]
    [next_run] = ActionRun.objects.filter(status="scheduled", action__isnull=True)
    assert next_run.due_at.year == first_due.year + 1
    crm_services.record_update(record=deal, values={"Closing_Date": "2031-05-20"})
    [moved] = ActionRun.objects.filter(status="scheduled", action__isnull=True)
    assert moved.due_at.astimezone(zoneinfo.ZoneInfo("Europe/Amsterdam")).date() == datetime.date(2031, 5, 18)


def test_rule_changes_are_seen_at_once(owner, modules, hook):
    rule = make_rule(modules, hook)
    deal_create(owner, modules)
    rule.is_active = False
    rule.save()
    deal_create(owner, modules, Deal_Name="second")
    WorkflowRule.objects.filter(pk=rule.pk).delete()
    deal_create(owner, modules, Deal_Name="third")
    assert len(deliveries()) == 1


def actions(hook, instant: int, timed: int) -> list[Action]:
    return [Action(webhook=hook, kind="instant") for _ in range(instant)] + [
        Action(webhook=hook, kind="time_based", delay_amount=1, delay_unit="days") for _ in range(timed)]


def test_zoho_editions_allow_one_instant_and_five_time_based_actions(modules, hook):
    assert make_rule(modules, hook, name="six", actions=actions(hook, 1, 5)).pk
    with pytest.raises(ValidationError) as caught:
        make_rule(modules, hook, name="seven", actions=actions(hook, 1, 6))
    assert caught.value.message_dict["actions"] == [
        "A rule can have at most 6 webhook actions in the Enterprise Edition; this one has 7."]
    with pytest.raises(ValidationError) as caught:
        make_rule(modules, hook, name="two instant", actions=actions(hook, 2, 0))
    assert caught.value.message_dict["actions"] == [
        "A rule can have at most 1 instant webhook action(s) in the Enterprise Edition (the others must be "
        "time-based); this one has 2."]


def test_a_vtiger_edition_allows_three_webhooks(organization, modules, hook):
    organization.edition = Edition.objects.get(code="vtiger-one-professional")
    organization.save()
    assert make_rule(modules, hook, name="three", actions=actions(hook, 3, 0)).pk
    with pytest.raises(ValidationError) as caught:
        make_rule(modules, hook, name="four", actions=actions(hook, 3, 1))
    assert "at most 3 webhook actions in the Vtiger One Professional; this one has 4." in \
        caught.value.message_dict["actions"][0]


@pytest.mark.parametrize(("attributes", "key", "message"), [
    ({"criteria_pattern": "1 or"}, "criteria_pattern", "The pattern ends too early: a condition number or “(” is missing."),
    ({"trigger": "field_update"}, "trigger_field", "Choose the field this trigger watches."),
    ({"trigger": "date", "trigger_field": ("Deals", "Stage")}, "trigger_field", "“Stage” is not a date or date/time field."),
    ({"trigger": "field_update", "trigger_field": ("Deals", "Stage"), "trigger_value": "Won-ish"}, "trigger_value",
     "“Won-ish” is not one of the values of “Stage”: Qualification, Needs Analysis, Value Proposition, "
     "Proposal/Price Quote, Negotiation/Review, Closed Won, Closed Lost."),
])
def test_rule_checks(modules, hook, attributes, key, message):
    if "trigger_field" in attributes:
        attributes["trigger_field"] = field(modules, *attributes["trigger_field"])
    conditions = [{"field": field(modules, "Deals", "Type"), "operator": "is", "value": "New Business"}]
    with pytest.raises(ValidationError) as caught:
        make_rule(modules, hook, conditions=conditions, **attributes)
    assert caught.value.message_dict[key] == [message]


@pytest.mark.parametrize(("condition", "message"), [
    ({"field": ("Deals", "Amount"), "operator": "gt", "value": "lots"}, "Condition 1: “lots” is not a number, as “Amount” needs."),
    ({"field": ("Deals", "Deal_Name"), "operator": "gt", "value": "a"},
     "Condition 1: “Deal Name” is not a number or date, so it cannot be compared with <, > or between."),
    ({"field": ("Accounts", "Industry"), "operator": "is", "value": "Retail"},
     "Condition 1: “Industry” is a field of Accounts; choose the lookup that reaches it."),
    ({"field": ("Deals", "Stage"), "operator": "changed", "value": ""},
     "Condition 1: “changed” and “changed to” need a trigger on edits."),
    ({"field": ("Deals", "Amount"), "operator": "between", "value": "1"}, "Condition 1: “between” needs two values."),
    ({"field": ("Deals", "Stage"), "operator": "is", "value": "Won-ish"},
     "Condition 1: “Won-ish” is not one of the values of “Stage”: Qualification, Needs Analysis, Value Proposition, "
     "Proposal/Price Quote, Negotiation/Review, Closed Won, Closed Lost."),
])
def test_condition_checks(modules, hook, condition, message):
    condition["field"] = field(modules, *condition["field"])
    with pytest.raises(ValidationError) as caught:
        make_rule(modules, hook, conditions=[condition])
    assert caught.value.message_dict["conditions"] == [message]


def test_actions_must_use_a_webhook_of_the_rule_module(modules, hook):
    leads_hook = webhook_create(module=modules["Leads"], name="Leads hook")
    with pytest.raises(ValidationError) as caught:
        make_rule(modules, hook, actions=[Action(webhook=leads_hook, kind="instant")])
    assert caught.value.message_dict["actions"] == [
        "The webhook “Leads hook” is for Leads records; this rule is for Deals."]


def test_run_on_existing_records_counts_first_then_fires(owner, modules, hook):
    stage = [{"field": field(modules, "Deals", "Stage"), "operator": "is", "value": "Closed Won"}]
    rule = make_rule(modules, hook, trigger="edit", conditions=stage)
    for name, stage_value in [("a", "Closed Won"), ("b", "Closed Won"), ("c", "Qualification")]:
        deal_create(owner, modules, Deal_Name=name, Stage=stage_value)
    report = services.rule_run_on_existing(rule=rule, dry_run=True)
    assert (report.matching, report.deliveries, report.quota_left, report.fits_quota) == (2, 2, 5000, True)
    assert deliveries() == []
    assert services.rule_run_on_existing(rule=rule, dry_run=False).fired
    assert [t for _, t in deliveries()] == ["Rule “Rule” on manual"] * 2


def test_the_dry_run_counts_time_based_actions_too(owner, modules, hook, client, django_user_model):
    rule = make_rule(modules, hook, trigger="edit", match_all_records=True, actions=[
        Action(webhook=hook, kind="instant"), Action(webhook=hook, kind="time_based", delay_amount=2,
                                                     delay_unit="days")])
    for name in ("a", "b", "c"):
        deal_create(owner, modules, Deal_Name=name)
    report = services.rule_run_on_existing(rule=rule, dry_run=True)
    assert (report.matching, report.deliveries, report.scheduled) == (3, 3, 3)
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    page = client.post(reverse("admin:workflows_workflowrule_changelist"), {
        "action": "run_on_existing_dry_run", "_selected_action": [rule.pk]}, follow=True).content.decode()
    page = html.unescape(page)
    assert "3 record(s) match now; running it would make 3 instant deliveries, which fits in today's remaining " \
           "quota of 5000, and schedule 3 time-based one(s) for when they fall due." in page
    assert not ActionRun.objects.exists()


def test_run_on_existing_records_schedules_a_date_rule_instead_of_firing_it(owner, modules, hook):
    deal = deal_create(owner, modules, Closing_Date="2031-05-20")
    rule = make_rule(modules, hook, trigger="date", trigger_field=field(modules, "Deals", "Closing_Date"),
                     date_time=datetime.time(9, 0), match_all_records=True)
    assert not ActionRun.objects.exists()  # the deal existed before the rule
    report = services.rule_run_on_existing(rule=rule, dry_run=False)
    assert (report.matching, report.deliveries, report.scheduled) == (1, 0, 1) and deliveries() == []
    [run] = ActionRun.objects.filter(status="scheduled")
    assert (run.record_id, run.due_at.astimezone(zoneinfo.ZoneInfo("Europe/Amsterdam")).date()) == (
        deal.pk, datetime.date(2031, 5, 20))
