"""Endpoint health: a destination that keeps failing is disabled (deliveries held, admins told) and
replayed when enabled; a per-destination rate limit makes deliveries wait instead of dropping them."""
import datetime
import itertools

import pytest
from django.core import mail
from django.utils import timezone

from crm import services as crm_services
from crm.models import CrmUser
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import endpoint_health as health
from dispatcher.models import Delivery, DeliveryStatus, Endpoint, RetryPolicy
from tests.factories import webhook_create

HOUR = datetime.timedelta(hours=1)


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 24


@pytest.fixture
def deal(owner, modules):
    CrmUser.objects.create(organization=owner.organization, last_name="Admin", email="admin@zylker.example",
                           is_admin=True)
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})


@pytest.fixture
def hook(receiver, modules):
    no_retries = RetryPolicy.objects.create(name="No retries", code="none", delays=[])
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook?authtoken=tok-9"),
                          entity=[("deal", "${Deals.Deal Name}")], retry_policy=no_retries)


def run_due() -> list[Delivery]:
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=100)
    return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def fail_deliveries(hook, deal, count: int) -> list[Delivery]:
    for _ in range(count):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    return run_due()


def test_a_long_run_of_failures_disables_the_destination_holds_deliveries_and_enable_replays(
        receiver, hook, deal, django_capture_on_commit_callbacks):
    receiver.expect_request("/hook").respond_with_data("down", status=500)
    assert {d.status for d in fail_deliveries(hook, deal, 3)} == {DeliveryStatus.FAILED}
    endpoint = Endpoint.objects.get()
    assert endpoint.destination == f"http://127.0.0.1:{receiver.port}/hook"  # no query: tokens stay out
    assert endpoint.consecutive_failures == 3 and not endpoint.is_disabled  # 3 in a row, but not for 24 hours
    Endpoint.objects.update(failing_since=timezone.now() - 25 * HOUR)  # the run started a day ago
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):  # the worker's transaction commits
        fail_deliveries(hook, deal, 1)
    endpoint.refresh_from_db()
    assert endpoint.is_disabled and "4 deliveries in a row failed" in endpoint.disabled_reason
    [notice] = [m for m in mail.outbox if "destination disabled" in m.subject]
    assert "admin@zylker.example" in notice.to and "Books" in notice.body and "On hold" in notice.body
    assert "tok-9" not in notice.body

    sent_before = len(receiver.log)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    held = run_due()
    assert [d.status for d in held] == [DeliveryStatus.HELD] * 2 and len(receiver.log) == sent_before
    assert "destination is disabled" in held[0].status_reason and held[0].attempts.count() == 0
    assert Delivery.objects.get(pk=held[0].pk).attempt_count == 0  # holding is not an attempt

    receiver.clear_all_handlers()
    receiver.expect_request("/hook").respond_with_data("OK")
    assert health.endpoint_enable(endpoint=endpoint, by="ada") == 2
    replayed = run_due()
    assert [d.status for d in replayed] == [DeliveryStatus.SUCCESS] * 2
    endpoint.refresh_from_db()
    assert not endpoint.is_disabled and endpoint.consecutive_failures == 0 and endpoint.last_success_at


def test_a_success_ends_the_run_of_failures(receiver, hook, deal):
    receiver.expect_oneshot_request("/hook").respond_with_data("down", status=500)
    receiver.expect_oneshot_request("/hook").respond_with_data("down", status=500)
    receiver.expect_request("/hook").respond_with_data("OK")
    fail_deliveries(hook, deal, 2)
    assert Endpoint.objects.get().consecutive_failures == 2
    fail_deliveries(hook, deal, 1)
    endpoint = Endpoint.objects.get()
    assert endpoint.consecutive_failures == 0 and endpoint.failing_since is None


def test_auto_disable_can_be_turned_off(receiver, hook, deal, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 0
    receiver.expect_request("/hook").respond_with_data("down", status=500)
    fail_deliveries(hook, deal, 3)
    Endpoint.objects.update(failing_since=timezone.now() - 25 * HOUR)
    fail_deliveries(hook, deal, 1)
    assert not Endpoint.objects.get().is_disabled


def test_the_rate_limit_makes_deliveries_wait_for_their_slot_and_none_is_dropped(receiver, hook, deal, monkeypatch):
    receiver.expect_request("/hook").respond_with_data("OK")
    Endpoint.objects.create(organization=hook.organization, destination=f"http://127.0.0.1:{receiver.port}/hook",
                            rate_limit=5)
    for _ in range(10):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    started = timezone.now()
    # The clock stands still during the first pass: however slow the machine, no slot comes due meanwhile.
    monkeypatch.setattr(timezone, "now", lambda: started)
    first_pass = run_due()
    sent = [d for d in first_pass if d.status == DeliveryStatus.SUCCESS]
    waiting = sorted((d for d in first_pass if d.status == DeliveryStatus.THROTTLED), key=lambda d: d.rate_slot_at)
    assert len(sent) == 1 and len(waiting) == 9 and len(receiver.log) == 1
    slots = [d.rate_slot_at for d in waiting]
    assert all(later - earlier >= datetime.timedelta(milliseconds=200) for earlier, later in itertools.pairwise(slots))
    assert slots[-1] - started >= datetime.timedelta(milliseconds=1800)  # ten at 5/s take two seconds
    assert all(d.due_at == d.rate_slot_at and "rate limit (5.00/s)" in d.status_reason for d in waiting)
    assert all(d.attempts.count() == 0 for d in waiting)

    later = slots[-1] + datetime.timedelta(milliseconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)  # the clock reaches the last slot
    run_due()
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCESS).count() == 10 and len(receiver.log) == 10
    assert set(Delivery.objects.values_list("attempt_count", flat=True)) == {1}


def test_endpoint_admin_shows_health_and_enables(admin_client, receiver, hook, deal):
    receiver.expect_request("/hook").respond_with_data("down", status=500)
    fail_deliveries(hook, deal, 3)
    Endpoint.objects.update(failing_since=timezone.now() - 25 * HOUR)
    fail_deliveries(hook, deal, 1)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    run_due()
    endpoint = Endpoint.objects.get()
    page = admin_client.get("/admin/dispatcher/endpoint/").content.decode()
    assert "Disabled" in page and endpoint.destination in page
    response = admin_client.post("/admin/dispatcher/endpoint/", {"action": "enable", "_selected_action": [endpoint.pk]},
                                 follow=True)
    assert "1 deliveries on hold queued again" in response.content.decode()
    assert Delivery.objects.filter(status=DeliveryStatus.QUEUED).count() == 1


def test_410_gone_is_final_and_disables_the_destination_at_once(receiver, hook, deal, settings,
                                                                django_capture_on_commit_callbacks):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 10  # one failure is far from the usual threshold
    receiver.expect_request("/hook").respond_with_data("no such subscription", status=410)
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    with django_capture_on_commit_callbacks(execute=True):  # the worker's transaction commits
        [gone] = run_due()
    assert gone.status == DeliveryStatus.FAILED and gone.last_error_class == "http_410"
    assert gone.status_reason.endswith("not retried: 410 Gone, the receiver says this endpoint no longer exists; "
                                       "the destination is disabled.")
    endpoint = Endpoint.objects.get()
    assert endpoint.is_disabled and "answered 410 Gone" in endpoint.disabled_reason
    [message] = mail.outbox
    assert "410 Gone" in message.body and "admin@zylker.example" in message.to
    # What comes next for the destination is kept, not sent, until someone enables it again.
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [held] = run_due()
    assert held.status == DeliveryStatus.HELD and len(receiver.log) == 1
    assert health.endpoint_enable(endpoint=endpoint) == 1
