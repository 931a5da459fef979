"""The record form in the admin, as a record editor uses it: one labelled input per field of the module,
typed by the field's type, checked as the API checks, errors beside their field with what was typed kept."""
import json
from io import StringIO

import lxml.html
import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from crm import services
from crm.models import Field, Record
from dispatcher.models import Delivery
from tests.factories import CrmUserFactory, OrganizationFactory, staff_login

ADD_URL = reverse("admin:crm_record_add")
LOOKUP_URL = reverse("admin:crm_record_lookup")


def page(response) -> lxml.html.HtmlElement:
    assert response.status_code == 200, response.status_code
    return lxml.html.fromstring(response.content.decode())


def row(doc: lxml.html.HtmlElement, api_name: str) -> lxml.html.HtmlElement:
    """The form row of a field: its label, its input and the errors beside it."""
    [found] = doc.xpath(f"//div[contains(concat(' ', @class, ' '), ' field-values__{api_name} ')]")
    return found


def shown(doc: lxml.html.HtmlElement, api_name: str) -> str | None:
    """What the field's input holds, as the browser shows it (an input's value, a select's chosen option)."""
    [element] = row(doc, api_name).xpath(f".//*[@name='values__{api_name}']")
    if element.tag == "select":
        chosen = element.xpath("./option[@selected]")
        return chosen[0].get("value") if chosen else None
    if element.get("type") == "checkbox":
        return "checked" if element.get("checked") is not None else None
    return element.text if element.tag == "textarea" else element.get("value")


def errors_beside(doc: lxml.html.HtmlElement, api_name: str) -> list[str]:
    return [li.text_content() for li in row(doc, api_name).xpath(".//ul[contains(@class, 'errorlist')]/li")]


def form_of(doc: lxml.html.HtmlElement) -> lxml.html.FormElement:
    [form] = doc.xpath("//form[@id='record_form']")
    return form


def sent_back(doc: lxml.html.HtmlElement) -> dict[str, str]:
    """What the browser sends when the user presses Save without touching an input."""
    return {name: value or "" for name, value in form_of(doc).form_values()}


def search(client, field: Field, term: str = "", page_number: int = 1) -> dict:
    """The lookup input's search box, as select2 asks for it."""
    response = client.get(LOOKUP_URL, {"field": field.pk, "term": term, "page": page_number})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


@pytest.fixture
def editor(client, organization):
    user = staff_login(organization, "zylker", group="Integration admin")
    user.groups.add(Group.objects.get(name="Record editor"))
    client.force_login(user)
    return user


@pytest.fixture
def accounts(owner, modules):
    return [services.record_create(module=modules["Accounts"], owner=owner, values={"Account_Name": name})
            for name in ("Zylker Systems", "Zylker Foods", "Bakkerij Jansen")]


def field(modules, module: str, api_name: str) -> Field:
    return Field.objects.get(module=modules[module], api_name=api_name)


def test_adding_asks_for_the_module_then_shows_one_typed_input_per_field(client, editor, organization, modules):
    other = OrganizationFactory(name="Acme")
    chooser = page(client.get(ADD_URL))
    offered = chooser.xpath("//select[@name='module']/option/@value")
    assert str(modules["Deals"].pk) in offered and str(other.modules.get(api_name="Deals").pk) not in offered

    refused = page(client.get(ADD_URL, {"module": other.modules.get(api_name="Deals").pk}))
    assert refused.xpath("string(//p[@class='errornote'])") == "Choose a module of your organization."

    doc = page(client.get(ADD_URL, {"module": modules["Deals"].pk}))
    assert doc.xpath("//h1")[0].text == "Add Deal"
    labels = [label.text_content() for label in doc.xpath("//fieldset[2]//label")]
    assert labels == ["Deal Name:", "Amount:", "Closing Date:", "Stage:", "Type:", "Probability (%):",
                      "Account Name:", "Contact Name:", "Payment Due Date:"]
    assert "required" in row(doc, "Deal_Name").xpath(".//label")[0].get("class")
    assert row(doc, "Closing_Date").xpath(".//input")[0].get("type") == "date"
    assert row(doc, "Stage").xpath(".//select/option/@value") == [
        "", "Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote", "Negotiation/Review",
        "Closed Won", "Closed Lost"]
    [account] = row(doc, "Account_Name").xpath(".//select")
    assert "admin-autocomplete" in account.get("class")  # a search box, not a list of every account
    assert account.get("data-ajax--url") == f"{LOOKUP_URL}?field={field(modules, 'Deals', 'Account_Name').pk}"
    assert not doc.xpath("//*[@name='values']")  # no JSON "Values" box keyed by API names


def test_a_record_saved_through_the_form_is_cleaned_like_the_api(client, editor, organization, modules, accounts):
    url = f"{ADD_URL}?module={modules['Deals'].pk}"
    owner = editor.crm_user
    response = client.post(url, {
        "owner": owner.pk, "values__Deal_Name": "Website", "values__Amount": "1234.5",
        "values__Closing_Date": "2026-12-15", "values__Stage": "Closed Won", "values__Type": "New Business",
        "values__Probability": "", "values__Account_Name": str(accounts[0].pk), "values__Contact_Name": "",
        "values__Payment_Due_Date": "",
    }, follow=True)
    assert "was added successfully" in response.content.decode()
    deal = Record.objects.get(module=modules["Deals"])
    assert deal.owner == owner
    assert deal.values == {"Deal_Name": "Website", "Amount": "1234.50", "Closing_Date": "2026-12-15",
                           "Stage": "Closed Won", "Type": "New Business", "Account_Name": accounts[0].pk}


def test_errors_appear_beside_their_field_and_keep_what_was_typed(client, editor, organization, modules, accounts):
    theirs = OrganizationFactory(name="Acme")
    their_account = services.record_create(module=theirs.modules.get(api_name="Accounts"),
                                           owner=CrmUserFactory(organization=theirs),
                                           values={"Account_Name": "Acme Secret"})
    doc = page(client.post(f"{ADD_URL}?module={modules['Deals'].pk}", {
        "owner": editor.crm_user.pk, "values__Deal_Name": "", "values__Amount": "lots",
        "values__Closing_Date": "2026-02-30", "values__Stage": "Negotiation/Review",
        "values__Probability": "12.5", "values__Account_Name": str(their_account.pk),
    }))
    assert errors_beside(doc, "Deal_Name") == ["Deal Name is required."]
    assert errors_beside(doc, "Amount") == ["Amount: expected a number."]
    assert errors_beside(doc, "Closing_Date") == ["Closing Date: expected a date as YYYY-MM-DD."]
    assert errors_beside(doc, "Probability") == ["Probability (%): expected a whole number."]
    assert errors_beside(doc, "Account_Name") == [f"Account Name: no Account record with id {their_account.pk}."]
    assert errors_beside(doc, "Stage") == []
    assert (shown(doc, "Amount"), shown(doc, "Closing_Date"), shown(doc, "Stage"), shown(doc, "Probability"),
            shown(doc, "Account_Name")) == ("lots", "2026-02-30", "Negotiation/Review", "12.5", str(their_account.pk))
    assert "Acme Secret" not in lxml.html.tostring(doc).decode()  # another organization's record is not named
    assert not Record.objects.filter(module=modules["Deals"]).exists()


def test_editing_changes_only_what_the_user_changed(client, editor, owner, organization, modules, accounts):
    Field.objects.filter(module=modules["Deals"], api_name="Stage").update(picklist_values=["Open", "Closed Won"])
    deal = services.record_create(module=modules["Deals"], owner=owner, values={
        "Deal_Name": "Website", "Amount": "100", "Account_Name": accounts[0].pk, "Payment_Due_Date": "2026-12-15"})
    # A stage the pick list no longer has (renamed since), and a date/time with seconds: both must survive.
    Record.objects.filter(pk=deal.pk).update(values={**deal.values, "Stage": "Negotiation/Review"})
    call = services.record_create(module=modules["Calls"], owner=owner, values={
        "Subject": "Intro", "Call_Start_Time": "2026-05-01T12:30:15+00:00"})
    url = reverse("admin:crm_record_change", args=[deal.pk])
    doc = page(client.get(url))
    assert (shown(doc, "Deal_Name"), shown(doc, "Amount"), shown(doc, "Stage"), shown(doc, "Payment_Due_Date")) == (
        "Website", "100.00", "Negotiation/Review", "2026-12-15")
    assert row(doc, "Stage").xpath(".//option[@selected]")[0].text == "Negotiation/Review (no longer in the pick list)"
    assert row(doc, "Account_Name").xpath(".//option[@selected]")[0].text == f"Zylker Systems (#{accounts[0].pk})"

    form = sent_back(doc)  # what the browser sends back
    services.record_update(record=Record.objects.get(pk=deal.pk), values={"Closing_Date": "2027-01-31"})
    form["values__Amount"] = "250"
    response = client.post(url, form, follow=True)
    assert "was changed successfully" in response.content.decode()
    assert Record.objects.get(pk=deal.pk).values == {
        "Deal_Name": "Website", "Amount": "250.00", "Account_Name": accounts[0].pk, "Payment_Due_Date": "2026-12-15",
        "Stage": "Negotiation/Review", "Closing_Date": "2027-01-31"}  # the change made meanwhile is kept

    call_url = reverse("admin:crm_record_change", args=[call.pk])
    call_doc = page(client.get(call_url))
    assert shown(call_doc, "Call_Start_Time") == "2026-05-01T14:30:15"  # Europe/Amsterdam, the organization's
    form = sent_back(call_doc)
    client.post(call_url, {**form, "values__Call_Duration": "15"})
    assert Record.objects.get(pk=call.pk).values == {"Subject": "Intro", "Call_Start_Time": "2026-05-01T12:30:15+00:00",
                                                     "Call_Duration": 15}


    contact = services.record_create(module=modules["Contacts"], owner=owner, values={
        "Last_Name": "Jansen", "Email_Opt_Out": True})
    contact_url = reverse("admin:crm_record_change", args=[contact.pk])
    contact_doc = page(client.get(contact_url))
    assert shown(contact_doc, "Email_Opt_Out") == "checked"
    client.post(contact_url, {**sent_back(contact_doc), "values__First_Name": "Lena"})
    assert Record.objects.get(pk=contact.pk).values == {"Last_Name": "Jansen", "Email_Opt_Out": True,
                                                        "First_Name": "Lena"}
    form = sent_back(page(client.get(contact_url)))
    del form["values__Email_Opt_Out"]  # unticked: a browser sends nothing for it
    client.post(contact_url, form)
    assert Record.objects.get(pk=contact.pk).values["Email_Opt_Out"] is False


def test_a_lookup_searches_the_organizations_records_of_the_looked_up_module(client, editor, organization, modules,
                                                                             accounts):
    other = OrganizationFactory(name="Acme")
    services.record_create(module=other.modules.get(api_name="Accounts"), owner=CrmUserFactory(organization=other),
                           values={"Account_Name": "Zylker Lookalike"})
    services.record_create(module=modules["Leads"], owner=editor.crm_user, values={"Last_Name": "Zylker"})
    account_name = field(modules, "Deals", "Account_Name")
    found = search(client, account_name, "zylker")
    assert found == {"results": [{"id": str(accounts[1].pk), "text": f"Zylker Foods (#{accounts[1].pk})"},
                                 {"id": str(accounts[0].pk), "text": f"Zylker Systems (#{accounts[0].pk})"}],
                     "pagination": {"more": False}}
    assert [r["text"] for r in search(client, account_name, f"#{accounts[2].pk}")["results"]] == [
        f"Bakkerij Jansen (#{accounts[2].pk})"]
    their_field = Field.objects.get(module=other.modules.get(api_name="Deals"), api_name="Account_Name")
    assert client.get(LOOKUP_URL, {"field": their_field.pk}).status_code == 404
    assert client.get(LOOKUP_URL, {"field": field(modules, "Deals", "Stage").pk}).status_code == 404
    assert search(client, account_name, "zylker", page_number=10 ** 17)["results"] == []


def test_roles_an_auditor_reads_values_by_name_and_an_integration_admin_alone_adds_none(client, organization, owner,
                                                                                         modules, accounts):
    deal = services.record_create(module=modules["Deals"], owner=owner, values={
        "Deal_Name": "Website", "Account_Name": accounts[0].pk, "Stage": "Closed Won"})
    client.force_login(staff_login(organization, "auditor", group="Auditor"))
    doc = page(client.get(reverse("admin:crm_record_change", args=[deal.pk])))
    values = {tr.xpath("string(th)"): tr.xpath("string(td)")
              for tr in doc.xpath("//div[contains(@class, 'field-values_display')]//tr")}
    assert values["Account Name"] == "Zylker Systems" and values["Stage"] == "Closed Won"
    assert values["Amount"] == "-" and not doc.xpath("//input[@name='values__Deal_Name']")
    assert client.post(reverse("admin:crm_record_change", args=[deal.pk]), {"values__Deal_Name": "x"}) \
        .status_code == 403
    assert client.get(ADD_URL).status_code == 403
    client.force_login(staff_login(organization, "integrator", group="Integration admin"))
    assert client.get(ADD_URL).status_code == 403
    assert client.get(ADD_URL, {"module": modules["Deals"].pk}).status_code == 403


def test_a_record_editor_changes_records_but_deletes_none(client, editor, owner, modules):
    deal = services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    assert client.post(reverse("admin:crm_record_delete", args=[deal.pk]), {"post": "yes"}).status_code == 403
    assert Record.objects.filter(pk=deal.pk).exists()
    response = client.post(f"{ADD_URL}?module={modules['Deals'].pk}",
                           {"owner": owner.pk, "values__Deal_Name": "Next", "_addanother": "1"})
    assert response["Location"] == f"{ADD_URL}?module={modules['Deals'].pk}"  # another deal, not the chooser


def test_each_demo_login_adds_a_deal_as_the_first_tour_says_and_its_rule_fires(client, db, monkeypatch, settings,
                                                                                tmp_path):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "letmein-123")
    settings.VAR_DIR = tmp_path  # not the developer's own var/
    call_command("demo_load", stdout=StringIO())
    for username, webhook in [("zylker", "Creator sales commission"), ("acme", "Order to ERP")]:
        assert client.post("/admin/login/?next=/admin/", {"username": username, "password": "letmein-123"}) \
            .status_code == 302  # through the login page, as a person does (and as django-axes watches)
        chooser = page(client.get(ADD_URL))
        [deals] = [o.get("value") for o in chooser.xpath("//select[@name='module']/option") if o.text == "Deals"]
        doc = page(client.get(ADD_URL, {"module": deals}))
        form = sent_back(doc)
        form.update({"values__Deal_Name": f"Tour deal of {username}", "values__Type": "New Business",
                     "values__Stage": "Closed Won", "values__Amount": "2500",
                     "values__Account_Name": first_offered(client, doc, "Account_Name")})
        response = client.post(f"{ADD_URL}?module={deals}", form, follow=True)
        assert "was added successfully" in response.content.decode(), username
        deal = Record.objects.get(values__Deal_Name=f"Tour deal of {username}")
        assert Delivery.objects.filter(record_id=deal.pk, webhook__name=webhook).exists(), username
        client.logout()


def first_offered(client, doc: lxml.html.HtmlElement, api_name: str) -> str:
    """The first record a lookup's search box offers (none: left empty), as a person would pick it."""
    url = row(doc, api_name).xpath(".//select")[0].get("data-ajax--url")
    offered = json.loads(client.get(url + "&term=").content)["results"]  # select2 adds the term to the address
    return offered[0]["id"] if offered else ""
