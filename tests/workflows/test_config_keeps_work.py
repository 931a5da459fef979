"""Configuration files must not lose anything: scheduled runs, firing history, retry policies (issue 20)."""
import copy
import datetime
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from crm import services as crm_services
from crm.models import CrmUser
from dispatcher.models import Delivery, DeliveryStatus, RetryPolicy, Webhook
from workflows.config_io import config_export_all
from workflows.demo import demo_load
from tests.processes import SETTINGS, python
from workflows.models import Action, ActionRun, RunStatus, WorkflowRule


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def write(tmp_path, data, name="setup.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=2))
    return str(path)


@pytest.fixture
def installation(db):
    """The demo with a won deal whose payment reminder is due in four days, and one that fired."""
    organization, _ = demo_load()
    deals = organization.modules.get(api_name="Deals")
    owner = CrmUser.objects.get(organization=organization, email="ted.watson@zylker.example")
    due = (timezone.localdate() + datetime.timedelta(days=4)).isoformat()
    deal = crm_services.record_create(module=deals, owner=owner, values={
        "Deal_Name": "Reminder in four days", "Type": "New Business", "Stage": "Closed Won",
        "Payment_Due_Date": due})
    return organization, deal


def snapshot() -> dict:
    """Every row an import could touch, with the times that caches watch."""
    return {
        "runs": sorted(ActionRun.objects.values_list("pk", "action_id", "status", "due_at", "reason")),
        "deliveries": sorted(Delivery.objects.values_list("pk", "status", "status_reason", "due_at")),
        "rules": sorted(WorkflowRule.objects.values_list("pk", "modified_at")),
        "actions": sorted(Action.objects.values_list("pk", "webhook_id", "kind", "delay_amount", "position")),
        "webhooks": sorted(Webhook.objects.values_list("pk", "modified_at", "retry_policy_id")),
        "policies": sorted(RetryPolicy.objects.values_list("pk", "code", "delays", "failure_emails")),
    }


def test_importing_an_unchanged_export_changes_nothing_and_keeps_the_scheduled_reminder(installation, tmp_path):
    _, deal = installation
    reminder = ActionRun.objects.get(record=deal, rule__name="Payment due reminder")
    assert reminder.status == RunStatus.SCHEDULED and reminder.due_at > timezone.now() + datetime.timedelta(days=3)
    before = snapshot()
    path = write(tmp_path, config_export_all(include_secrets=True))
    out = run("import_config", path)
    assert "Nothing to change: the installation already matches the file." in out
    assert "Unchanged 6 webhook(s)" in out and "Unchanged 2 workflow rule(s)" in out
    assert snapshot() == before  # no run cancelled, no delivery touched, not even a modified time


def test_an_import_updates_actions_in_place_and_cancels_only_the_runs_of_removed_ones(installation, tmp_path):
    organization, deal = installation
    commission_runs = set(ActionRun.objects.filter(record=deal, rule__name="Commission on won deals")
                          .values_list("pk", "status"))
    reminder = ActionRun.objects.get(record=deal, rule__name="Payment due reminder")
    data = config_export_all(include_secrets=True)
    rules = {rule["name"]: rule for rule in data["workflow_rules"]}
    rules["Commission on won deals"]["actions"][1]["delay"] = 10  # the invoice: 5 minutes -> 10
    rules["Payment due reminder"]["actions"] = []  # the SMS reminder is removed
    path = write(tmp_path, data)

    before = snapshot()
    dry = run("import_config", path, "--dry-run")
    assert "Would change 2 workflow rule(s): Commission on won deals, Payment due reminder" in dry
    assert "Would delete 1 action(s): “Payment due reminder”: SMS payment reminder (+0 days from Payment Due " \
           "Date)" in dry
    assert "Would cancel 1 scheduled run(s) of the deleted actions" in dry
    assert "Would change 1 action(s): “Commission on won deals”: Invoice to accounting (after 10 minutes)" in dry
    assert snapshot() == before  # a dry run changes nothing

    out = run("import_config", path)
    assert "Cancelled 1 scheduled run(s) of the deleted actions" in out
    invoice = Action.objects.get(rule__name="Commission on won deals", webhook__name="Invoice to accounting")
    assert invoice.delay_amount == 10
    assert set(ActionRun.objects.filter(record=deal, rule__name="Commission on won deals")
               .values_list("pk", "status")) == commission_runs  # kept, as the admin keeps them
    reminder.refresh_from_db()
    reason = "The action “Payment due reminder”: SMS payment reminder (+0 days from Payment Due Date) was removed " \
             "from the rule."
    assert (reminder.status, reminder.reason, reminder.action_id) == (RunStatus.CANCELLED, reason, None)
    logged = reminder.delivery
    assert (logged.status, logged.status_reason, logged.webhook_name) == (
        DeliveryStatus.CANCELLED, reason, "SMS payment reminder")


def test_removing_an_action_in_the_admin_cancels_its_runs_with_the_same_reason(installation, client,
                                                                                django_user_model):
    _, deal = installation
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    rule = WorkflowRule.objects.get(name="Payment due reminder")
    [condition] = rule.conditions.all()
    [action] = rule.actions.all()
    data = {"organization": rule.organization_id, "module": rule.module_id, "name": rule.name,
            "description": rule.description, "is_active": "on", "execution_order": 1, "trigger": rule.trigger,
            "edit_mode": rule.edit_mode, "trigger_field": "", "trigger_value": "", "date_offset_days": 0,
            "date_time": "", "criteria_pattern": ""}
    rows = {"conditions": [{"id": condition.pk, "rule": rule.pk, "number": 1, "field": condition.field_id,
                            "operator": condition.operator, "value": ""}],
            "actions": [{"id": action.pk, "rule": rule.pk, "webhook": action.webhook_id, "kind": action.kind,
                         "delay_amount": 0, "delay_unit": "hours", "relative_field": action.relative_field_id,
                         "relative_offset_days": 0, "relative_time": "09:00", "position": 0, "DELETE": "on"}],
            "runs": []}
    for prefix, items in rows.items():
        data.update({f"{prefix}-TOTAL_FORMS": len(items), f"{prefix}-INITIAL_FORMS": len(items),
                     f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})
        for index, item in enumerate(items):
            data.update({f"{prefix}-{index}-{key}": value for key, value in item.items()})
    response = client.post(reverse("admin:workflows_workflowrule_change", args=[rule.pk]), data, follow=True)
    assert b"was changed successfully" in response.content, response.content.decode()[-3000:]
    reminder = ActionRun.objects.get(record=deal, rule=rule)
    assert reminder.status == RunStatus.CANCELLED
    assert reminder.reason.endswith("SMS payment reminder (+0 days from Payment Due Date) was removed from the rule.")
    assert reminder.delivery.status == DeliveryStatus.CANCELLED


def test_retry_policies_travel_with_the_file_and_an_unknown_one_is_refused(installation, tmp_path):
    patient = RetryPolicy.objects.create(code="patient", name="Patient: daily for a week", delays=[86400] * 7,
                                         failure_emails="each")
    Webhook.objects.filter(name="Invoice to accounting").update(retry_policy=patient)
    Webhook.objects.filter(name="SMS payment reminder").update(retry_policy=RetryPolicy.objects.get(code="vtiger"))
    data = config_export_all(include_secrets=True)
    assert {p["code"]: p["failure_emails"] for p in data["retry_policies"]} == {
        "patient": "each", "standard": "none", "vtiger": "digest", "zoho": "none"}
    assert {w["name"]: w["retry_policy"] for w in data["webhooks"]}["SMS payment reminder"] == "vtiger"

    # Into an installation that has neither the custom policy nor these webhooks and rules:
    ActionRun.objects.all().delete()
    Delivery.objects.all().delete()
    WorkflowRule.objects.all().delete()
    Webhook.objects.all().delete()
    patient.delete()
    out = run("import_config", write(tmp_path, data))
    assert "Created 1 retry policy(ies): patient" in out and "Created 6 webhook(s)" in out
    assert Webhook.objects.get(name="Invoice to accounting").retry_policy.delays == [86400] * 7
    assert Webhook.objects.get(name="SMS payment reminder").retry_policy.code == "vtiger"
    assert config_export_all(include_secrets=True) == data

    broken = copy.deepcopy(data)
    broken["retry_policies"] = [p for p in broken["retry_policies"] if p["code"] != "patient"]
    Webhook.objects.filter(name="Invoice to accounting").update(retry_policy=None)
    RetryPolicy.objects.filter(code="patient").delete()
    with pytest.raises(CommandError) as caught:
        run("import_config", write(tmp_path, broken, "broken.json"))
    assert "webhooks[2] “Invoice to accounting”: retry_policy: there is no retry policy “patient” here or in the " \
           "file (known: standard, vtiger, zoho)." in str(caught.value)
    assert Webhook.objects.get(name="Invoice to accounting").retry_policy is None  # nothing half-imported


FRESH_INSTALL = SETTINGS + """
import sys
from django.core.management import call_command
from crm import services
from crm.models import Edition
call_command("migrate", verbosity=0)
services.organization_create(name="Zylker Inc", edition=Edition.objects.get(code="enterprise"), user_licences=25,
                             time_zone="Europe/Amsterdam", date_format="yyyy-MM-dd")
call_command("import_config", sys.argv[1])
call_command("export_config", "--include-secrets", "--output", sys.argv[2])
"""


def test_a_round_trip_through_a_new_empty_database_gives_the_same_file(installation, tmp_path):
    """Export, import into a new installation (its own database, migrated from nothing, with only the
    organization made), export there: the two files are identical, retry policies and secrets included."""
    first = tmp_path / "first.json"
    run("export_config", "--include-secrets", "--output", str(first))
    second = tmp_path / "second.json"
    fresh = python(FRESH_INSTALL, str(first), str(second), database=tmp_path / "fresh.sqlite3")
    out, err = fresh.communicate(timeout=300)
    assert fresh.returncode == 0, err[-3000:]
    assert "Created 6 webhook(s)" in out and "Created 2 workflow rule(s)" in out
    assert second.read_text() == first.read_text()


def test_a_round_trip_through_an_empty_installation_gives_the_same_file_and_reimporting_it_changes_nothing(
        installation, tmp_path):
    first = config_export_all(include_secrets=True)
    path = write(tmp_path, first)
    ActionRun.objects.all().delete()
    Delivery.objects.all().delete()
    WorkflowRule.objects.all().delete()
    Webhook.objects.all().delete()
    run("import_config", path)
    second = config_export_all(include_secrets=True)
    assert json.dumps(second, indent=2) == json.dumps(first, indent=2)
    before = snapshot()
    assert "Nothing to change" in run("import_config", path)
    assert snapshot() == before


@pytest.mark.parametrize(("policies", "message"), [
    ([{"code": ["x"], "delays": []}], "retry_policies[0] “['x']”: “code” must be text"),
    ([{"code": "slow", "delays": [0]}], "retry_policies[0] “slow”: delays: Each delay must be between 1 second"),
    ([{"code": "odd", "delays": [], "failure_emails": "sometimes"}],
     "retry_policies[0] “odd”: failure_emails: Value 'sometimes' is not a valid choice."),
    ([{"code": "nodelays"}], "retry_policies[0] “nodelays”: expected an object with code, name, delays"),
    ("zoho", "\"retry_policies\" must be a list."),
])
def test_a_bad_retry_policy_is_refused_with_its_location(installation, tmp_path, policies, message):
    data = config_export_all(include_secrets=True)
    data["retry_policies"] = policies
    before = snapshot()
    with pytest.raises(CommandError) as caught:
        run("import_config", write(tmp_path, data))
    assert message in str(caught.value)
    assert snapshot() == before


def test_a_dry_run_itemises_the_actions_it_would_add(installation, tmp_path):
    data = config_export_all(include_secrets=True)
    rules = {rule["name"]: rule for rule in data["workflow_rules"]}
    actions = rules["Commission on won deals"]["actions"]
    actions.append({**actions[1], "delay": 20})  # a second invoice, 20 minutes after
    before = snapshot()
    dry = run("import_config", write(tmp_path, data), "--dry-run")
    assert "Would change 1 workflow rule(s): Commission on won deals" in dry
    assert "Would add 1 action(s): “Commission on won deals”: Invoice to accounting (after 20 minutes)" in dry
    assert "Would change" not in dry.replace("Would change 1 workflow rule(s)", "")  # the others stay as they are
    assert snapshot() == before
