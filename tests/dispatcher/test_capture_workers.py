"""Response captures beside the drain loop (issue 25): the loop sends and stores while captures run, one
organization's backlog holds neither another organization's delivery nor its capture, and a capture writes
only its fields into the record as it is now (issue 26: an edit made while the request was in flight, and
the other captures of the record, stay; a record deleted meanwhile is not made again).

Real sockets, real capture workers (threads with their own database connections and child processes), so
the tests commit (transaction=True). What a capture waits for is a row lock the test holds, or a receiver
that answers when the test says so: events, never sleeps.
"""
import os
import threading
import time
from collections.abc import Iterator

import pytest
from celery.signals import worker_process_shutdown
from django.db import connection, transaction

from crm import services as crm_services
from crm.models import Field, Record
from dispatcher import delivery as delivery_engine
from dispatcher.capture.apply import PENDING, RECORD_GONE
from dispatcher.delivery import followups
from dispatcher.delivery.followups import STOPPED, captures_wait
from dispatcher.models import Capture, DailyUsage, Delivery, DeliveryStatus
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

WAIT = 60  # seconds an event may take on a loaded machine before the test fails instead of hanging


def capturing_hook(organization, receiver, path: str, name: str, *captures: tuple[str, str]):
    """A Deals webhook of the organization whose answers' captures (expression, field API name) are written."""
    deals = organization.modules.get(api_name="Deals")
    hook = webhook_create(module=deals, name=name, url=receiver.url_for(path),
                          entity=[("deal", "${Deals.Deal Name}")])
    hook.capture_response, hook.capture_type = True, "JSONPATH"
    hook.save()
    for expression, api_name in captures:
        field, _ = Field.objects.get_or_create(module=deals, api_name=api_name, defaults={"label": api_name})
        Capture.objects.create(webhook=hook, when="success", expression=expression, field=field)
    return hook


def deal_of(organization, name: str) -> Record:
    owner = CrmUserFactory(organization=organization)
    return crm_services.record_create(module=organization.modules.get(api_name="Deals"), owner=owner,
                                      values={"Deal_Name": name})


@pytest.fixture
def row_lock() -> Iterator:
    """lock(record): another session holds the record's row lock until release() (as a user's long edit
    would); a capture that writes the record waits for it."""
    release, holders = threading.Event(), []

    def hold(record_id: int, locked: threading.Event) -> None:
        try:
            with transaction.atomic():
                Record.objects.select_for_update(no_key=True).get(pk=record_id)  # as an UPDATE takes it
                locked.set()
                release.wait(WAIT)
        finally:
            connection.close()

    def lock(record: Record) -> None:
        locked = threading.Event()
        holders.append(threading.Thread(target=hold, args=(record.pk, locked)))
        holders[-1].start()
        assert locked.wait(WAIT)

    lock.release = release.set
    yield lock
    release.set()
    for holder in holders:
        holder.join(WAIT)


@pytest.fixture
def postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks that make a capture wait need PostgreSQL (CI provides it)")


@pytest.fixture
def held_answer(receiver):
    """The receiver takes the request, tells the test (arrived), and answers only once the test says so."""
    arrived, answer = threading.Event(), threading.Event()

    def handler(request):
        from werkzeug import Response

        arrived.set()
        answer.wait(WAIT)
        return Response('{"invoice": {"id": "INV-7"}}', content_type="application/json")

    receiver.expect_request("/held").respond_with_handler(handler)
    return arrived, answer


def captures_waiting_for_a_lock(count: int) -> None:
    """Until count sessions (capture workers) wait for a row lock: polled, as only the database knows."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0] >= count:
                return
        threading.Event().wait(0.05)
    raise AssertionError(f"no capture waited for the row lock within {WAIT} s")


def run_in_background(delivery: Delivery) -> threading.Thread:
    """The worker's drain, in a thread of its own (with its own database connection), as in a worker."""
    def drain() -> None:
        try:
            delivery_engine.delivery_run(delivery_id=delivery.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=drain)
    thread.start()
    return thread


def test_one_organizations_slow_captures_hold_neither_the_loop_nor_another_organizations_capture(
        receiver, settings, row_lock, postgresql):
    """Acme's three captures wait (their record is locked); the drain still stores every outcome with its
    follow-ups, and Zylker's capture runs on the second capture worker meanwhile: Acme may hold only one."""
    settings.WEBHOOK_CAPTURE_WORKERS, settings.WEBHOOK_CAPTURE_PER_ORGANIZATION = 2, 1
    receiver.expect_request("/books").respond_with_json({"invoice": {"id": "INV-1"}})
    acme, zylker = OrganizationFactory(name="Acme"), OrganizationFactory(name="Zylker")
    acme_deal, zylker_deal = deal_of(acme, "Anvils"), deal_of(zylker, "Websites")
    acme_hooks = [capturing_hook(acme, receiver, "/books", f"Acme books {n}", ("$.invoice.id", "Invoice_Ref"))
                  for n in range(3)]
    zylker_hook = capturing_hook(zylker, receiver, "/books", "Zylker books", ("$.invoice.id", "Invoice_Ref"))
    deliveries = [delivery_engine.delivery_enqueue(webhook=hook, record=acme_deal) for hook in acme_hooks]
    deliveries.append(delivery_engine.delivery_enqueue(webhook=zylker_hook, record=zylker_deal))
    row_lock(acme_deal)

    delivery_engine.deliveries_drain(batch=10, budget_seconds=0)

    assert [d.status for d in Delivery.objects.filter(pk__in=[d.pk for d in deliveries])] == \
        [DeliveryStatus.SUCCESS] * 4
    assert sum(DailyUsage.objects.values_list("calls", flat=True)) == 4  # the follow-ups did not wait
    assert captures_wait(organization_id=zylker.pk, timeout=WAIT)
    zylker_deal.refresh_from_db()
    assert zylker_deal.values["Invoice_Ref"] == "INV-1"
    assert Delivery.objects.get(pk=deliveries[3].pk).attempts.get().captured["Invoice_Ref"]["written"] == "INV-1"
    assert all(Delivery.objects.get(pk=d.pk).attempts.get().captured == PENDING for d in deliveries[:3])

    row_lock.release()
    assert captures_wait(timeout=WAIT)
    acme_deal.refresh_from_db()
    assert acme_deal.values == {"Deal_Name": "Anvils", "Invoice_Ref": "INV-1"}
    assert all(Delivery.objects.get(pk=d.pk).attempts.get().captured["Invoice_Ref"]["written"] == "INV-1"
               for d in deliveries[:3])


def test_an_edit_made_while_the_request_was_in_flight_survives_the_capture(receiver, held_answer, organization):
    arrived, answer = held_answer
    deal = deal_of(organization, "Website")
    hook = capturing_hook(organization, receiver, "/held", "Books", ("$.invoice.id", "Invoice_Ref"))
    sending = run_in_background(delivery_engine.delivery_enqueue(webhook=hook, record=deal))
    assert arrived.wait(WAIT)  # claimed, loaded and sent: the worker holds the record as it was

    crm_services.record_update(record=Record.objects.get(pk=deal.pk),
                               values={"Deal_Name": "Website relaunch", "Amount": "12500"})
    answer.set()
    sending.join(WAIT)
    assert captures_wait(timeout=WAIT)

    deal.refresh_from_db()
    assert deal.values == {"Deal_Name": "Website relaunch", "Amount": "12500.00", "Invoice_Ref": "INV-7"}


def test_two_captures_of_one_event_both_stay(receiver, organization, settings):
    settings.WEBHOOK_CAPTURE_PER_ORGANIZATION = 2  # both may run at once
    receiver.expect_request("/books").respond_with_json({"invoice": {"id": "INV-3"}})
    receiver.expect_request("/desk").respond_with_json({"ticket": "T-9"})
    deal = deal_of(organization, "Website")
    books = capturing_hook(organization, receiver, "/books", "Books", ("$.invoice.id", "Invoice_Ref"))
    desk = capturing_hook(organization, receiver, "/desk", "Desk", ("$.ticket", "Ticket_Ref"))
    for hook in (books, desk):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)

    delivery_engine.deliveries_drain(batch=10, budget_seconds=0)
    assert captures_wait(timeout=WAIT)

    deal.refresh_from_db()
    assert deal.values == {"Deal_Name": "Website", "Invoice_Ref": "INV-3", "Ticket_Ref": "T-9"}


def test_a_capture_into_a_record_deleted_meanwhile_is_an_error_and_makes_nothing(receiver, held_answer,
                                                                                 organization):
    arrived, answer = held_answer
    deal = deal_of(organization, "Website")
    hook = capturing_hook(organization, receiver, "/held", "Books", ("$.invoice.id", "Invoice_Ref"))
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    sending = run_in_background(delivery)
    assert arrived.wait(WAIT)

    crm_services.record_delete(record=Record.objects.get(pk=deal.pk))
    answer.set()
    sending.join(WAIT)
    assert captures_wait(timeout=WAIT)

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCESS
    captured = delivery.attempts.get().captured
    assert captured["error"] == RECORD_GONE
    assert captured["Invoice_Ref"]["written"] == "not written: the record was deleted"
    assert not Record.objects.filter(pk=deal.pk).exists()


def test_a_worker_that_stops_records_the_captures_it_could_not_run(receiver, organization, row_lock, postgresql,
                                                                   monkeypatch):
    """A Celery pool child that stops gives its captures a while (none here), then records what has not run;
    the one that is running still ends."""
    monkeypatch.setattr(followups, "STOP_WAIT_SECONDS", 0)
    receiver.expect_request("/books").respond_with_json({"invoice": {"id": "INV-5"}})
    deal = deal_of(organization, "Website")
    hooks = [capturing_hook(organization, receiver, "/books", f"Books {n}", ("$.invoice.id", "Invoice_Ref"))
             for n in range(3)]
    row_lock(deal)
    deliveries = [delivery_engine.delivery_enqueue(webhook=hooks[0], record=deal)]
    delivery_engine.deliveries_drain(batch=10, budget_seconds=0)
    captures_waiting_for_a_lock(1)  # the first capture has run and waits to write
    deliveries += [delivery_engine.delivery_enqueue(webhook=hook, record=deal) for hook in hooks[1:]]
    delivery_engine.deliveries_drain(batch=10, budget_seconds=0)

    worker_process_shutdown.send(sender=None, pid=os.getpid(), exitcode=0)
    row_lock.release()
    assert captures_wait(timeout=WAIT)

    captured = [Delivery.objects.get(pk=d.pk).attempts.get().captured for d in deliveries]
    assert [c.get("error") or c["Invoice_Ref"]["written"] for c in captured] == ["INV-5", STOPPED["error"],
                                                                                STOPPED["error"]]
    deal.refresh_from_db()
    assert deal.values["Invoice_Ref"] == "INV-5"


def test_captures_beyond_the_waiting_bound_are_recorded_as_not_run(receiver, organization, settings, row_lock,
                                                                   postgresql):
    settings.WEBHOOK_CAPTURE_MAX_WAITING = 1
    receiver.expect_request("/books").respond_with_json({"invoice": {"id": "INV-6"}})
    deal = deal_of(organization, "Website")
    hooks = [capturing_hook(organization, receiver, "/books", f"Books {n}", ("$.invoice.id", "Invoice_Ref"))
             for n in range(3)]
    row_lock(deal)
    deliveries = [delivery_engine.delivery_enqueue(webhook=hooks[0], record=deal)]
    delivery_engine.deliveries_drain(batch=10, budget_seconds=0)
    captures_waiting_for_a_lock(1)  # running: the next one waits, the one after it is one too many
    deliveries += [delivery_engine.delivery_enqueue(webhook=hook, record=deal) for hook in hooks[1:]]
    delivery_engine.deliveries_drain(batch=10, budget_seconds=0)
    row_lock.release()
    assert captures_wait(timeout=WAIT)

    captured = [Delivery.objects.get(pk=d.pk).attempts.get().captured for d in deliveries]
    assert [c.get("error") or c["Invoice_Ref"]["written"] for c in captured] == [
        "INV-6", "INV-6",
        "Not run: the organization's captures waiting in this worker process were at their limit (1); nothing was "
        "captured."]
    assert Delivery.objects.filter(status=DeliveryStatus.SUCCESS).count() == 3
