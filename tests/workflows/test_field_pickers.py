"""Field pickers in rules and webhooks offer only the fields that fit where they are: a condition's "through
lookup" only lookups of the rule's module, its field only fields of the rule's module (or of the module the
lookup reaches), a time-based action only date fields, a capture only fields it may write."""
import lxml.html
import pytest
from django.urls import reverse

from crm.models import Field
from tests.factories import OrganizationFactory, staff_login, webhook_create
from workflows import services
from workflows.models import Action, Condition, WorkflowRule

AUTOCOMPLETE = reverse("admin:autocomplete")


@pytest.fixture
def integrator(client, organization):
    client.force_login(staff_login(organization, "integrator", group="Integration admin"))
    return client


def offered(client, model: str, field_name: str, **narrowing) -> list[str]:
    """What a picker's search box lists, asked as crm/static/crm/field_pickers.js asks (Django's parameters
    and the picker's own)."""
    app_label = "dispatcher" if model == "capture" else "workflows"
    response = client.get(AUTOCOMPLETE, {"term": "", "app_label": app_label, "model_name": model,
                                         "field_name": field_name, **narrowing})
    assert response.status_code == 200, response.content
    return sorted(result["text"] for result in response.json()["results"])


def field(modules, module: str, api_name: str) -> Field:
    return Field.objects.get(module=modules[module], api_name=api_name)


def test_the_rule_page_marks_each_field_picker_with_what_fits(integrator, organization, modules):
    webhook = webhook_create(module=modules["Deals"], name="Books")
    rule = services.rule_save(
        rule=WorkflowRule(organization=organization, module=modules["Deals"], name="Won", trigger="edit"),
        conditions=[Condition(number=1, field=field(modules, "Deals", "Stage"), operator="is", value="Closed Won")],
        actions=[Action(webhook=webhook, kind="instant")]).rule
    response = integrator.get(reverse("admin:workflows_workflowrule_change", args=[rule.pk]))
    doc = lxml.html.fromstring(response.content.decode())

    def picker(name: str) -> dict[str, str | None]:
        [select] = doc.xpath(f"//select[@name='{name}']")
        return {"kind": select.get("data-field-picker"), "through": select.get("data-through-lookup") or None}

    assert picker("trigger_field") == {"kind": "any", "through": None}
    assert picker("conditions-0-lookup") == {"kind": "lookup", "through": None}
    assert picker("conditions-0-field") == {"kind": "any", "through": "lookup"}
    assert picker("actions-0-relative_field") == {"kind": "date", "through": None}
    scripts = doc.xpath("//script/@src")
    autocomplete = scripts.index("/static/admin/js/autocomplete.js")
    assert scripts.index("/static/crm/field_pickers.js") > autocomplete  # it sets up what Django's script made


def test_through_lookup_lists_only_lookups_of_the_rules_module(integrator, modules):
    everything = offered(integrator, "condition", "lookup")
    assert "Accounts.Account Id" in everything and "Accounts.Phone" in everything  # the picker as it was
    assert offered(integrator, "condition", "lookup", field_kind="lookup", for_module=modules["Deals"].pk) == [
        "Deals.Account Name", "Deals.Contact Name"]


def test_a_conditions_field_comes_from_the_rules_module_or_the_module_its_lookup_reaches(integrator, organization,
                                                                                         modules):
    own = offered(integrator, "condition", "field", field_kind="any", for_module=modules["Deals"].pk)
    assert "Deals.Stage" in own and "Deals.Created Time" in own
    assert not [text for text in own if not text.startswith("Deals.")]
    through = offered(integrator, "condition", "field", field_kind="any", for_module=modules["Deals"].pk,
                      through_lookup=field(modules, "Deals", "Account_Name").pk)
    assert "Accounts.Industry" in through and not [text for text in through if not text.startswith("Accounts.")]
    theirs = OrganizationFactory(name="Acme")
    their_lookup = Field.objects.get(module=theirs.modules.get(api_name="Deals"), api_name="Account_Name")
    assert offered(integrator, "condition", "field", field_kind="any", for_module=modules["Deals"].pk,
                   through_lookup=their_lookup.pk) == own  # another organization's lookup reaches nothing


def test_a_disabled_field_is_not_offered(integrator, modules):
    Field.objects.filter(module=modules["Deals"], api_name="Probability").update(is_disabled=True)
    assert "Deals.Probability (%)" not in offered(integrator, "condition", "field", field_kind="any",
                                                  for_module=modules["Deals"].pk)


def test_a_time_based_action_is_relative_to_a_date_field_of_the_rule(integrator, modules):
    assert offered(integrator, "action", "relative_field", field_kind="date", for_module=modules["Deals"].pk) == [
        "Deals.Closing Date", "Deals.Created Time", "Deals.Modified Time", "Deals.Payment Due Date"]


def test_a_capture_writes_only_fields_it_may_write(integrator, modules):
    page = integrator.get(reverse("admin:dispatcher_webhook_add")).content.decode()
    doc = lxml.html.fromstring(page)
    [capture_field] = doc.xpath("//select[@name='captures-__prefix__-field']")
    assert capture_field.get("data-field-picker") == "writable"
    writable = offered(integrator, "capture", "field", field_kind="writable", for_module=modules["Deals"].pk)
    assert "Deals.Stage" in writable and "Deals.Amount" in writable
    assert "Deals.Account Name" not in writable and "Deals.Deal Id" not in writable  # a lookup, a system field
