"""Hostile REST API calls: each is answered with the right status and a JSON error, and nothing is changed
or fired (no record, no delivery, no rule run, no channel)."""
import datetime
import json
from urllib.parse import urlencode

import pytest

from crm import services
from crm.models import ApiScope, Record
from dispatcher.models import Channel, Delivery
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create
from workflows.models import Action, ActionRun, WorkflowRule
from workflows.services import rule_save


@pytest.fixture
def key(owner):
    return services.api_key_create(user=owner, name="Hostile")[1]


@pytest.fixture
def deal(owner, modules):
    return services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Kept", "Amount": "10"})


@pytest.fixture
def rule(modules):
    hook = webhook_create(module=modules["Deals"], name="Books", entity=[("deal", "${Deals.Deal Name}")])
    rule = WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"], name="Any change",
                        trigger="create_or_edit", match_all_records=True)
    return rule_save(rule=rule, conditions=[], actions=[Action(webhook=hook, kind="instant")]).rule


def state() -> tuple:
    """Everything a hostile call must leave as it was."""
    return (sorted(Record.objects.values_list("pk", "values")), Delivery.objects.count(), ActionRun.objects.count(),
            Channel.objects.count())


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


RECORD_CALLS = [
    # (method, path, raw body, content type, status, error code)
    ("POST", "Deals/", deep(100_000), "application/json", 400, "invalid_json"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Amount": ' + "9" * 5000 + "}", "application/json", 400, "invalid_json"),
    ("POST", "Deals/", '{"Deal_Name": "\\ud800 lone surrogate"}', "application/json", 400, "invalid_json"),
    ("POST", "Deals/", b'{"Deal_Name": "\xff\xfe"}', "application/json", 400, "invalid_json"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Amount": NaN}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Amount": Infinity}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Amount": "1e999999999"}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": {"nested": ["object"]}}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": ["a", "list"]}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": true}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Stage": {"$ne": null}}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Closing_Date": "2026-02-30"}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x\\u0000y"}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Owner": 1}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Account_Name": "1 OR 1=1"}', "application/json", 400, "invalid_fields"),
    # a digit to str.isdigit() that int() refuses, and ids beyond what a database id holds
    ("POST", "Deals/", '{"Deal_Name": "x", "Account_Name": "²"}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Account_Name": 99999999999999999999999}', "application/json", 400,
     "invalid_fields"),
    ("POST", "Deals/", '{"Deal_Name": "x", "Owner": "٣"}', "application/json", 400, "invalid_fields"),
    # date/times that overflow once converted to UTC (the organization is in Europe/Amsterdam)
    ("POST", "Events/", '{"Event_Title": "x", "Start_DateTime": "9999-12-31T23:59:59-23:59"}', "application/json",
     400, "invalid_fields"),
    ("POST", "Events/", '{"Event_Title": "x", "Start_DateTime": "0001-01-01T00:00:00+23:59"}', "application/json",
     400, "invalid_fields"),
    ("POST", "Events/", '{"Event_Title": "x", "Start_DateTime": "0001-01-01T00:00:00"}', "application/json", 400,
     "invalid_fields"),
    ("POST", "Deals/", '"just a string"', "application/json", 400, "invalid_body"),
    ("POST", "Deals/", "null", "application/json", 400, "invalid_body"),
    ("POST", "Deals/", "", "application/json", 415, "unsupported_media_type"),  # no body: no content type either
    ("POST", "Deals/", '{"Deal_Name": "x"}', "text/plain", 415, "unsupported_media_type"),
    ("POST", "Deals/", json.dumps({"Deal_Name": "x" * 3_000_000}), "application/json", 413, "too_large"),
    ("POST", "../../admin/", "{}", "application/json", 404, "not_found"),
    ("POST", "Deals%00/", "{}", "application/json", 404, "unknown_module"),
    ("POST", "deals/", "{}", "application/json", 404, "unknown_module"),
    ("POST", "Deals/bulk/", json.dumps([{"Deal_Name": str(i)} for i in range(101)]), "application/json", 400,
     "too_many_records"),
    ("POST", "Deals/bulk/", json.dumps([{"Deal_Name": "ok"}, {"Amount": "lots"}]), "application/json", 400,
     "invalid_records"),
    ("DELETE", "Deals/", "", "application/json", 405, "method_not_allowed"),
    ("PUT", "Deals/{deal}/", '{"Amount": "lots"}', "application/json", 400, "invalid_fields"),
    ("POST", "Deals/{deal}/", '{"Amount": "1"}', "application/json", 405, "method_not_allowed"),
    ("PATCH", "Deals/{deal}/", '{"Amount": "lots"}', "application/json", 400, "invalid_fields"),
    ("PATCH", "Deals/{deal}/", '{"Deal_Name": null}', "application/json", 400, "invalid_fields"),
    ("PATCH", "Leads/{deal}/", '{"Last_Name": "x"}', "application/json", 404, "not_found"),
    ("PATCH", "Deals/99999999999999999999/", '{"Amount": "1"}', "application/json", 404, "not_found"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "raw", "content_type", "status", "code"), RECORD_CALLS)
def test_a_hostile_records_call_gets_a_json_error_and_changes_nothing(client, key, deal, rule, method, path, raw,
                                                                      content_type, status, code):
    before = state()
    response = client.generic(method, f"/api/v1/records/{path.format(deal=deal.pk)}", data=raw,
                              content_type=content_type, headers={"X-API-Key": key})
    assert response["Content-Type"] == "application/problem+json"  # RFC 9457
    body = response.json()
    assert (response.status_code, body["error"]["code"]) == (status, code), body
    assert body["error"]["message"]
    assert state() == before


@pytest.mark.django_db
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": ""}, {"X-API-Key": "zk_" + "A" * 43},
                                     {"X-API-Key": "' OR 1=1 --"}, {"X-API-Key": "x" * 100_000},
                                     {"Authorization": "Bearer whatever"}])
def test_a_missing_or_forged_key_is_401_and_changes_nothing(client, deal, rule, headers):
    before = state()
    response = client.post("/api/v1/records/Deals/", data={"Deal_Name": "x"}, content_type="application/json",
                           headers=headers)
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert state() == before


@pytest.mark.django_db
def test_a_revoked_key_changes_nothing(client, owner, deal, rule):
    key, raw = services.api_key_create(user=owner, name="Old")
    services.api_key_revoke(key=key)
    before = state()
    response = client.patch(f"/api/v1/records/Deals/{deal.pk}/", data={"Amount": "99"},
                            content_type="application/json", headers={"X-API-Key": raw})
    assert response.status_code == 401
    assert state() == before


@pytest.mark.django_db
def test_another_organizations_ids_are_refused_and_nothing_changes(client, key, rule):
    other = OrganizationFactory()
    theirs = services.record_create(module=other.modules.get(api_name="Deals"),
                                    owner=CrmUserFactory(organization=other), values={"Deal_Name": "Theirs"})
    stranger = CrmUserFactory(organization=other)
    before = state()
    for method, path, body in [("PATCH", f"Deals/{theirs.pk}/", {"Amount": "1"}), ("DELETE", f"Deals/{theirs.pk}/", None),
                               ("GET", f"Deals/{theirs.pk}/", None)]:
        response = client.generic(method, f"/api/v1/records/{path}", data=json.dumps(body) if body else "",
                                  content_type="application/json", headers={"X-API-Key": key})
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"  # as if missing
    response = client.post("/api/v1/records/Deals/", data={"Deal_Name": "x", "Owner": stranger.pk},
                           content_type="application/json", headers={"X-API-Key": key})
    assert response.status_code == 400
    assert state() == before


CHANNEL_CALLS = [
    ({"events": ["Deals.create"], "notify_url": "http://127.0.0.1/hook"}, "invalid_fields"),
    ({"events": ["Deals.create"], "notify_url": "http://169.254.169.254/latest/"}, "invalid_fields"),
    ({"events": ["Planets.create"], "notify_url": "https://receiver.example.com/hook"}, "invalid_fields"),
    ({"events": "Deals.create", "notify_url": "https://receiver.example.com/hook"}, "invalid_fields"),
    ({"events": [], "notify_url": "https://receiver.example.com/hook"}, "invalid_fields"),
    ({"events": [{"x": 1}], "notify_url": "https://receiver.example.com/hook"}, "invalid_fields"),
    ({"events": ["Deals.create"], "notify_url": "https://receiver.example.com/hook", "expiry_time": "never"},
     "invalid_fields"),
    ({"events": ["Deals.create"], "notify_url": ["https://receiver.example.com/hook"]}, "invalid_fields"),
    ({"events": ["Deals.create"], "notify_url": "https://receiver.example.com/hook",
      "expiry_time": "9999-12-31T23:59:59-23:59"}, "invalid_fields"),
    ({"events": ["Deals.create"], "notify_url": "https://receiver.example.com/hook",
      "expiry_time": "0001-01-01T00:00:00+23:59"}, "invalid_fields"),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("body", "code"), CHANNEL_CALLS)
def test_a_hostile_channel_is_refused_and_nothing_is_created(client, key, body, code):
    before = state()
    response = client.post("/api/v1/channels/", data=json.dumps(body), content_type="application/json",
                           headers={"X-API-Key": key})
    assert (response.status_code, response.json()["error"]["code"]) == (400, code), response.json()
    assert state() == before


# Date/times in parameters: beyond Python's range once converted to UTC (year 10000, year 0), or not a date
OUT_OF_RANGE = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2026-02-30T09:00:00Z",
                "2026-12-01T09:00:00+24:00", "2026-12-01T09:00:00\x00", "yesterday"]


@pytest.fixture
def deliveries_key(owner):
    return services.api_key_create(user=owner, name="Recoverer",
                                   scopes=[ApiScope.DELIVERIES_READ, ApiScope.DELIVERIES_REPLAY])[1]


@pytest.mark.django_db
@pytest.mark.parametrize("moment", OUT_OF_RANGE)
@pytest.mark.parametrize(("method", "path", "parameter"), [
    ("GET", "records/Deals/?{query}", "modified_since"),
    ("GET", "deliveries/?{query}", "created_after"),
    ("GET", "deliveries/?{query}", "created_before"),
    ("POST", "deliveries/recover/", "since"),
    ("POST", "deliveries/recover/", "until"),
])
def test_a_date_time_parameter_out_of_range_is_a_400_naming_it(client, key, deliveries_key, deal, rule, method, path,
                                                                parameter, moment):
    before = state()
    if method == "GET":
        response = client.get(f"/api/v1/{path.format(query=urlencode({parameter: moment}))}",
                              headers={"X-API-Key": key if path.startswith("records") else deliveries_key})
    else:
        body = {"webhook": Action.objects.get().webhook_id, "since": "2026-12-01T09:00:00Z", parameter: moment}
        response = client.post(f"/api/v1/{path}", data=json.dumps(body), content_type="application/json",
                               headers={"X-API-Key": deliveries_key})
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert (response.status_code, problem["code"], list(problem["fields"])) == (400, "invalid_fields", [parameter])
    assert problem["detail"] == f"Some values are not valid: {parameter}."
    assert state() == before


@pytest.mark.django_db
def test_the_first_and_last_moments_python_holds_are_taken(client, key, deal):
    """The edges themselves are valid: everything since year 1, nothing since the end of year 9999; a time
    without an offset is UTC."""
    def names(since: str) -> list[str]:
        response = client.get(f"/api/v1/records/Deals/?{urlencode({'modified_since': since})}",
                              headers={"X-API-Key": key})
        assert response.status_code == 200, response.json()
        return [record["values"]["Deal_Name"] for record in response.json()["data"]]

    assert names("0001-01-01T00:00:00Z") == ["Kept"]
    assert names("2000-01-01T00:00:00+20:00") == ["Kept"]  # an offset PostgreSQL itself would refuse
    assert names("9999-12-31T23:59:59Z") == []
    assert names(deal.modified_at.astimezone(datetime.UTC).replace(tzinfo=None).isoformat()) == ["Kept"]


@pytest.mark.django_db
def test_a_channel_expiry_with_an_offset_postgresql_refuses_is_stored_in_utc(client, key):
    """Python takes offsets up to ±23:59, PostgreSQL up to ±15:59: the expiry is stored in UTC (it was a 500)."""
    expiry = (datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=20))) + datetime.timedelta(days=2))
    response = client.post("/api/v1/channels/", data=json.dumps({
        "events": ["Deals.create"], "notify_url": "https://receiver.example.com/hook",
        "expiry_time": expiry.replace(microsecond=0).isoformat()}), content_type="application/json",
        headers={"X-API-Key": key})
    assert response.status_code == 201, response.json()
    stored = datetime.datetime.fromisoformat(response.json()["data"]["expiry_time"])
    assert stored == expiry.replace(microsecond=0) and stored.utcoffset() == datetime.timedelta(0)
