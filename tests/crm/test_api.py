"""The records REST API: API keys, JSON errors with their bodies, and rules firing with each change."""
import json

import pytest

from crm import services
from crm.models import ApiKey, Record
from dispatcher.models import Delivery
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create
from workflows.models import Action, WorkflowRule
from workflows.services import rule_save


@pytest.fixture
def key(owner):
    return services.api_key_create(user=owner, name="Web shop")[1]


@pytest.fixture
def api(client, key):
    def call(method: str, path: str, body=None, *, content_type="application/json", headers=None, raw=None):
        headers = {"X-API-Key": key} if headers is None else headers
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = getattr(client, method.lower())(f"/api/v1/records/{path}", data=data, content_type=content_type,
                                                   headers=headers)
        return response.status_code, (response.json() if response.content else None)

    return call


@pytest.fixture
def create_rule(modules):
    hook = webhook_create(module=modules["Deals"], name="Books", entity=[("deal", "${Deals.Deal Name}")])
    rule = WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"], name="On any change",
                        trigger="create_or_edit", match_all_records=True)
    return rule_save(rule=rule, conditions=[], actions=[Action(webhook=hook, kind="instant")]).rule


def test_create_read_update_delete_a_record(api, owner, create_rule):
    status, body = api("POST", "Deals/", {"Deal_Name": "Shop order", "Amount": 99.5, "Stage": "Qualification"})
    assert status == 201
    data = body["data"]
    assert data["values"] == {"Deal_Name": "Shop order", "Amount": "99.50", "Stage": "Qualification"}
    assert data["owner"] == {"id": owner.pk, "name": "Ted Watson"} and data["module"] == "Deals"
    pk = data["id"]
    assert api("GET", f"Deals/{pk}/")[1]["data"]["values"]["Deal_Name"] == "Shop order"
    status, body = api("PATCH", f"Deals/{pk}/", {"Stage": "Closed Won"})
    assert status == 200 and body["data"]["values"]["Amount"] == "99.50"
    status, body = api("PUT", f"Deals/{pk}/", {"Deal_Name": "Replaced"})
    assert status == 200 and body["data"]["values"] == {"Deal_Name": "Replaced"}
    assert Delivery.objects.count() == 3  # the rule fired for the create and both edits
    assert api("DELETE", f"Deals/{pk}/") == (200, {"data": {"id": pk, "deleted": True}})
    assert not Record.objects.filter(pk=pk).exists()


def test_the_query_parameter_zapikey_works_too(client, key, owner):
    response = client.post(f"/api/v1/records/Leads/?zapikey={key}", data=json.dumps({"Last_Name": "Jansen"}),
                           content_type="application/json")
    assert response.status_code == 201


@pytest.mark.parametrize(("headers", "message"), [
    ({}, "Send a valid API key in the X-API-Key header or the zapikey query parameter."),
    ({"X-API-Key": "crm_wrong"}, "This API key is not valid or was revoked."),
])
def test_a_missing_or_wrong_key_is_401(api, headers, message):
    status, body = api("POST", "Leads/", {"Last_Name": "x"}, headers=headers)
    assert (status, body["error"]) == (401, {"code": "unauthorized", "message": message})
    # RFC 9457, with the same code as an extension member
    assert (body["status"], body["title"], body["detail"], body["code"]) == (401, "Unauthorized", message,
                                                                             "unauthorized")
    assert not Record.objects.exists()


def test_a_revoked_key_is_refused_from_then_on(api, owner):
    services.api_key_revoke(key=ApiKey.objects.get())
    assert api("GET", "Leads/1/")[0] == 401


def test_keys_are_stored_hashed(key):
    stored = ApiKey.objects.get()
    assert key not in (stored.key_hash, stored.prefix) and key.startswith(stored.prefix)


def test_another_organizations_record_is_404_like_a_missing_one(api, owner):
    other = OrganizationFactory()
    stranger = services.record_create(module=other.modules.get(api_name="Leads"),
                                      owner=CrmUserFactory(organization=other), values={"Last_Name": "Theirs"})
    status, missing = api("GET", "Leads/999999999/")
    assert (status, missing["error"]) == (404, {"code": "not_found", "message": "There is no Lead record with id "
                                                                               "999999999."})
    status, theirs = api("GET", f"Leads/{stranger.pk}/")
    assert (status, theirs["error"]) == (
        404, {"code": "not_found", "message": f"There is no Lead record with id {stranger.pk}."})
    assert api("PATCH", f"Leads/{stranger.pk}/", {"Last_Name": "Mine"})[0] == 404
    stranger.refresh_from_db()
    assert stranger.values == {"Last_Name": "Theirs"}


def test_invalid_fields_are_400_naming_each_and_nothing_changes_or_fires(api, create_rule):
    status, body = api("POST", "Deals/", {"Deal_Name": "x", "Amount": "lots", "Colour": "red"})
    assert status == 400
    assert body["error"]["code"] == "invalid_fields"
    assert body["error"]["fields"] == {"Amount": ["Amount: expected a number."],
                                       "Colour": ["Deals has no field with API name “Colour”."]}
    assert body["error"]["message"] == "Some values are not valid: Amount, Colour."
    assert not Record.objects.exists() and not Delivery.objects.exists()


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), [
    ("POST", "Planets/", {"body": {}}, 404, "unknown_module"),
    ("GET", "Deals/999999/", {}, 404, "not_found"),
    ("DELETE", "Deals/", {}, 405, "method_not_allowed"),
    ("POST", "Deals/", {"raw": "{not json"}, 400, "invalid_json"),
    ("POST", "Deals/", {"body": ["a list"]}, 400, "invalid_body"),
    ("POST", "Deals/", {"raw": "Deal_Name=x", "content_type": "application/x-www-form-urlencoded"}, 415,
     "unsupported_media_type"),
    ("POST", "Deals/", {"raw": json.dumps({"Deal_Name": "x" * 2_000_000})}, 413, "too_large"),
])
def test_errors_are_json_with_a_code(api, method, path, kwargs, status, code):
    got_status, body = api(method, path, **kwargs)
    assert (got_status, body["error"]["code"]) == (status, code)
    assert body["error"]["message"]
    assert not Record.objects.exists()


def test_unknown_api_paths_are_json_404(client):
    response = client.get("/api/v2/whatever/")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_bulk_create_is_all_or_nothing(api, create_rule):
    status, body = api("POST", "Deals/bulk/", [{"Deal_Name": "a"}, {"Deal_Name": "b", "Amount": "x"}, "nope"])
    assert status == 400
    assert body["error"]["code"] == "invalid_records"
    assert body["error"]["message"] == "2 of 3 records are not valid; none was created."
    assert body["error"]["records"] == {"1": {"Amount": ["Amount: expected a number."]},
                                        "2": {"__all__": ["Send a JSON object of field values keyed by API name."]}}
    assert not Record.objects.exists() and not Delivery.objects.exists()
    status, body = api("POST", "Deals/bulk/", [{"Deal_Name": f"d{i}"} for i in range(100)])
    assert status == 201 and len(body["data"]) == 100 and Delivery.objects.count() == 100
    status, body = api("POST", "Deals/bulk/", [{"Deal_Name": "x"}] * 101)
    assert (status, body["error"]["message"]) == (400, "At most 100 records per request; this has 101.")


def test_a_keys_last_use_is_kept_to_the_minute_without_a_write_per_call(client, key, owner):
    def call():
        return client.post("/api/v1/records/Leads/", data={"Last_Name": "Used"}, content_type="application/json",
                           headers={"X-API-Key": key})

    assert call().status_code == 201
    stored = ApiKey.objects.get()
    first_use = stored.last_used_at
    assert first_use is not None
    assert call().status_code == 201
    assert ApiKey.objects.get().last_used_at == first_use  # the second call, seconds later, wrote nothing
    ApiKey.objects.update(last_used_at=first_use - services.API_KEY_USE_RESOLUTION)
    assert call().status_code == 201
    assert ApiKey.objects.get().last_used_at > first_use
