"""Faults around real workers (Celery, Redis, PostgreSQL, a local receiver): workers killed at random
moments, the broker restarted empty, the database cut off. Nothing is lost; duplicates stay bounded;
no attempt is recorded twice. bench/faults.py runs the same faults longer and prints a table."""
import random
from collections import Counter

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Attempt, Delivery, DeliveryStatus, RetryPolicy
from tests.e2e.conftest import wait_for
from tests.factories import webhook_create
from tests.faults.proxy import CuttableProxy

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# Short timeouts and leases, so that work a dead worker held is taken over in seconds, not minutes.
FAST = {"WEBHOOK_CONNECT_TIMEOUT": "1", "WEBHOOK_READ_TIMEOUT": "1", "WEBHOOK_TOTAL_TIMEOUT": "2",
        "WEBHOOK_LEASE_SECONDS": "4", "WEBHOOK_PUMP_INTERVAL": "0.5", "WEBHOOK_DRAIN_SECONDS": "5",
        "WEBHOOK_DRAIN_BATCH": "20", "WEBHOOK_MAX_IN_FLIGHT": "20"}
CONCURRENCY = 2
IN_FLIGHT = int(FAST["WEBHOOK_MAX_IN_FLIGHT"])
# A killed pool process sends again what it sent but had not stored: the requests it had in flight, and the
# finished ones waiting for the next write (a write happens at the latest when WEBHOOK_MAX_IN_FLIGHT wait).
PER_PROCESS = 2 * IN_FLIGHT


@pytest.fixture
def hook(receiver, modules):
    receiver.expect_request("/hook").respond_with_data("ok")
    # What is tested is that killed workers lose nothing, not that a loaded machine answers within FAST's
    # timeouts: an attempt that times out there is retried a second later, up to 20 times, instead of failing.
    patient = RetryPolicy.objects.create(code="faults-patient", name="Faults: every second", delays=[1] * 20)
    return webhook_create(module=modules["Deals"], name="Faults", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")], retry_policy=patient)


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Faults"})


def enqueue(hook, deal, n: int) -> list[Delivery]:
    deliveries = []
    for start in range(0, n, 100):
        with transaction.atomic():
            deliveries += delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(min(100, n - start))])
    return deliveries


def successes() -> int:
    return Delivery.objects.filter(status=DeliveryStatus.SUCCESS).count()


def check_nothing_lost(deliveries: list[Delivery], receiver) -> int:
    """Every delivery ended in Success, the receiver saw each one, no attempt number was stored twice;
    returns how many requests the receiver got more than once (the at-least-once duplicates)."""
    try:
        wait_for(lambda: successes() == len(deliveries), timeout=120, what="every delivery to succeed")
    except AssertionError as error:
        left = Counter(Delivery.objects.exclude(status=DeliveryStatus.SUCCESS).values_list("status", "status_reason"))
        raise AssertionError(f"{error}; not succeeded: {dict(left)}") from None
    seen = Counter(request.headers["webhook-id"] for request, _ in receiver.log)
    assert {d.message_id for d in deliveries} <= set(seen)
    assert not Attempt.objects.values("delivery", "number").annotate(n=Count("id")).filter(n__gt=1).exists()
    return sum(seen.values()) - len(seen)


@pytest.mark.parametrize("flush_seconds", ["1", "0"])
def test_workers_killed_at_random_moments_lose_nothing(start_worker, receiver, hook, deal, flush_seconds):
    rng = random.Random(8)
    kills = 3
    deliveries = enqueue(hook, deal, 300)
    env = {**FAST, "WEBHOOK_ATTEMPT_FLUSH_SECONDS": flush_seconds}
    worker = start_worker(CONCURRENCY, beat=True, **env)
    for _ in range(kills):
        target = successes() + rng.randrange(10, 60)
        wait_for(lambda target=target: successes() >= target or successes() == len(deliveries), timeout=60,
                 what="some progress before the kill")
        worker.kill()  # SIGKILL to the worker and its pool: in-flight batches are abandoned mid-way
        worker = start_worker(CONCURRENCY, beat=True, **env)
    duplicates = check_nothing_lost(deliveries, receiver)
    # With every attempt stored as it ends, only the requests in flight are sent again.
    per_process = PER_PROCESS if flush_seconds != "0" else IN_FLIGHT
    assert duplicates <= kills * CONCURRENCY * per_process, duplicates


def test_a_broker_restarted_empty_loses_nothing(start_worker, receiver, hook, deal):
    deliveries = enqueue(hook, deal, 200)
    start_worker(CONCURRENCY, beat=True, **FAST)
    wait_for(lambda: successes() >= 20, what="the run to be under way")
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.flushdb()  # every queued wake-up is gone …
    broker.execute_command("CLIENT", "KILL", "TYPE", "normal")  # … and every client is disconnected, as on restart
    duplicates = check_nothing_lost(deliveries, receiver)  # the pump finds the rest in the database
    assert duplicates <= CONCURRENCY * PER_PROCESS


def sessions_alive(ports: set[int]) -> bool:
    """Whether the database still has a session whose client used one of these ports."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s)", [list(ports)])
        return cursor.fetchone()[0] > 0


def test_a_database_cut_off_for_seconds_loses_nothing_and_records_no_attempt_twice(start_worker, receiver, hook,
                                                                                   deal):
    db = connection.settings_dict
    proxy = CuttableProxy((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)))
    try:
        deliveries = enqueue(hook, deal, 200)
        url = start_worker.env["DATABASE_URL"].replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
        worker = start_worker(CONCURRENCY, beat=True, DATABASE_URL=url, **FAST)
        wait_for(lambda: successes() >= 20, what="the run to be under way")
        proxy.cut()
        # A commit the database had received before the cut still completes: count once the server has
        # ended every session the cut dropped (a backend ends only after the statement it was running).
        wait_for(lambda: not sessions_alive(proxy.dropped_ports), what="the dropped sessions to end")
        during = successes()
        # The workers meet the outage (their connections drop, new ones are refused) …
        refused = proxy.refused
        wait_for(lambda: proxy.refused >= refused + 3, timeout=30,
                 what="the workers to try the database and be refused")
        assert successes() == during  # nothing can be recorded meanwhile
        proxy.restore()  # … and carry on once it is back
        duplicates = check_nothing_lost(deliveries, receiver)
        assert worker.process.poll() is None  # the worker survived the outage
        assert duplicates <= 2 * CONCURRENCY * PER_PROCESS
    finally:
        proxy.close()
