"""The delivery engine as services: claim, attempt, retry schedule, quota, leases, notifications.

The clock is controlled by the ``now`` given to deliveries_claim: a retry due in 15 minutes is claimed
by claiming "15 minutes later", without waiting.
"""
import datetime
import json
import uuid

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.test import TestCase
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from crm import services as crm_services
from crm.models import CrmUser, Edition
from dispatcher import delivery as delivery_engine
from dispatcher.ops import notifications
from dispatcher.models import Attempt, Delivery, DeliveryStatus, FailureEmails, RetryPolicy
from dispatcher.rendering.request import webhook_render_unsigned
from tests.factories import webhook_create

MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture
def deal(owner, modules):
    CrmUser.objects.create(organization=owner.organization, first_name="Ada", last_name="Admin",
                           email="admin@zylker.example", is_admin=True)
    CrmUser.objects.create(organization=owner.organization, last_name="Gone", email="gone@zylker.example",
                           is_admin=True, is_active=False)
    return crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Website <redesign>", "Amount": "12500"})


@pytest.fixture
def hook(receiver, modules):
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}"), ("amount", "${Deals.Amount}")],
                          custom=[("authtoken", "tok-secret-1")])


def run_due(now: datetime.datetime | None = None) -> list[Delivery]:
    """One worker pass at the given moment: claim what is due and attempt it. A worker runs outside any
    transaction, so what it queues on commit (the e-mails) goes at once: here at the end of the pass."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        claimed = delivery_engine.deliveries_claim(now=now or timezone.now(), limit=100)
        return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def test_a_delivery_is_sent_signed_and_logged(receiver, hook, deal):
    receiver.expect_oneshot_request("/hook", method="POST").respond_with_json({"ok": True})
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal, trigger="Deals created")
    assert (delivery.status, delivery.attempt_count) == (DeliveryStatus.QUEUED, 0)
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.SUCCESS and delivery.finished_at is not None
    [(request, _)] = receiver.log
    assert request.headers["webhook-id"] == delivery.message_id == f"msg_{delivery.public_id.hex}"
    payload = StandardWebhook(hook.signing_secret).verify(request.get_data(), dict(request.headers))
    assert payload == {"deal": "Website <redesign>", "amount": "12500.00", "authtoken": "tok-secret-1"}
    assert request.get_data() == webhook_render_unsigned(webhook=hook, record=deal).body
    [attempt] = delivery.attempts.all()
    assert (attempt.number, attempt.status_code, attempt.outcome) == (1, 200, DeliveryStatus.SUCCESS)
    assert json.loads(attempt.response_body) == {"ok": True}
    stored = Delivery.objects.get(pk=delivery.pk)
    assert '"authtoken": "********"' in stored.request_display and "tok-secret-1" not in stored.request_display
    assert run_due(timezone.now() + datetime.timedelta(days=2)) == []  # nothing is sent twice


def test_zoho_profile_retries_once_after_15_minutes_then_fails_and_emails_nobody(receiver, hook, deal):
    """Seed 003: Zoho sends no e-mail when a webhook stops because of a problem at the third party."""
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.RETRY
    # 15 minutes, moved by up to ±10 % (WEBHOOK_RETRY_JITTER)
    assert 13 * MINUTE < delivery.due_at - timezone.now() <= 16.5 * MINUTE
    assert delivery.status_reason.endswith(f"; retry 1 of 1 at {delivery.due_at:%Y-%m-%d %H:%M:%S} UTC.")
    assert run_due(timezone.now() + 13 * MINUTE) == []
    [delivery] = run_due(delivery.due_at + datetime.timedelta(seconds=1))
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.status_reason == "Server error: something went wrong in the third-party app; no retry left " \
                                     "(Zoho: one retry after 15 minutes: 1 retry)."
    assert [(a.number, a.status_code, a.error_class, a.outcome) for a in delivery.attempts.all()] == [
        (1, 503, "http_503", "retry"), (2, 503, "http_503", "failed")]
    ids = {request.headers["webhook-id"] for request, _ in receiver.log}
    assert ids == {delivery.message_id} and len(receiver.log) == 2
    assert mail.outbox == []


def test_a_policy_on_each_emails_the_owner_and_admins_per_failed_delivery(receiver, hook, deal):
    hook.retry_policy = RetryPolicy.objects.create(code="mail-each", name="Mail each", delays=[],
                                                   failure_emails=FailureEmails.EACH)
    hook.save()
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.FAILED
    [message] = mail.outbox
    assert message.subject == f"Webhook “Books” failed for Deals #{deal.pk}"
    assert sorted(message.to) == ["admin@zylker.example", "ted@zylker.example"]
    assert "Server error: something went wrong in the third-party app; no retry left" in message.body
    assert "tok-secret-1" not in message.body and f"/admin/dispatcher/delivery/{delivery.pk}/" in message.body


def test_the_vtiger_digest_sends_one_email_per_webhook_and_hour_listing_its_failures(receiver, hook, deal, settings):
    settings.SITE_URL = "http://crm.example:8123"
    hook.retry_policy = RetryPolicy.objects.get(code="vtiger")
    hook.save()
    receiver.expect_request("/hook").respond_with_data("nope", status=404)
    made = [delivery_engine.delivery_enqueue(webhook=hook, record=deal) for _ in range(4)]
    assert len(run_due()) == 4 and mail.outbox == []  # final failures, nothing sent yet
    finished = Delivery.objects.get(pk=made[0].pk).finished_at
    assert notifications.failure_digests_send(now=finished) == 0  # the hour has not ended
    next_hour = finished.replace(minute=0, second=0, microsecond=0) + datetime.timedelta(hours=1, minutes=1)
    assert notifications.failure_digests_send(now=next_hour) == 1
    assert notifications.failure_digests_send(now=next_hour) == 0  # once per hour, whoever runs it
    [message] = mail.outbox
    assert message.subject == "Webhook “Books”: 4 failed deliveries"
    assert sorted(message.to) == ["admin@zylker.example", "ted@zylker.example"]
    assert message.body.count(f"Deals #{deal.pk}: 404 Not found: the requested item does not exist; "
                              "not retried: 404.") == 4
    assert f"http://crm.example:8123/admin/dispatcher/delivery/{made[0].pk}/" in message.body


def test_vtiger_profile_retries_after_1_2_and_4_hours(receiver, hook, deal):
    hook.retry_policy = RetryPolicy.objects.get(code="vtiger")
    hook.save()
    receiver.expect_request("/hook").respond_with_data("", status=500)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    gaps = []
    [delivery] = run_due()
    while delivery.status == DeliveryStatus.RETRY:
        gaps.append(round((delivery.due_at - timezone.now()).total_seconds() / 3600))
        [delivery] = run_due(delivery.due_at + datetime.timedelta(seconds=1))
    assert gaps == [1, 2, 4]
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts.count() == 4
    assert delivery.status_reason == "Server error: something went wrong in the third-party app; no retry left " \
                                     "(Vtiger: retries after 1 h, 2 h and 4 h: 3 retries)."
    retried = delivery.attempts.get(number=1)
    assert str(retried) == f"Attempt 1 (delivery #{delivery.pk})"


@pytest.mark.parametrize(("status", "error_class", "meaning"), [
    (400, "http_400", "400 Bad request: often a required parameter is missing."),
    (401, "http_401", "401 Unauthorized: no valid authentication token was given."),
    (404, "http_404", "404 Not found: the requested item does not exist."),
    (301, "redirect", "The receiver answered with a redirect, which is not followed; update the URL."),
])
def test_other_4xx_and_redirects_are_final_at_once(receiver, hook, deal, status, error_class, meaning):
    receiver.expect_request("/hook").respond_with_data("", status=status, headers={"Location": "http://10.0.0.1/"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.FAILED, error_class)
    assert delivery.status_reason == meaning.rstrip(".") + f"; not retried: {status}."
    assert len(receiver.log) == 1


def test_429_waits_as_long_as_retry_after_asks(receiver, hook, deal):
    receiver.expect_request("/hook").respond_with_data("", status=429, headers={"Retry-After": "3600"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    assert delivery.status == DeliveryStatus.RETRY
    assert 59 * MINUTE < delivery.due_at - timezone.now() <= 60 * MINUTE


def test_a_connection_failure_is_error_code_1_and_retried(settings, modules, deal):
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, True
    hook = webhook_create(module=modules["Deals"], url="http://127.0.0.1:9/hook")
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.RETRY, "connection_error")
    assert delivery.status_reason.startswith("Error code 1: cannot connect to the API server for now.")


def test_a_refused_url_fails_without_retry_or_connection(receiver, hook, deal, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.FAILED, "url_refused")
    assert delivery.status_reason.startswith("URL refused: vulnerable to SSRF or invalid.")
    assert receiver.log == []


def test_the_daily_limit_stops_the_rest_and_tells_admins_once(receiver, hook, deal, organization):
    edition = Edition.objects.create(code="tiny", name="Tiny Edition", daily_call_limit=2, calls_per_licence=100)
    organization.edition = edition
    organization.save()
    receiver.expect_request("/hook").respond_with_data("ok")
    for _ in range(4):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    outcomes = [d.status for d in run_due()]
    assert outcomes == ["success", "success", "limit_reached", "limit_reached"]
    assert len(receiver.log) == 2
    limited = Delivery.objects.filter(status=DeliveryStatus.LIMIT_REACHED).first()
    assert limited.status_reason == "Daily limit of 2 calls reached."
    assert limited.attempts.get().error_class == "limit_reached"
    [message] = mail.outbox
    assert message.subject == f"Daily webhook limit reached for {organization.name}"
    assert message.to == ["admin@zylker.example"]


def test_an_edition_without_webhooks_refuses_to_enqueue(hook, deal, organization):
    organization.edition = Edition.objects.get(code="free")
    organization.save()
    with pytest.raises(ValidationError, match=f"The Free Edition of {organization.name} does not include webhooks."):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)


def test_a_record_of_another_module_is_refused(hook, owner, modules):
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "L"})
    with pytest.raises(ValidationError, match="Webhook “Books” is for Deals records, not Leads."):
        delivery_engine.delivery_enqueue(webhook=hook, record=lead)


def test_a_deactivated_webhook_or_a_deleted_record_cancels_the_delivery(receiver, hook, deal, owner, modules):
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    hook.is_active = False
    hook.save()
    [delivery] = run_due()
    assert (delivery.status, delivery.status_reason) == ("cancelled", "The webhook was deleted or deactivated.")
    hook.is_active = True
    hook.save()
    other = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Temp"})
    delivery_engine.delivery_enqueue(webhook=hook, record=other)
    other.delete()
    [delivery] = run_due()
    assert (delivery.status, delivery.status_reason, delivery.record_ref) == (
        "cancelled", "The record was deleted.", f"Deals #{delivery.record_ref.split('#')[1]}")
    assert receiver.log == [] and mail.outbox == []


def test_a_delivery_due_later_waits(receiver, hook, deal):
    later = timezone.now() + datetime.timedelta(hours=3)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal, due_at=later)
    assert run_due() == []
    receiver.expect_request("/hook").respond_with_data("ok")
    assert [d.status for d in run_due(later)] == ["success"]


def test_a_claim_is_exclusive_until_its_lease_runs_out(receiver, hook, deal, settings):
    receiver.expect_request("/hook").respond_with_data("ok")
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    now = timezone.now()
    [(pk, dead_token)] = delivery_engine.deliveries_claim(now=now, limit=10)
    assert delivery_engine.deliveries_claim(now=now, limit=10) == []  # a second worker finds nothing
    after_lease = now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS + 1)
    [(same_pk, token)] = delivery_engine.deliveries_claim(now=after_lease, limit=10)  # the first worker died
    assert same_pk == pk and token != dead_token
    assert delivery_engine.delivery_attempt(delivery_id=pk, token=dead_token).status == DeliveryStatus.DISPATCHED
    assert delivery_engine.delivery_attempt(delivery_id=pk, token=token).status == DeliveryStatus.SUCCESS
    delivery.refresh_from_db()
    assert (delivery.attempt_count, list(delivery.attempts.values_list("number", flat=True))) == (2, [2])


def test_a_late_worker_records_its_attempt_but_cannot_change_the_outcome(receiver, hook, deal, settings):
    receiver.expect_request("/hook").respond_with_data("ok")
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    now = timezone.now()
    [(pk, slow_token)] = delivery_engine.deliveries_claim(now=now, limit=1)
    [(_, token)] = delivery_engine.deliveries_claim(now=now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS + 1), limit=1)
    delivery_engine.delivery_attempt(delivery_id=pk, token=token)
    Delivery.objects.filter(pk=pk).update(claim_token=slow_token, status=DeliveryStatus.DISPATCHED, finished_at=None,
                                          lease_expires_at=now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS))
    Delivery.objects.filter(pk=pk).update(claim_token=uuid.uuid4())  # the slow one lost its claim again
    assert delivery_engine.delivery_attempt(delivery_id=pk, token=slow_token).status == DeliveryStatus.DISPATCHED
    assert Attempt.objects.filter(delivery=delivery).count() == 1


def test_a_delivery_that_keeps_killing_workers_is_given_up(receiver, hook, deal, settings):
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    moment = timezone.now()
    for _ in range(6):  # Zoho allows 2 attempts; 3 more claims are tolerated for workers that died
        moment += datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS + 1)
        [(pk, token)] = delivery_engine.deliveries_claim(now=moment, limit=1)
    delivery = delivery_engine.delivery_attempt(delivery_id=pk, token=token)
    assert (delivery.status, delivery.last_error_class) == ("failed", "internal_error")
    assert delivery.status_reason == "Workers stopped while sending it several times; given up."
    assert receiver.log == []


def test_drain_sends_everything_that_is_due(receiver, hook, deal):
    receiver.expect_request("/hook").respond_with_data("ok")
    for _ in range(25):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    assert delivery_engine.deliveries_drain(batch=10, budget_seconds=60) == 25
    assert Delivery.objects.filter(status="success").count() == 25 and len(receiver.log) == 25


def test_retries_get_a_fresh_timestamp_and_the_same_id(receiver, hook, deal):
    receiver.expect_request("/hook").respond_with_data("", status=500)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    first_stamp = int(receiver.log[0][0].headers["webhook-timestamp"])
    run_due(delivery.due_at + MINUTE)
    second = receiver.log[1][0]
    assert second.headers["webhook-id"] == delivery.message_id
    assert int(second.headers["webhook-timestamp"]) >= first_stamp


def test_a_batch_update_moves_on_only_the_deliveries_still_claimed(hook, deal):
    """One statement for the whole batch; a delivery another worker took over keeps that worker's state."""
    from dispatcher.delivery.batch_sql import deliveries_update_claimed

    first, second = (delivery_engine.delivery_enqueue(webhook=hook, record=deal) for _ in range(2))
    [(_, token), (_, other)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=2)
    Delivery.objects.filter(pk=second.pk).update(claim_token=uuid.uuid4())  # taken over meanwhile
    now = timezone.now()
    changes = {"status": DeliveryStatus.SUCCESS, "status_reason": "Answered 200.", "due_at": None,
               "claim_token": None, "lease_expires_at": None, "last_status_code": 200, "finished_at": now,
               "endpoint": None}
    assert deliveries_update_claimed([(first.pk, token, changes), (second.pk, other, changes)]) == {first.pk}
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, first.status_reason, first.last_status_code, first.finished_at, first.claim_token) == (
        "success", "Answered 200.", 200, now, None)
    assert (second.status, second.finished_at) == (DeliveryStatus.DISPATCHED, None)


def test_a_slow_destination_gets_its_cap_in_flight_and_the_rest_back_unattempted(receiver, hook, deal, settings,
                                                                                  monkeypatch):
    """With one request in flight allowed per destination, and every destination counted as slow: one is
    sent, the others go back to the database (not an attempt), due again shortly, and are sent then."""
    from dispatcher.delivery import destinations

    receiver.expect_request("/hook").respond_with_data("ok")
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = 1
    monkeypatch.setattr(destinations, "SLOW_DESTINATION_SECONDS", 0)
    first, second, third = (delivery_engine.delivery_enqueue(webhook=hook, record=deal) for _ in range(3))
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=3)
    delivery_engine.deliveries_attempt(claimed=claimed)
    rows = {d.pk: (d.status, d.attempt_count, d.claim_token) for d in Delivery.objects.all()}
    assert rows == {first.pk: ("success", 1, None), second.pk: ("queued", 0, None), third.pk: ("queued", 0, None)}
    assert len(receiver.log) == 1
    assert all("as many requests in flight" in d.status_reason for d in Delivery.objects.filter(status="queued"))
    later = timezone.now() + datetime.timedelta(seconds=5)
    assert sorted(d.status for d in run_due(later)) == ["success", "success"]
    assert list(Attempt.objects.order_by("delivery").values_list("number", flat=True)) == [1, 1, 1]
