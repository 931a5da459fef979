"""What a worker writes per batch of outcomes (issue 27): one INSERT of attempts and one UPDATE of deliveries,
whatever the batch mixes; the request kept encrypted only while the delivery may be sent again; endpoint health
counted once per destination; the day's quota reserved in one statement while it has room."""
import datetime
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from werkzeug import Response

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import endpoint_health as health
from dispatcher.ops import quotas
from dispatcher.crypto import decrypt
from dispatcher.models import Attempt, AuthType, DailyUsage, Delivery, DeliveryStatus, Endpoint
from tests.factories import webhook_create

TOKEN = "tok-secret-7f3a"
PASSWORD = "pa ss/wörd&1"
MINUTE = datetime.timedelta(minutes=1)


@pytest.fixture(autouse=True)
def one_flush_per_batch(settings):
    """The outcomes of a batch are stored together once nothing is in flight (not when the oldest has waited
    WEBHOOK_ATTEMPT_FLUSH_SECONDS on a loaded machine)."""
    settings.WEBHOOK_ATTEMPT_FLUSH_SECONDS = 600


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})


@pytest.fixture
def hook(receiver, modules):
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", TOKEN)],
                          auth_type=AuthType.BASIC, auth_username="crm", auth_password=PASSWORD)


def raw_sealed(delivery: Delivery) -> str:
    """The request column as PostgreSQL holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT request_sealed FROM dispatcher_delivery WHERE id = %s", [delivery.pk])
        return cursor.fetchone()[0]


def attempt_together(now: datetime.datetime) -> list[Delivery]:
    claimed = delivery_engine.deliveries_claim(now=now, limit=100)
    return delivery_engine.deliveries_attempt(claimed=claimed)


def test_a_batch_of_first_attempts_and_retries_is_stored_with_one_insert_and_one_update(receiver, hook, deal):
    receiver.expect_ordered_request("/hook").respond_with_data("down", status=503)
    receiver.expect_ordered_request("/hook").respond_with_data("down", status=503)
    retried = [delivery_engine.delivery_enqueue(webhook=hook, record=deal) for _ in range(2)]
    assert {d.status for d in attempt_together(timezone.now())} == {DeliveryStatus.RETRY}
    for delivery in retried:  # may be sent again: kept, encrypted
        raw = raw_sealed(delivery)
        assert TOKEN not in raw and PASSWORD not in raw and TOKEN in decrypt(raw)
    displays = dict(Delivery.objects.filter(pk__in=[d.pk for d in retried]).values_list("pk", "request_display"))
    receiver.clear()
    receiver.expect_request("/hook").respond_with_data('{"ok": true}', headers={"X-Echo": TOKEN},
                                                        content_type="application/json")
    first = [delivery_engine.delivery_enqueue(webhook=hook, record=deal) for _ in range(2)]

    with CaptureQueriesContext(connection) as statements:
        stored = attempt_together(timezone.now() + 20 * MINUTE)  # the retries are due again

    assert {d.pk for d in stored} == {d.pk for d in retried + first} and len(receiver.log) == 4
    assert sum(q["sql"].startswith('INSERT INTO "dispatcher_attempt"') for q in statements) == 1
    assert sum(q["sql"].startswith('UPDATE "dispatcher_delivery"') for q in statements) == 1
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in retried]):
        assert_succeeded(delivery, [503, 200])
        assert delivery.request_display == displays[delivery.pk]  # the masked request of the first attempt
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in first]):
        assert_succeeded(delivery, [200])


def assert_succeeded(delivery: Delivery, status_codes: list[int]) -> None:
    """Success as the log shows it, with nothing secret left at rest: it is never sent again."""
    attempts = list(delivery.attempts.order_by("number"))
    assert delivery.status == DeliveryStatus.SUCCESS and delivery.finished_at is not None
    assert (delivery.claim_token, delivery.lease_expires_at, delivery.last_status_code) == (None, None, 200)
    assert [a.status_code for a in attempts] == status_codes
    last = attempts[-1]
    assert last.response_headers["X-Echo"] == "********" and last.response_body == '{"ok": true}'
    assert last.started_at <= delivery.finished_at and last.outcome == DeliveryStatus.SUCCESS
    assert raw_sealed(delivery) == ""
    assert "Basic ********" in delivery.request_display and TOKEN not in delivery.request_display


def test_a_failed_delivery_keeps_its_request_encrypted_and_a_resend_sends_it_again(receiver, hook, deal):
    receiver.expect_request("/hook").respond_with_data("gone", status=404)
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [failed] = attempt_together(timezone.now())
    assert failed.status == DeliveryStatus.FAILED
    raw = raw_sealed(failed)
    assert raw and TOKEN not in raw and PASSWORD not in raw
    assert delivery_engine.deliveries_resend(ids=[delivery.pk], by="admin") == 1
    attempt_together(timezone.now())
    first, again = (request for request, _ in receiver.log)
    assert again.get_data() == first.get_data() and again.headers["Authorization"] == first.headers["Authorization"]


@pytest.fixture
def endpoint(organization):
    return Endpoint.objects.create(organization=organization, destination="https://receiver.example/hook")


def test_a_batch_of_outcomes_of_one_destination_is_counted_with_one_statement(endpoint, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES = 3
    t = [timezone.now() + n * MINUTE for n in range(5)]
    with CaptureQueriesContext(connection) as statements:
        health.endpoint_outcomes(endpoint=endpoint, ended=[(False, t[0]), (False, t[1]), (True, t[2]),
                                                           (False, t[3]), (False, t[4])])
    assert len(statements) == 1
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.failing_since, endpoint.last_success_at,
            endpoint.last_failure_at) == (2, t[3], t[2], t[4])
    with CaptureQueriesContext(connection) as statements:  # a success just stamped changes nothing
        health.endpoint_outcomes(endpoint=endpoint, ended=[(True, t[4])])
        health.endpoint_outcomes(endpoint=endpoint, ended=[(True, t[4] + MINUTE)])
    assert len(statements) == 1
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.failing_since, endpoint.last_success_at) == (0, None, t[4])


def test_a_batch_of_failures_goes_on_with_the_run_and_disables_the_destination(endpoint, settings):
    settings.WEBHOOK_DISABLE_AFTER_FAILURES, settings.WEBHOOK_DISABLE_AFTER_HOURS = 3, 24
    day_ago = timezone.now() - datetime.timedelta(hours=25)
    health.endpoint_outcomes(endpoint=endpoint, ended=[(False, day_ago)])
    now = timezone.now()
    health.endpoint_outcomes(endpoint=endpoint, ended=[(False, now), (False, now + MINUTE)])
    endpoint.refresh_from_db()
    assert (endpoint.consecutive_failures, endpoint.failing_since, endpoint.last_failure_at) == (3, day_ago,
                                                                                                  now + MINUTE)
    assert endpoint.is_disabled and endpoint.disabled_reason.startswith("3 deliveries in a row failed for good")


def test_the_quota_is_reserved_in_one_statement_while_the_day_has_room(organization):
    limit = quotas.daily_limit(organization=organization)
    now = timezone.now()
    assert quotas.quota_reserve(organization=organization, now=now, count=4) == 4  # the day's row made
    with CaptureQueriesContext(connection) as statements:
        assert quotas.quota_reserve(organization=organization, now=now, count=3) == 3
    assert len(statements) == 1
    assert quotas.quota_reserve(organization=organization, now=now, count=limit) == limit - 7  # what is left
    assert quotas.quota_reserve(organization=organization, now=now, count=1) == 0
    assert DailyUsage.objects.get(organization=organization).calls == limit


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_answer_that_comes_back_after_a_takeover_is_logged_but_the_log_shows_success_once(receiver, hook, deal):
    """A worker cut off past its lease (a partition) stores its answer late: the attempt happened and is
    kept, marked claim_lost, and it decides nothing; the worker that took over has the one Success."""
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    taken_over = uuid.uuid4()

    def answer_while_taken_over(request):  # another worker takes the delivery over while this one waits
        Delivery.objects.filter(pk=delivery.pk).update(claim_token=taken_over)
        return Response("ok")

    receiver.expect_oneshot_request("/hook").respond_with_handler(answer_while_taken_over)
    receiver.expect_request("/hook").respond_with_data("ok")
    [late] = attempt_together(timezone.now())
    assert late.status == DeliveryStatus.DISPATCHED  # the late worker changed nothing
    [attempt] = Attempt.objects.filter(delivery=delivery)
    assert (attempt.outcome, attempt.error_class, attempt.status_code) == ("dispatched", "claim_lost", 200)
    assert "another worker" in attempt.meaning

    Delivery.objects.filter(pk=delivery.pk).update(claim_token=None, lease_expires_at=None, status=DeliveryStatus.QUEUED,
                                                    due_at=timezone.now() - MINUTE)  # its new owner's turn
    [done] = attempt_together(timezone.now())
    assert done.status == DeliveryStatus.SUCCESS and len(receiver.log) == 2
    assert list(Attempt.objects.filter(delivery=delivery).values_list("outcome", flat=True)) == [
        "dispatched", "success"]
