"""Operations: /healthz, the protected Prometheus /metrics after a run, and JSON attempt log lines."""
import json
import logging

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import AuthType, DeliveryStatus
from tests.factories import webhook_create
from tests.logformats import configured_formatter


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})


@pytest.fixture
def hook(receiver, modules):
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", "tok-metrics-secret")],
                          auth_type=AuthType.BASIC, auth_username="books", auth_password="pw-metrics-secret")


def run_due() -> list:
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=100)
    return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_healthz_reports_the_database_and_the_broker(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"]["database"] == "ok" and body["status"] in ("ok", "degraded")
    assert set(body["checks"]) == {"database", "broker"}


def test_metrics_needs_the_token_or_a_staff_user_who_may_read_the_log(client, settings, db):
    settings.METRICS_TOKEN = "scrape-me"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200
    plain = User.objects.create_user("plain", password="x", is_staff=True)
    client.force_login(plain)
    assert client.get("/metrics").status_code == 401
    auditor = User.objects.create_user("auditor", password="x", is_staff=True)
    auditor.groups.add(Group.objects.get(name="Auditor"))
    client.force_login(auditor)
    assert client.get("/metrics").status_code == 200


def test_metrics_after_a_run(client, settings, receiver, hook, deal, organization):
    settings.METRICS_TOKEN = "scrape-me"
    receiver.expect_oneshot_request("/hook").respond_with_data("OK")
    receiver.expect_oneshot_request("/hook").respond_with_data("OK")
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    for _ in range(3):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    run_due()
    waiting = delivery_engine.delivery_enqueue(webhook=hook, record=deal)  # due now, not claimed yet
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    found = samples(text)
    assert found[("webhook_attempts_total", (("outcome", "success"), ("source", "workflow")))] == 2
    assert found[("webhook_attempts_total", (("outcome", "retry"), ("source", "workflow")))] == 1
    assert found[("webhook_attempt_duration_seconds_count", ())] == 3
    assert found[("webhook_attempt_duration_seconds_bucket", (("le", "+Inf"),))] == 3
    assert found[("webhook_attempt_duration_seconds_sum", ())] >= 0
    assert found[("webhook_deliveries_pending", (("status", "retry"),))] == 1
    assert found[("webhook_deliveries_pending", (("status", "queued"),))] == 1
    assert found[("webhook_queue_depth", ())] == 1
    assert found[("webhook_oldest_due_age_seconds", ())] >= 0
    assert found[("webhook_quota_used", (("organization", organization.name),))] == 3
    assert found[("webhook_quota_limit", (("organization", organization.name),))] > 3
    assert "tok-metrics-secret" not in text and "pw-metrics-secret" not in text
    assert waiting.status == DeliveryStatus.QUEUED


def test_each_attempt_is_one_json_log_line_without_secrets(caplog, receiver, hook, deal):
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    with caplog.at_level(logging.INFO, logger="dispatcher.attempts"):
        run_due()
    [record] = [r for r in caplog.records if r.name == "dispatcher.attempts"]
    line = configured_formatter("json").format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "delivery.attempt" and entry["level"] == "INFO"
    assert entry["delivery_id"] == delivery.message_id and entry["webhook_id"] == hook.pk
    assert entry["organization_id"] == hook.organization_id and entry["outcome"] == "retry"
    assert entry["status_code"] == 503 and entry["error_class"] == "http_503" and entry["duration_ms"] >= 0
    assert "tok-metrics-secret" not in line and "pw-metrics-secret" not in line and "/hook" not in line


def test_healthz_is_503_when_the_database_does_not_answer(client, monkeypatch):
    from django.db import OperationalError

    from dispatcher.ops import healthz as ops

    def down():
        raise OperationalError("connection refused")

    monkeypatch.setattr(ops, "_database", down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "failing" and response.json()["checks"]["database"] == "error: OperationalError"


def test_metrics_count_the_engines_decisions_and_the_requests_in_flight(client, settings, receiver, hook, deal,
                                                                      modules):
    """A delivery that cannot be signed and one held at a disabled destination show in /metrics by decision."""
    from dispatcher.models import Endpoint

    settings.METRICS_TOKEN = "scrape-me"
    receiver.expect_request("/hook").respond_with_data("OK")
    broken = webhook_create(module=modules["Deals"], name="Broken secret", url=receiver.url_for("/hook"))
    broken.signing_secret = "whsec_!!not-base64"
    broken.save(update_fields=["signing_secret"])
    held = webhook_create(module=modules["Deals"], name="Held", url="https://held.example.com/hook")
    Endpoint.objects.create(organization=held.organization, destination="https://held.example.com/hook",
                            disabled_at=timezone.now(), disabled_reason="Tests.")
    for webhook in (hook, broken, held):
        delivery_engine.delivery_enqueue(webhook=webhook, record=deal)
    delivery_engine.deliveries_drain(batch=10, budget_seconds=0)
    found = samples(client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).content.decode())
    decisions = {dict(labels)["decision"]: value for (name, labels), value in found.items()
                 if name == "webhook_engine_decisions_total"}
    assert decisions == {"sign_failed": 1, "held": 1}
    [in_flight] = [value for (name, _), value in found.items() if name == "webhook_requests_in_flight"]
    assert in_flight == 0  # the drain is over: nothing left in flight
