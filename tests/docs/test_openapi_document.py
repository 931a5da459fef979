"""The published OpenAPI document (docs/openapi.json) is the one the API serves, is valid OpenAPI 3.1, and its
`webhooks` say what receivers really get: real channel notifications, a real verification request and real
workflow webhook calls, sent to a local HTTP server, are validated against the schemas and headers it
documents. The API reference page is that document as tables."""
import json
from email.message import Message

import pytest
from django.utils import timezone
from jsonschema import Draft202012Validator, ValidationError
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from standardwebhooks.webhooks import Webhook as StandardWebhook
from werkzeug import Response

from config.api_reference import api_reference, openapi_json
from crm import services as crm_services
from crm.selectors import standard_modules_unsaved
from dispatcher import delivery as delivery_engine
from dispatcher.senders.event_types import event_types_of
from dispatcher.models import ContentType, Method
from tests.docs.pages import page
from tests.factories import webhook_create
from workflows import services as workflow_services
from workflows.models import Action, WorkflowRule

REGENERATE = "run python scripts/docs_generate.py"
DOCUMENT_URI = "urn:crm-webhooks:openapi"


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(page("openapi.json"))


def test_the_committed_document_is_the_one_the_api_serves(client, document):
    assert page("openapi.json") == openapi_json(), f"docs/openapi.json is stale: {REGENERATE}"
    served = client.get("/api/v1/openapi.json")
    assert served.status_code == 200
    assert served.json() == document, f"docs/openapi.json differs from GET /api/v1/openapi.json: {REGENERATE}"


def test_the_api_reference_page_is_generated_from_the_document():
    assert page("integrate/api-reference.md") == api_reference(), f"docs/integrate/api-reference.md is stale: {REGENERATE}"


def test_the_document_is_valid_openapi_3_1_with_its_webhooks(document):
    validate(document, cls=OpenAPIV31SpecValidator)
    assert document["openapi"].startswith("3.1")
    assert set(document["webhooks"]) == {"channelNotification", "channelVerification", "workflowWebhookJson",
                                         "workflowWebhookJsonArray"}
    for item in document["webhooks"].values():
        for operation in item.values():
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header" and p["required"]}
            assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= headers


def test_the_reference_page_lists_every_operation_webhook_and_payload_field(document):
    text = page("integrate/api-reference.md")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert f"#### `{method.upper()} {path}`" in text
            assert all(f"`{scope}`" in text for scope in operation["x-scopes"])
    assert "## Webhooks (what receivers get)" in text
    for name in document["webhooks"]:
        assert f"### `{name}`" in text
    notification = document["components"]["schemas"]["ChannelNotification"]
    for field in notification["properties"]:
        assert f"| `{field}` |" in text
    assert "| `channel.expiry_time` |" in text and "| `data.Owner` |" in text


# --- Real requests against the documented webhooks ------------------------------------------------------

def body_validator(document: dict, webhook: str, method: str, media_type: str) -> Draft202012Validator:
    """The JSON Schema of a webhook's body, its references resolved within the document."""
    schema = document["webhooks"][webhook][method]["requestBody"]["content"][media_type]["schema"]
    registry = Registry().with_resource(DOCUMENT_URI, Resource.from_contents(document, DRAFT202012))
    return Draft202012Validator({"$ref": DOCUMENT_URI + schema["$ref"]}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_request(document: dict, webhook: str, request) -> dict:
    """Validate a received request against the webhook's documented method, headers and body; its body."""
    operation = document["webhooks"][webhook][request.method.lower()]
    for parameter in operation["parameters"]:
        assert parameter["in"] == "header"
        value = request.headers.get(parameter["name"])
        assert value is not None or not parameter["required"], f"{webhook}: no {parameter['name']} header"
        if value is not None:
            Draft202012Validator(parameter["schema"]).validate(value)
    media_type = _media_type(request.headers["Content-Type"])
    assert media_type in operation["requestBody"]["content"], (webhook, request.headers["Content-Type"])
    body = json.loads(request.get_data())
    body_validator(document, webhook, request.method.lower(), media_type).validate(body)
    return body


def _media_type(content_type: str) -> str:
    message = Message()
    message["Content-Type"] = content_type
    return message.get_content_type()


@pytest.fixture
def channel_api(client, owner):
    key = crm_services.api_key_create(user=owner, name="Integration")[1]

    def call(body: dict) -> dict:
        response = client.post("/api/v1/channels/", data=json.dumps(body), content_type="application/json",
                               headers={"X-API-Key": key})
        assert response.status_code == 201, response.content
        return response.json()["data"]

    return call


def run_due() -> None:
    for pk, token in delivery_engine.deliveries_claim(now=timezone.now(), limit=100):
        delivery_engine.delivery_attempt(delivery_id=pk, token=token)


def test_a_real_verification_and_real_notifications_are_what_the_document_says(document, receiver, channel_api,
                                                                               owner, modules):
    def answer(request):
        sent = json.loads(request.get_data())
        return Response(sent["challenge"] if sent.get("type") == "verification" else "OK")

    receiver.expect_request("/notify").respond_with_handler(answer)
    channel = channel_api({"events": ["Deals.all", "Deals.Stage.change"], "notify_url": receiver.url_for("/notify"),
                           "token": "tok-7", "verify": True})
    deal = crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Website", "Stage": "Qualification", "Amount": "12.5"})
    crm_services.record_update(record=deal, values={"Stage": "Closed Won"})
    crm_services.record_delete(record=deal)
    for _ in range(3):  # one per pass: the events of one record go in order
        run_due()

    verification, *notifications = [request for request, _ in receiver.log]
    challenge = check_request(document, "channelVerification", verification)
    assert (challenge["type"], challenge["token"], challenge["channel"]["id"]) == ("verification", "tok-7",
                                                                                   channel["id"])
    bodies = [check_request(document, "channelNotification", request) for request in notifications]
    assert [body["operation"] for body in bodies] == ["create", "edit", "delete"]
    assert [body.get("affected_fields") for body in bodies] == [None, ["Stage"], None]
    assert bodies[0]["data"]["Owner"] == {"id": str(owner.pk), "name": "Ted Watson"}
    for request in [verification, *notifications]:  # the documented headers are the signature receivers check
        StandardWebhook(channel["signing_secret"]).verify(request.get_data(), dict(request.headers))

    invalid = body_validator(document, "channelNotification", "post", "application/json")
    with pytest.raises(ValidationError):
        invalid.validate({key: value for key, value in bodies[0].items() if key != "token"})
    with pytest.raises(ValidationError):  # affected_fields belongs to edits only
        invalid.validate({**bodies[0], "affected_fields": ["Stage"]})

    # The document and the event catalogue publish one schema: what one refuses, the other refuses too.
    [deals_all] = [event.payload_schema for event in event_types_of(modules=standard_modules_unsaved())
                   if event.name == "Deals.all"]
    catalogue = Draft202012Validator(deals_all, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert all(catalogue.is_valid(body) for body in bodies)
    for untrue in untrue_notifications(bodies[0]):
        assert not invalid.is_valid(untrue) and not catalogue.is_valid(untrue), untrue


def untrue_notifications(create: dict) -> list[dict]:
    """A create notification changed in ways no real one is: nothing the product sends is null, empty or
    spelled otherwise there."""
    data = create["data"]
    return [
        {key: value for key, value in create.items() if key != "events"},
        {**create, "extra": 1},
        {**create, "affected_fields": []},
        {**create, "operation": "update"},
        {**create, "token": ""},
        {**create, "channel": {**create["channel"], "id": "not an id"}},
        {**create, "events": []},
        {**create, "events": ["Deals.all", "Deals.all"]},
        {**create, "events": ["Deals.explode"]},
        {**create, "ids": ["12", "13"]},
        {**create, "data": {**data, "Owner": None}},
        {**create, "data": {**data, "Owner": {"id": data["Owner"]["id"]}}},
        {**create, "data": {**data, "Created_Time": None}},
        {**create, "data": {**data, "Modified_Time": None}},
        {**create, "data": {**data, "id": 12}},
        {**create, "data": {key: value for key, value in data.items() if key != "Modified_Time"}},
    ]


@pytest.fixture
def contact_with_deals(owner, modules):
    account = crm_services.record_create(module=modules["Accounts"], owner=owner, values={"Account_Name": "Zylker"})
    contact = crm_services.record_create(module=modules["Contacts"], owner=owner,
                                         values={"First_Name": "Lena", "Last_Name": "de Vries", "Account_Name": account.pk})
    for name, amount in [("First", "10"), ("Second", "20.5")]:
        crm_services.record_create(module=modules["Deals"], owner=owner,
                                   values={"Deal_Name": name, "Amount": amount, "Contact_Name": contact.pk})
    return contact


PARAMETERS = [("contact.name", "${Contacts.First Name} ${Contacts.Last Name}"),
              ("contact.account", "${Accounts.Account Name}"), ("deals.name", "${Deals.Deal Name}"),
              ("deals.owner.name", "${Deals.Deal Owner}"), ("deal_names", "${Deals.Deal Name}")]


def test_real_workflow_webhook_calls_in_json_and_json_array_are_what_the_document_says(document, receiver, organization,
                                                                                       modules, contact_with_deals):
    receiver.expect_request("/hook").respond_with_data("ok")
    hooks = {content_type: webhook_create(
        module=modules["Contacts"], name=f"Sync {content_type}", url=receiver.url_for("/hook"), method=method,
        content_type=content_type, entity=PARAMETERS, custom=[("source", "crm"), ("meta.version", "2")])
        for content_type, method in [(ContentType.JSON, Method.POST), (ContentType.JSONARRAY, Method.PUT)]}
    for hook in hooks.values():  # one instant webhook action per rule in this edition
        rule = WorkflowRule(organization=organization, module=modules["Contacts"], name=f"On edit: {hook.name}",
                            trigger="edit", match_all_records=True)
        workflow_services.rule_save(rule=rule, conditions=[], actions=[Action(webhook=hook, kind="instant")])
    crm_services.record_update(record=contact_with_deals, values={"Last_Name": "Jansen"})
    for _ in range(2):  # both are due at once; a second pass finds nothing left if the first sent both
        run_due()

    received = {request.method: request for request, _ in receiver.log}
    assert set(received) == {"POST", "PUT"}
    sent = check_request(document, "workflowWebhookJson", received["POST"])
    [item] = check_request(document, "workflowWebhookJsonArray", received["PUT"])
    expected = {"contact": {"name": "Lena Jansen", "account": "Zylker"},
                "deals": [{"name": "First", "owner": {"name": "Ted Watson"}},
                          {"name": "Second", "owner": {"name": "Ted Watson"}}],
                "deal_names": ["First", "Second"], "source": "crm", "meta": {"version": "2"}}
    assert sent == item == expected  # nested objects, arrays of texts and of objects: every shape documented
    for content_type, request in [(ContentType.JSON, received["POST"]), (ContentType.JSONARRAY, received["PUT"])]:
        StandardWebhook(hooks[content_type].signing_secret).verify(request.get_data(), dict(request.headers))

    with pytest.raises(ValidationError):  # parameters are rendered as text, never as JSON numbers
        body_validator(document, "workflowWebhookJson", "post", "application/json").validate({"amount": 12.5})
