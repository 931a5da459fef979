"""End to end: a real Celery worker, Redis or RabbitMQ, PostgreSQL (directly or through PgBouncer) and a local
HTTP receiver."""
import datetime
import email
import email.policy
import threading

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from werkzeug import Response

from crm import services as crm_services
from crm.models import CrmUser, Edition
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import wakeups
from dispatcher.models import Delivery, DeliveryStatus, FailureEmails, RetryPolicy
from dispatcher.rendering.request import webhook_render_unsigned
from tests.e2e.conftest import queues_purge, wait_for
from tests.factories import webhook_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
THROUGH_PGBOUNCER = True  # tests/e2e/conftest.py: on the PgBouncer stack too


@pytest.fixture
def deal(owner, modules):
    CrmUser.objects.create(organization=owner.organization, last_name="Admin", email="admin@zylker.example",
                           is_admin=True)
    return crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Website \"redesign\" <now>", "Amount": "12500"})


@pytest.fixture
def hook(receiver, modules):
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}"), ("amount", "${Deals.Amount}")],
                          custom=[("authtoken", "tok-e2e")])


def sent_mails(folder) -> list:
    """Messages the worker's file e-mail backend has finished writing (it ends each with a dashed line)."""
    texts = [path.read_text() for path in sorted(folder.iterdir())]
    return [email.message_from_string(text, policy=email.policy.default)
            for text in texts if text.rstrip().endswith("-" * 79)]


def status_of(delivery: Delivery) -> str:
    return Delivery.objects.get(pk=delivery.pk).status


def test_an_enqueued_delivery_reaches_the_receiver_signed_and_exactly_as_rendered(start_worker, receiver, hook, deal):
    receiver.expect_request("/hook", method="POST").respond_with_json({"id": "INV-1"}, status=201)
    start_worker()
    with transaction.atomic():
        delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal, trigger="Deals.create")
    wait_for(lambda: status_of(delivery) == DeliveryStatus.SUCCESS, what="success")
    [(request, _)] = receiver.log
    assert request.get_data() == webhook_render_unsigned(webhook=hook, record=deal).body
    assert request.headers["webhook-id"] == delivery.message_id
    payload = StandardWebhook(hook.signing_secret).verify(request.get_data(), dict(request.headers))
    assert payload == {"deal": "Website \"redesign\" <now>", "amount": "12500.00", "authtoken": "tok-e2e"}
    assert Delivery.objects.get(pk=delivery.pk).attempts.get().status_code == 201


def test_a_failing_receiver_gets_the_retry_schedule_then_failed_and_emails(start_worker, receiver, hook, deal):
    hook.retry_policy = RetryPolicy.objects.create(code="zoho-mail", name="Zoho timing, e-mail each", delays=[900],
                                                   failure_emails=FailureEmails.EACH)
    hook.save()
    receiver.expect_request("/hook").respond_with_data("maintenance", status=503)
    worker = start_worker()
    with transaction.atomic():
        delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    wait_for(lambda: status_of(delivery) == DeliveryStatus.RETRY, what="the first retry to be scheduled")
    due = Delivery.objects.get(pk=delivery.pk).due_at
    assert datetime.timedelta(minutes=13) < due - timezone.now() <= datetime.timedelta(minutes=16.5)  # ±10 % jitter
    # The controllable clock: the retry falls due now instead of in 15 minutes; the pump wakes the worker
    # (whose drain loop, if still lingering, may have claimed it already: then the pump finds nothing due).
    Delivery.objects.filter(pk=delivery.pk).update(due_at=timezone.now() - datetime.timedelta(seconds=1))
    assert delivery_engine.deliveries_pump() in (0, 1)
    wait_for(lambda: status_of(delivery) == DeliveryStatus.FAILED, what="the delivery to fail")
    attempts = Delivery.objects.get(pk=delivery.pk).attempts.order_by("number")
    assert [(a.number, a.status_code, a.outcome) for a in attempts] == [(1, 503, "retry"), (2, 503, "failed")]
    assert {r.headers["webhook-id"] for r, _ in receiver.log} == {delivery.message_id}
    [message] = wait_for(lambda: sent_mails(start_worker.mail_dir), what="the failure e-mail")
    assert message["Subject"] == f"Webhook “Books” failed for Deals #{deal.pk}"
    assert sorted(message["To"].split(", ")) == ["admin@zylker.example", "ted@zylker.example"]
    assert "tok-e2e" not in message.as_string()
    assert worker.process.poll() is None


def test_concurrent_workers_send_exactly_the_daily_limit(start_worker, receiver, hook, deal, organization):
    organization.edition = Edition.objects.create(code="ten", name="Ten a day", daily_call_limit=10,
                                                  calls_per_licence=1000)
    organization.save()
    receiver.expect_request("/hook").respond_with_data("ok")
    start_worker(concurrency=4)
    start_worker(concurrency=2)
    with transaction.atomic():
        deliveries = [delivery_engine.delivery_enqueue(webhook=hook, record=deal) for _ in range(30)]
    ids = [d.pk for d in deliveries]
    wait_for(lambda: Delivery.objects.filter(pk__in=ids, status__in=["success", "limit_reached"]).count() == 30,
             what="all 30 deliveries to end")
    assert Delivery.objects.filter(pk__in=ids, status="success").count() == 10
    assert Delivery.objects.filter(pk__in=ids, status="limit_reached").count() == 20
    assert len(receiver.log) == 10
    [message] = wait_for(lambda: sent_mails(start_worker.mail_dir), what="the limit e-mail")
    assert message["Subject"] == f"Daily webhook limit reached for {organization.name}"


def test_a_worker_killed_mid_delivery_loses_nothing(start_worker, receiver, hook, deal, settings):
    started, release = threading.Event(), threading.Event()

    def slow_then_ok(request):
        if not started.is_set():
            started.set()
            release.wait(30)
        return Response("ok")

    receiver.expect_request("/hook").respond_with_handler(slow_then_ok)
    first = start_worker()
    with transaction.atomic():
        delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    assert started.wait(30), "the worker never reached the receiver"
    first.kill()
    release.set()
    assert status_of(delivery) == DeliveryStatus.DISPATCHED
    start_worker()
    # The controllable clock again: the dead worker's lease is over now rather than in a minute. On RabbitMQ
    # the dead worker's unacknowledged wake-up comes back to the new worker at once (on Redis, after the
    # visibility timeout): if its drain runs after this update, it takes the delivery before the pump looks.
    Delivery.objects.filter(pk=delivery.pk).update(lease_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert delivery_engine.deliveries_pump() in ((0, 1) if start_worker.stack.name == "amqp" else (1,))
    wait_for(lambda: status_of(delivery) == DeliveryStatus.SUCCESS, what="the delivery to be taken over")
    done = Delivery.objects.get(pk=delivery.pk)
    assert done.attempt_count == 2 and list(done.attempts.values_list("number", flat=True)) == [2]
    assert [r.headers["webhook-id"] for r, _ in receiver.log] == [delivery.message_id] * 2


def test_a_purged_broker_only_delays_the_delivery(start_worker, receiver, hook, deal):
    receiver.expect_request("/hook").respond_with_data("ok")
    with transaction.atomic():
        delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    # A wake-up within WAKE_COALESCE_SECONDS of an earlier one (a test before) is sent at the window's end, as
    # a drain: wait for it, so that the purge takes it and nothing reaches the worker afterwards.
    if (trailing := wakeups._coalescer.timer) is not None:
        trailing.join()
    assert queues_purge("deliveries") == 1  # the wake-up is lost, as when the broker restarts empty
    start_worker()
    assert status_of(delivery) == DeliveryStatus.QUEUED
    assert delivery_engine.deliveries_pump() == 1  # what celery beat does every few seconds
    wait_for(lambda: status_of(delivery) == DeliveryStatus.SUCCESS, what="the pump to recover the delivery")
    assert len(receiver.log) == 1
