"""Failure isolation: one delivery whose answer cannot be stored, or whose request cannot be signed, fails
or is cleaned alone. The others of the same batch end Success exactly once, are charged once and tell
nobody anything. Real sockets throughout; the poisons are what PostgreSQL refuses (CI runs on it)."""
import json

import pytest
from django.core import mail
from django.db import connection

from crm import services as crm_services
from crm.models import Field
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import outcomes
from dispatcher.models import Attempt, Capture, DailyUsage, Delivery, DeliveryStatus, EngineCounter, Webhook
from tests.factories import webhook_create
from tests.faults.hostile import HostileReceiver, answer

HEALTHY = 5


@pytest.fixture
def deal(owner, modules):
    owner.is_admin = True
    owner.save()
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Poison"})


@pytest.fixture
def hostile():
    started: list[HostileReceiver] = []

    def start(behaviour) -> HostileReceiver:
        started.append(HostileReceiver(behaviour))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def hook_to(modules, name: str, url: str) -> Webhook:
    return webhook_create(module=modules["Deals"], name=name, url=url, entity=[("deal", "${Deals.Deal Name}")])


def nul_in_header():
    return answer("200 OK", b"ok", headers="X-Poison: a\x00b\r\n")


def six_megabytes_of_headers():
    return answer("200 OK", b"ok", headers="".join(f"X-Big-{i}: {'h' * 64_000}\r\n" for i in range(95)))


def capture_hook(modules, url: str) -> Webhook:
    field = Field.objects.create(module=modules["Deals"], label="Invoice Ref", api_name="Invoice_Ref")
    hook = hook_to(modules, "Capturing", url)
    hook.capture_response, hook.capture_type = True, "JSONPATH"
    hook.save()
    Capture.objects.create(webhook=hook, when="success", expression="$.ref", field=field)
    Capture.objects.create(webhook=hook, when="success", expression="$.other", field=Field.objects.create(
        module=modules["Deals"], label="Other Ref", api_name="Other_Ref"))
    return hook


def run_one_batch(hooks: list[Webhook], deal) -> dict[str, Delivery]:
    """Every delivery of the test claimed together and attempted as one batch."""
    made = {hook.name: delivery_engine.delivery_enqueue(webhook=hook, record=deal) for hook in hooks}
    claimed = delivery_engine.deliveries_claim(now=Delivery.objects.latest("pk").due_at, limit=100)
    assert len(claimed) == len(made)
    delivery_engine.deliveries_attempt(claimed=claimed)
    return {name: Delivery.objects.get(pk=d.pk) for name, d in made.items()}


def assert_healthy_unharmed(by_name: dict[str, Delivery], receiver) -> None:
    healthy = [d for name, d in by_name.items() if name.startswith("Healthy")]
    assert [d.status for d in healthy] == [DeliveryStatus.SUCCESS] * HEALTHY
    assert [d.attempts.count() for d in healthy] == [1] * HEALTHY  # sent once, stored once
    seen = [request.headers["webhook-id"] for request, _ in receiver.log]
    assert sorted(seen) == sorted(d.message_id for d in healthy)
    failure_mails = [m for m in mail.outbox if "Healthy" in m.subject]
    assert failure_mails == []


@pytest.fixture
def healthy(receiver, modules):
    receiver.expect_request("/hook").respond_with_data("ok")
    return [hook_to(modules, f"Healthy {i}", receiver.url_for("/hook")) for i in range(HEALTHY)]


def test_a_nul_byte_in_a_response_header_fails_its_attempt_alone(healthy, receiver, hostile, modules, deal):
    """The engine's HTTP parser refuses the header: a protocol error, retried later, for this delivery only."""
    poison = hook_to(modules, "NUL header", hostile(nul_in_header()).url())
    by_name = run_one_batch([*healthy[:2], poison, *healthy[2:]], deal)
    assert_healthy_unharmed(by_name, receiver)
    poisoned = by_name["NUL header"]
    assert (poisoned.status, poisoned.last_error_class) == (DeliveryStatus.RETRY, "protocol_error")
    assert DailyUsage.objects.get().calls == HEALTHY + 1  # each charged once


def test_a_nul_byte_and_a_lone_surrogate_in_the_body_are_cleaned_in_the_log(healthy, receiver, hostile, modules,
                                                                            deal):
    poison = hook_to(modules, "NUL body", hostile(answer("200 OK", b"a\x00b \xed\xa0\x80")).url())
    by_name = run_one_batch([*healthy, poison], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["NUL body"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    assert attempt.response_body.startswith("a\ufffdb ") and "NUL" in attempt.cleaned


def test_the_cleaning_is_recorded_for_headers_too(settings):
    from dispatcher.cleaning import clean_headers

    kept, notes = clean_headers({"X-Poison": "a\x00b", "X-Lone": "\ud800", **{f"X-{i}": "h" * 64_000 for i in range(3)}})
    assert (kept["X-Poison"], kept["X-Lone"]) == ("a\ufffdb", "\ufffd")
    assert sum(len(k) + len(v) for k, v in kept.items()) <= settings.WEBHOOK_MAX_STORED_HEADER_BYTES
    assert notes == ["NUL bytes or invalid text in response headers replaced", "response headers cut at 64 KB (4 of 5 kept)"]


def test_six_megabytes_of_headers_are_cut_to_the_cap_and_the_cut_recorded(healthy, receiver, hostile, modules,
                                                                          deal, settings):
    poison = hook_to(modules, "Huge headers", hostile(six_megabytes_of_headers()).url())
    by_name = run_one_batch([poison, *healthy], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["Huge headers"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    assert len(json.dumps(attempt.response_headers)) <= settings.WEBHOOK_MAX_STORED_HEADER_BYTES + 2048
    assert "cut at 64 KB" in attempt.cleaned


def test_a_captured_nul_and_lone_surrogate_are_cleaned_in_the_record_and_the_log(healthy, receiver, hostile,
                                                                                  modules, deal):
    body = b'{"ref": "INV\\u00001", "other": "x\\ud800y"}'
    poison = capture_hook(modules, hostile(answer("200 OK", body, "Content-Type: application/json\r\n")).url())
    by_name = run_one_batch([*healthy, poison], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["Capturing"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    assert attempt.captured["Invoice Ref"]["written"] == "INV\ufffd1"
    assert attempt.captured["Other Ref"]["written"] == "x\ufffdy"
    assert "cleaned" in attempt.captured["Invoice Ref"]
    deal.refresh_from_db()
    assert (deal.values["Invoice_Ref"], deal.values["Other_Ref"]) == ("INV\ufffd1", "x\ufffdy")


def test_a_malformed_signing_secret_fails_its_delivery_alone_uncharged(healthy, receiver, modules, deal):
    broken = hook_to(modules, "Bad secret", receiver.url_for("/hook"))
    broken.signing_secret = "whsec_!!not-base64"  # as an old import_config could store it
    broken.save(update_fields=["signing_secret"])
    by_name = run_one_batch([broken, *healthy], deal)
    assert_healthy_unharmed(by_name, receiver)
    failed = by_name["Bad secret"]
    assert (failed.status, failed.last_error_class) == (DeliveryStatus.FAILED, "internal_error")
    assert "signing secret is not valid" in failed.status_reason
    assert DailyUsage.objects.get().calls == HEALTHY  # nothing was sent for it, nothing charged
    assert [m.subject for m in mail.outbox] == ["Webhook “Bad secret” failed for Deals #%s" % deal.pk]
    assert EngineCounter.objects.get(decision="sign_failed").count == 1


def test_when_a_batch_write_fails_the_rows_are_written_one_by_one(healthy, receiver, hostile, modules, deal,
                                                                  monkeypatch):
    """With the cleaning switched off, PostgreSQL refuses the batch: the fallback stores each outcome on its
    own and the poisoned one without the receiver's answer."""
    monkeypatch.setattr(outcomes, "outcome_clean", lambda outcome: None)
    poison = hook_to(modules, "NUL body", hostile(answer("200 OK", b"a\x00b")).url())
    by_name = run_one_batch([*healthy, poison], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["NUL body"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    if connection.vendor == "postgresql":
        assert attempt.response_body == "" and "could not be stored" in attempt.cleaned
        assert EngineCounter.objects.get(decision="write_fallback").count == 1
    assert Attempt.objects.count() == HEALTHY + 1
