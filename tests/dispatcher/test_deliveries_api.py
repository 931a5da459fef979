"""The deliveries API as an integrator uses it: page through the log, read one delivery as auditors see it,
resend, recover after an outage (sent again with the same webhook-id), usage per day; scoped keys refused
with 403 and a problem document; Idempotency-Key retries that fire nothing."""
import datetime
import json
import uuid

import pytest
from django.utils import timezone

from crm import services as crm_services
from crm.models import ApiScope, Record
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, DeliveryStatus, RetryPolicy
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create
from workflows.models import Action, WorkflowRule
from workflows.services import rule_save


def key_with(owner, *scopes: str) -> str:
    return crm_services.api_key_create(user=owner, name="Integration", scopes=list(scopes))[1]


@pytest.fixture
def call(client):
    def request(method: str, path: str, key: str, body=None, **headers):
        response = client.generic(method, f"/api/v1/{path}", data=json.dumps(body) if body is not None else "",
                                  content_type="application/json", headers={"X-API-Key": key, **headers})
        return response.status_code, response.json(), response

    return request


@pytest.fixture
def hook(receiver, modules):
    no_retries = RetryPolicy.objects.create(name="No retries", code="none", delays=[])
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", "tok-secret-5")],
                          retry_policy=no_retries)


def run_due() -> list[Delivery]:
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=500)
    return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def test_paging_through_1000_deliveries_gives_each_once(call, owner, modules, hook):
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Many"})
    Delivery.objects.bulk_create_historical([Delivery(
        organization=owner.organization, webhook=hook, webhook_name=hook.name, record=deal, record_ref="Deals #1",
        retry_policy=hook.retry_policy, status=DeliveryStatus.FAILED if n % 3 else DeliveryStatus.SUCCESS,
        finished_at=timezone.now()) for n in range(1000)])
    key = key_with(owner, ApiScope.DELIVERIES_READ)
    seen, cursor, pages = [], None, 0
    while True:
        status, body, _ = call("GET", "deliveries/?limit=200" + (f"&cursor={cursor}" if cursor else ""), key)
        assert status == 200
        seen += [d["id"] for d in body["data"]]
        pages += 1
        if not (cursor := body["next_cursor"]):
            break
    assert pages == 5 and len(seen) == len(set(seen)) == 1000
    status, body, _ = call("GET", f"deliveries/?status=failed&webhook={hook.pk}&limit=200", key)
    assert status == 200 and len(body["data"]) == 200 and {d["status"] for d in body["data"]} == {"failed"}
    status, body, _ = call("GET", "deliveries/?cursor=bm9wZQ", key)
    assert (status, body["code"]) == (400, "invalid_cursor")


def test_one_delivery_with_its_attempts_is_masked_as_auditors_see_it(call, receiver, owner, modules, hook):
    receiver.expect_request("/hook").respond_with_data("echo tok-secret-5", status=500)
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    run_due()
    auditor = key_with(owner, ApiScope.DELIVERIES_READ)
    status, body, _ = call("GET", f"deliveries/{delivery.message_id}/", auditor)
    assert status == 200
    data = body["data"]
    assert (data["id"], data["status"], data["last_status_code"]) == (delivery.message_id, "failed", 500)
    assert "tok-secret-5" not in json.dumps(data) and "********" in data["request"]
    [attempt] = data["attempts"]
    assert attempt["status_code"] == 500 and attempt["response_body"] == "echo ********"
    assert call("GET", f"deliveries/{delivery.public_id}/", auditor)[0] == 200  # the bare UUID works too
    # An auditor's key reads deliveries and cannot replay: 403 with a problem document naming the scope.
    status, problem, response = call("POST", f"deliveries/{delivery.message_id}/resend/", auditor)
    assert status == 403 and response["Content-Type"] == "application/problem+json"
    assert (problem["code"], problem["required_scope"], problem["title"]) == ("missing_scope", "deliveries:replay",
                                                                               "Forbidden")
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.FAILED
    # Nor can it touch records or channels.
    assert call("GET", "records/Deals/", auditor)[1]["required_scope"] == "records:read"
    assert call("GET", "channels/", auditor)[1]["required_scope"] == "channels"


def test_resend_one_and_another_organizations_delivery_is_not_found(call, receiver, owner, modules, hook):
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    run_due()
    replay = key_with(owner, ApiScope.DELIVERIES_READ, ApiScope.DELIVERIES_REPLAY)
    status, body, _ = call("POST", f"deliveries/{delivery.message_id}/resend/", replay)
    assert status == 200 and body["data"]["status"] == "queued" and body["data"]["resent_by"] == "API key Integration"
    status, body, _ = call("POST", f"deliveries/{delivery.message_id}/resend/", replay)
    assert (status, body["code"]) == (409, "not_resendable")
    stranger = CrmUserFactory(organization=OrganizationFactory())
    other = key_with(stranger, ApiScope.DELIVERIES_READ, ApiScope.DELIVERIES_REPLAY)
    assert call("GET", f"deliveries/{delivery.message_id}/", other)[1]["code"] == "not_found"
    assert call("POST", f"deliveries/{delivery.message_id}/resend/", other)[0] == 404
    assert call("GET", "deliveries/", other)[1]["data"] == []


def test_recover_after_an_outage_sends_every_failed_delivery_again_with_its_webhook_id(call, receiver, owner,
                                                                                       modules, hook):
    """Tried as a new integrator: list the failed deliveries of a webhook, fix the receiver, recover, see them
    succeed."""
    receiver.expect_request("/hook").respond_with_data("outage", status=503)
    deals = [crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": f"D{n}"})
             for n in range(3)]
    for deal in deals:
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    run_due()
    key = key_with(owner, ApiScope.DELIVERIES_READ, ApiScope.DELIVERIES_REPLAY)
    _, listed, _ = call("GET", f"deliveries/?webhook={hook.pk}&status=failed", key)
    failed_ids = sorted(d["id"] for d in listed["data"])
    assert len(failed_ids) == 3
    receiver.clear()
    receiver.expect_request("/hook").respond_with_data("ok")  # the receiver is fixed
    since = (timezone.now() - datetime.timedelta(hours=1)).isoformat()
    status, body, _ = call("POST", "deliveries/recover/", key, {"webhook": hook.pk, "since": since})
    assert status == 200 and body["data"]["queued"] == 3 and sorted(body["data"]["ids"]) == failed_ids
    run_due()
    assert sorted(request.headers["webhook-id"] for request, _ in receiver.log) == failed_ids
    _, after, _ = call("GET", f"deliveries/?webhook={hook.pk}&status=success", key)
    assert sorted(d["id"] for d in after["data"]) == failed_ids
    status, body, _ = call("POST", "deliveries/recover/", key, {"since": since})
    assert (status, body["code"]) == (400, "invalid_fields")
    status, body, _ = call("POST", "deliveries/recover/", key, {"webhook": hook.pk, "since": "yesterday"})
    assert (status, body["code"]) == (400, "invalid_fields") and "since" in body["fields"]


def test_usage_per_day_is_what_the_chart_shows(call, receiver, owner, modules, hook):
    receiver.expect_request("/hook").respond_with_data("ok")
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    run_due()
    status, body, _ = call("GET", "usage/", key_with(owner, ApiScope.DELIVERIES_READ))
    assert status == 200
    usage = body["data"]
    assert len(usage["labels"]) == 7 and usage["totals"][-1] == 1 and usage["by_outcome"] == {
        "Success": [0, 0, 0, 0, 0, 0, 1]}


@pytest.fixture
def rule(modules, hook):
    rule = WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"], name="Any change",
                        trigger="create_or_edit", match_all_records=True)
    return rule_save(rule=rule, conditions=[], actions=[Action(webhook=hook, kind="instant")]).rule


def test_a_retried_post_with_the_same_idempotency_key_answers_again_and_fires_nothing(call, owner, rule):
    key = key_with(owner, ApiScope.RECORDS_WRITE)
    idempotency = {"Idempotency-Key": str(uuid.uuid4())}
    first = call("POST", "records/Deals/", key, {"Deal_Name": "Order 17"}, **idempotency)
    again = call("POST", "records/Deals/", key, {"Deal_Name": "Order 17"}, **idempotency)
    assert first[0] == again[0] == 201 and first[1] == again[1]
    assert again[2]["Idempotent-Replayed"] == "true"
    assert Record.objects.filter(values__Deal_Name="Order 17").count() == 1
    assert Delivery.objects.count() == 1  # the rule fired once
    status, problem, _ = call("POST", "records/Deals/", key, {"Deal_Name": "Order 18"}, **idempotency)
    assert (status, problem["code"]) == (422, "idempotency_key_reused")
    assert not Record.objects.filter(values__Deal_Name="Order 18").exists()
    # Without the header, each POST is its own; a refusal is answered again as it was.
    assert call("POST", "records/Deals/", key, {"Deal_Name": "Order 17"})[0] == 201
    bad = {"Idempotency-Key": "bad-1"}
    assert call("POST", "records/Deals/", key, {"Amount": "lots"}, **bad)[1]["code"] == "invalid_fields"
    replayed = call("POST", "records/Deals/", key, {"Amount": "lots"}, **bad)
    assert replayed[1]["code"] == "invalid_fields" and replayed[2]["Idempotent-Replayed"] == "true"
    status, problem, _ = call("POST", "records/Deals/", key, {"Deal_Name": "x"}, **{"Idempotency-Key": "é" * 3})
    assert (status, problem["code"]) == (400, "invalid_idempotency_key")


def test_records_are_listed_with_a_cursor_and_filters(call, owner, modules):
    for n in range(7):
        crm_services.record_create(module=modules["Deals"], owner=owner,
                                   values={"Deal_Name": f"Deal {n}", "Stage": "Closed Won" if n % 2 else "Qualification"})
    key = key_with(owner, ApiScope.RECORDS_READ)
    status, body, _ = call("GET", "records/Deals/?limit=3", key)
    assert status == 200 and [r["values"]["Deal_Name"] for r in body["data"]] == ["Deal 6", "Deal 5", "Deal 4"]
    status, second, _ = call("GET", f"records/Deals/?limit=3&cursor={body['next_cursor']}", key)
    assert [r["values"]["Deal_Name"] for r in second["data"]] == ["Deal 3", "Deal 2", "Deal 1"]
    status, won, _ = call("GET", "records/Deals/?equals=Stage:Closed%20Won", key)
    assert [r["values"]["Deal_Name"] for r in won["data"]] == ["Deal 5", "Deal 3", "Deal 1"]
    later = (timezone.now() + datetime.timedelta(minutes=1)).isoformat().replace("+", "%2B")
    assert call("GET", f"records/Deals/?modified_since={later}", key)[1]["data"] == []
    status, problem, _ = call("GET", "records/Deals/?equals=Colour:red", key)
    assert (status, problem["code"]) == (400, "invalid_fields")
    assert call("GET", "records/Deals/?limit=0", key)[1]["fields"] == {"limit": ["Give a number from 1 to 200."]}
    assert call("POST", "records/Deals/", key, {"Deal_Name": "x"})[1]["required_scope"] == "records:write"


def test_existing_keys_keep_what_they_could_do(owner):
    _, raw = crm_services.api_key_create(user=owner, name="Old")
    from crm.models import ApiKey
    assert ApiKey.objects.get(prefix=raw[:12]).scopes == ["records:read", "records:write", "channels"]


def test_a_claim_left_by_a_request_that_died_is_taken_over_after_a_while(call, owner, rule):
    from crm.models import IdempotentRequest

    key = key_with(owner, ApiScope.RECORDS_WRITE)
    first = call("POST", "records/Deals/", key, {"Deal_Name": "Order 19"}, **{"Idempotency-Key": "k-19"})
    assert first[0] == 201
    claim = IdempotentRequest.objects.get(idempotency_key="k-19")
    # As if its web process had been killed before doing the work: claimed, nothing made, no answer stored.
    Record.objects.filter(values__Deal_Name="Order 19").delete()
    IdempotentRequest.objects.filter(pk=claim.pk).update(status=None, response=None)
    status, problem, _ = call("POST", "records/Deals/", key, {"Deal_Name": "Order 19"}, **{"Idempotency-Key": "k-19"})
    assert (status, problem["code"]) == (409, "idempotency_request_in_progress")
    IdempotentRequest.objects.filter(pk=claim.pk).update(created_at=timezone.now() - datetime.timedelta(minutes=6))
    status, body, _ = call("POST", "records/Deals/", key, {"Deal_Name": "Order 19"}, **{"Idempotency-Key": "k-19"})
    assert status == 201 and Record.objects.filter(values__Deal_Name="Order 19").count() == 1
    again = call("POST", "records/Deals/", key, {"Deal_Name": "Order 19"}, **{"Idempotency-Key": "k-19"})
    assert again[1] == body and Record.objects.filter(values__Deal_Name="Order 19").count() == 1
