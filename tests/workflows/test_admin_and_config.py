"""Rules in the admin (checked as a whole) and in configuration files (round trip, located errors)."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from crm.models import Field
from workflows.config_io import config_export_all
from workflows.demo import demo_load
from workflows.models import WorkflowRule
from tests.factories import OrganizationFactory, webhook_create

ADD_URL = reverse("admin:workflows_workflowrule_add")


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def rule_form(organization, module, *, conditions=(), actions=(), **overrides) -> dict:
    data = {"organization": organization.pk, "module": module.pk, "name": "Won deals", "description": "",
            "is_active": "on", "execution_order": 1, "trigger": "edit", "edit_mode": "every", "trigger_field": "",
            "trigger_value": "", "date_offset_days": 0, "date_time": "", "criteria_pattern": ""}
    for prefix, rows in (("conditions", conditions), ("actions", actions), ("runs", ())):
        data.update({f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": 0,
                     f"{prefix}-MIN_NUM_FORMS": 0, f"{prefix}-MAX_NUM_FORMS": 1000})
        for index, row in enumerate(rows):
            data.update({f"{prefix}-{index}-{key}": value for key, value in row.items()})
    data.update(overrides)
    return data


def test_an_admin_creates_a_rule_and_a_bad_pattern_is_refused(admin_client, organization, modules):
    hook = webhook_create(module=modules["Deals"], name="Books")
    stage = Field.objects.get(module=modules["Deals"], api_name="Stage")
    kind = Field.objects.get(module=modules["Deals"], api_name="Type")
    conditions = [{"number": 1, "field": stage.pk, "operator": "is", "value": "Closed Won"},
                  {"number": 2, "field": kind.pk, "operator": "is", "value": "New Business"}]
    actions = [{"webhook": hook.pk, "kind": "instant", "delay_amount": 0, "delay_unit": "hours",
                "relative_offset_days": 0, "position": 0}]
    bad = admin_client.post(ADD_URL, rule_form(organization, modules["Deals"], conditions=conditions,
                                               actions=actions, criteria_pattern="1 and (2"))
    assert "Criteria pattern: A “(” in the pattern is not closed." in bad.content.decode()
    assert not WorkflowRule.objects.exists()
    too_many = [dict(actions[0]) for _ in range(2)]
    response = admin_client.post(ADD_URL, rule_form(organization, modules["Deals"], conditions=conditions,
                                                    actions=too_many))
    assert "A rule can have at most 1 instant webhook action(s) in the Enterprise Edition" in response.content.decode()
    good = admin_client.post(ADD_URL, rule_form(organization, modules["Deals"], conditions=conditions,
                                                actions=actions, criteria_pattern="1 and 2"), follow=True)
    assert b"was added successfully" in good.content
    rule = WorkflowRule.objects.get()
    assert rule.conditions.count() == 2 and rule.actions.get().webhook == hook
    page = admin_client.get(reverse("admin:workflows_workflowrule_change", args=[rule.pk])).content.decode()
    assert "recent firings" in page.lower()


def test_pickers_name_the_organization_when_there_are_several(admin_client, organization, modules):
    other = OrganizationFactory(name="Acme Corp")
    page = admin_client.get(ADD_URL).content.decode()
    assert f">Deals ({organization.name})</option>" in page and ">Deals (Acme Corp)</option>" in page
    found = admin_client.get(reverse("admin:autocomplete"), {
        "app_label": "workflows", "model_name": "condition", "field_name": "field", "term": "Stage"}).json()
    assert sorted(r["text"] for r in found["results"]) == sorted([
        f"Deals.Stage ({organization.name})", "Deals.Stage (Acme Corp)"])
    assert other.modules.filter(api_name="Deals").exists()


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_whole_setup_round_trips_through_a_file(db, tmp_path):
    demo_load()
    path = tmp_path / "setup.json"
    run("export_config", "--include-secrets", "-o", str(path))
    before = config_export_all(include_secrets=True)
    assert [r["name"] for r in before["workflow_rules"]] == ["Commission on won deals", "Payment due reminder"]
    WorkflowRule.objects.all().delete()
    out = run("import_config", str(path))
    assert "Unchanged 6 webhook(s)" in out and "Created 2 workflow rule(s): Commission on won deals, Payment due reminder" in out
    assert config_export_all(include_secrets=True) == before


def test_broken_references_are_reported_with_their_location_and_nothing_is_half_imported(db, tmp_path):
    demo_load()
    data = config_export_all(include_secrets=True)
    rule = data["workflow_rules"][0]
    rule["name"] = "Copy"
    rule["conditions"][0]["field"] = "Colour"
    rule["actions"][0]["webhook"] = "Nope"
    other = dict(data["workflow_rules"][1], name="Other copy", trigger_field="Missing", colour="red")
    data["workflow_rules"] = [rule, other]
    data["webhooks"][0]["description"] = "changed"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError) as caught:
        run("import_config", str(path))
    message = str(caught.value)
    assert "workflow_rules[0] “Copy”: conditions[0].field: Deals has no field “Colour”." in message
    assert "workflow_rules[1] “Other copy”: unknown keys colour." in message
    assert WorkflowRule.objects.count() == 2
    assert not WorkflowRule.objects.filter(name__in=["Copy", "Other copy"]).exists()
    assert config_export_all()["webhooks"][0]["description"] != "changed"
