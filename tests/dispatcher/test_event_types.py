"""The event catalogue as an integrator uses it: GET /api/v1/event-types/ lists every event a channel can
subscribe to, with the JSON Schema of its notification, and real notifications, delivered to a real local
HTTP server, are valid against the schema served for each of their events."""
import copy

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from crm import services as crm_services
from crm.models import ApiScope, Field, FieldType
from crm.selectors import standard_modules_unsaved
from dispatcher.senders.channels import channel_events_clean
from dispatcher.senders.event_types import event_types_of
from tests.dispatcher.test_channels import received, run_due
from tests.factories import CrmUserFactory, OrganizationFactory

OPERATIONS = ("create", "edit", "delete", "all")


@pytest.fixture
def key(owner):
    return crm_services.api_key_create(user=owner, name="Integration")[1]  # default scopes: channels among them


@pytest.fixture
def get(client, key):
    def call(path: str, *, api_key: str | None = None):
        response = client.get(f"/api/v1/event-types/{path}", headers={"X-API-Key": api_key or key})
        return response.status_code, response.json(), response["Content-Type"]

    return call


def test_the_catalogue_lists_create_edit_delete_and_all_per_module_and_a_change_event_per_field(get, modules):
    status, body, _ = get("")
    assert status == 200 and list(body) == ["data"]
    names = [event["name"] for event in body["data"]]
    for module in ("Accounts", "Contacts", "Deals", "Events", "Leads", "Tasks"):
        assert [n for n in names if n.startswith(f"{module}.") and not n.endswith(".change")] == [
            f"{module}.{operation}" for operation in OPERATIONS]
    assert not [n for n in names if n.startswith(("Calls.", "Notes."))]  # no webhooks on call logs and notes
    own_fields = Field.objects.usable().filter(module=modules["Deals"], is_system=False).order_by("position", "id")
    assert [n for n in names if n.startswith("Deals.") and n.endswith(".change")] == [
        f"Deals.{field.api_name}.change" for field in own_fields]
    stage = next(event for event in body["data"] if event["name"] == "Deals.Stage.change")
    assert (stage["module"], stage["operation"], stage["field"]) == ("Deals", "edit", "Stage")
    assert "whatever the channel's field filter" in stage["description"]
    for event in body["data"]:
        Draft202012Validator.check_schema(event["payload_schema"])  # each is a valid draft 2020-12 schema
        assert event["payload_schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_each_listed_event_is_one_a_channel_accepts_as_it_is_spelled(get, organization):
    names = [event["name"] for event in get("")[1]["data"]]
    for start in range(0, len(names), 20):  # at most 20 events per channel
        assert channel_events_clean(organization=organization, events=names[start:start + 20]) == names[start:start + 20]


def test_the_catalogue_follows_the_organizations_own_fields(get, modules):
    Field.objects.create(module=modules["Deals"], label="Discount", api_name="Discount",
                         field_type=FieldType.DECIMAL, position=50)
    Field.objects.filter(module=modules["Deals"], api_name="Type").update(is_deleted=True)
    status, body, _ = get("?module=potentials")  # an alias, in any case, as channels take it
    assert status == 200 and {event["module"] for event in body["data"]} == {"Deals"}
    names = [event["name"] for event in body["data"]]
    assert "Deals.Discount.change" in names and "Deals.Type.change" not in names
    data = body["data"][0]["payload_schema"]["properties"]["data"]["properties"]
    assert data["Discount"]["title"] == "Discount" and data["Discount"]["type"] == "string"
    assert "Type" not in data
    assert "Deals.Discount.change" not in [e["name"] for e in get("", api_key=_key_of_another_organization())[1]["data"]]


def _key_of_another_organization() -> str:
    return crm_services.api_key_create(user=CrmUserFactory(organization=OrganizationFactory()), name="Other")[1]


def test_one_event_by_any_name_a_channel_accepts(get):
    status, body, _ = get("potentials.UPDATE/")
    assert status == 200 and body["data"]["name"] == "Deals.edit" and body["data"]["operation"] == "edit"
    assert "affected_fields" in body["data"]["payload_schema"]["properties"]


@pytest.mark.parametrize(("path", "status", "code", "message"), [
    ("?module=Calls", 400, "invalid_fields", "Calls records cannot be subscribed to."),
    ("?module=Invoices", 400, "invalid_fields", "There is no module “Invoices”."),
    ("?module=De%00als", 400, "invalid_fields", "There is no module"),
    ("Deals.explode/", 404, "not_found", "the operation must be create, edit (or update), delete or all"),
    ("Invoices.create/", 404, "not_found", "there is no module “Invoices”"),
    ("Deals.Modified_Time.change/", 404, "not_found", "notifies nothing"),
    ("Deals%00.create/", 404, "not_found", "is not <Module>.<operation>"),
])
def test_unknown_modules_and_events_are_problems_that_say_why(get, path, status, code, message):
    answer_status, body, content_type = get(path)
    assert (answer_status, body["code"], content_type) == (status, code, "application/problem+json")
    assert message in body["detail"] + " ".join(body.get("fields", {}).get("module", []))


def test_a_key_without_the_channels_scope_gets_a_403_problem(get, owner):
    reader = crm_services.api_key_create(user=owner, name="Reader", scopes=[ApiScope.RECORDS_READ.value])[1]
    for path in ("", "Deals.create/"):
        status, body, content_type = get(path, api_key=reader)
        assert (status, content_type) == (403, "application/problem+json")
        assert body["code"] == "missing_scope" and body["required_scope"] == "channels"
        assert "does not have the scope channels" in body["detail"]


def test_a_new_organizations_catalogue_is_the_one_the_documentation_describes(get):
    served = {event["name"]: event for event in get("")[1]["data"]}
    documented = {event.name: {"name": event.name, "module": event.module, "operation": event.operation,
                               "field": event.field, "description": event.description,
                               "payload_schema": event.payload_schema}
                  for event in event_types_of(modules=standard_modules_unsaved())}
    assert served == documented


# Deals' standard fields have six of the field types; these add the others, so that a real notification
# carries a value of every type.
OTHER_TYPES = [
    ("Notes", FieldType.TEXTAREA, "Two lines\nof notes"),
    ("Buyer_Email", FieldType.EMAIL, "jan@bücher.example"),
    ("Buyer_Phone", FieldType.PHONE, "+31 6 1234 5678"),
    ("Offer_Url", FieldType.URL, "https://bücher.example/offer?id=7"),
    ("Discount", FieldType.DECIMAL, "1e5"),
    ("Signed_At", FieldType.DATETIME, "2026-05-01T14:30:00"),
    ("Signed", FieldType.BOOLEAN, True),
    ("Reviewer", FieldType.USER, None),  # the owner's id
]


@pytest.fixture
def deals_with_every_type(modules, owner):
    for position, (api_name, field_type, _) in enumerate(OTHER_TYPES, start=100):
        Field.objects.create(module=modules["Deals"], label=api_name.replace("_", " "), api_name=api_name,
                             field_type=field_type, position=position)
    account = crm_services.record_create(module=modules["Accounts"], owner=owner, values={"Account_Name": "Zylker"})
    contact = crm_services.record_create(module=modules["Contacts"], owner=owner, values={"Last_Name": "Jansen"})
    return {
        "Deal_Name": "Website", "Amount": "1234.5", "Closing_Date": "2026-06-30", "Stage": "Qualification",
        "Type": "New Business", "Probability": 40, "Account_Name": account.pk, "Contact_Name": contact.pk,
        "Payment_Due_Date": "2026-07-31",
        **{api_name: owner.pk if value is None else value for api_name, _, value in OTHER_TYPES},
    }


def test_real_notifications_are_valid_against_the_schema_served_for_each_of_their_events(
        client, key, get, receiver, owner, modules, deals_with_every_type):
    receiver.expect_request("/notify").respond_with_data("OK")
    for events in (["Deals.all"], ["Deals.create", "Deals.Stage.change", "Deals.delete"]):
        response = client.post("/api/v1/channels/", {"events": events, "notify_url": receiver.url_for("/notify"),
                                                     "token": "tok-7"}, content_type="application/json",
                               headers={"X-API-Key": key})
        assert response.status_code == 201, response.json()
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values=deals_with_every_type)
    crm_services.record_update(record=deal, values={"Stage": "Closed Won", "Discount": "0.0000000000"})
    crm_services.record_delete(record=deal)
    for _ in range(3):  # one notification per channel and pass: the events of one record go in order
        run_due()
    notifications = received(receiver)
    assert sorted((n["operation"], tuple(n["events"])) for n in notifications) == [
        ("create", ("Deals.all",)), ("create", ("Deals.create",)), ("delete", ("Deals.all",)),
        ("delete", ("Deals.delete",)), ("edit", ("Deals.Stage.change",)), ("edit", ("Deals.all",))]
    create = next(n for n in notifications if n["operation"] == "create")
    carried = set(Field.objects.filter(module=modules["Deals"], api_name__in=create["data"]).exclude(
        is_system=True).values_list("field_type", flat=True))
    assert carried == set(FieldType.values)  # every field type went through a real notification
    schemas = {}
    for notification in notifications:
        for event in notification["events"]:
            schemas[event] = schemas.get(event) or get(f"{event}/")[1]["data"]["payload_schema"]
            validator = Draft202012Validator(schemas[event], format_checker=FormatChecker())
            assert [error.message for error in validator.iter_errors(notification)] == [], event
    # And the schemas say something: a wrongly typed value, a missing system value or an unknown key fails.
    create_schema = Draft202012Validator(schemas["Deals.create"], format_checker=FormatChecker())
    for change in (lambda n: n["data"].update(Amount=1234.5), lambda n: n["data"].pop("Owner"),
                   lambda n: n.update(extra=1), lambda n: n["data"].update(Closing_Date="30/06/2026"),
                   lambda n: n.update(events=["Deals.edit"])):
        wrong = copy.deepcopy(create)
        change(wrong)
        assert not create_schema.is_valid(wrong)


def test_a_value_removed_from_the_pick_list_since_is_still_valid(get, receiver, client, key, owner, modules):
    receiver.expect_request("/notify").respond_with_data("OK")
    client.post("/api/v1/channels/", {"events": ["Deals.edit"], "notify_url": receiver.url_for("/notify")},
                content_type="application/json", headers={"X-API-Key": key})
    deal = crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Old", "Stage": "Negotiation/Review"})
    Field.objects.filter(module=modules["Deals"], api_name="Stage").update(
        picklist_values=["Qualification", "Closed Won", "Closed Lost"])
    crm_services.record_update(record=deal, values={"Deal_Name": "Renamed"})
    run_due()
    [edit] = received(receiver)
    assert edit["data"]["Stage"] == "Negotiation/Review"
    schema = get("Deals.edit/")[1]["data"]["payload_schema"]
    assert schema["properties"]["data"]["properties"]["Stage"]["examples"] == [
        "Qualification", "Closed Won", "Closed Lost"]
    assert Draft202012Validator(schema, format_checker=FormatChecker()).is_valid(edit)
