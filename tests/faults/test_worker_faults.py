"""Faults around real workers (Celery, Redis, PostgreSQL, a local receiver): workers killed at random
moments, the broker restarted empty, the database cut off, a worker frozen inside a transaction. Nothing is
lost; duplicates stay bounded; no attempt is recorded twice. bench/faults.py runs the same faults longer and
prints a table."""
import json
import random
import subprocess
import sys
from collections import Counter

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Attempt, Delivery, DeliveryStatus, RetryPolicy
from tests.e2e.conftest import BASE_DIR, wait_for
from tests.factories import webhook_create
from tests.faults.proxy import CuttableProxy, FreezingProxy

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


# The statements a worker runs inside a transaction while it holds rows of deliveries: its claim (the rows it
# is taking, locked by SELECT … FOR UPDATE SKIP LOCKED, when more is due than one claim takes: what fits is
# claimed in one statement, outside a transaction) and the storing of an outcome (the claimed row, locked by
# the UPDATE … FROM json_to_recordset(…) that concludes it, before the COMMIT; only it has this condition).
IN_TRANSACTION = {"claim": b"FOR UPDATE SKIP LOCKED", "outcome": b'= v."match.claim_token"'}
IDLE_TIMEOUT = "2"  # seconds: DATABASE_IDLE_IN_TRANSACTION_TIMEOUT for the frozen worker's sessions
IDLE_IN_TRANSACTION_ENDED = b"C25P03\x00"  # SQLSTATE idle_in_transaction_session_timeout, in the server's error


@pytest.mark.parametrize("holding", IN_TRANSACTION)
def test_a_worker_frozen_in_a_transaction_loses_its_deliveries_to_another_worker(start_worker, receiver, hook, deal,
                                                                                  holding):
    db = connection.settings_dict
    proxy = FreezingProxy((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)), IN_TRANSACTION[holding])
    # Claims of 4 out of 10 due: shared out in a transaction (delivery/claims.py).
    env = {**FAST, "WEBHOOK_ATTEMPT_FLUSH_SECONDS": "0", "WEBHOOK_DRAIN_BATCH": "4"}
    # In clear text, so that the proxy sees the statements (the server may offer TLS).
    url = start_worker.env["DATABASE_URL"].replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/") + "?sslmode=disable"
    deliveries = enqueue(hook, deal, 10)
    frozen = start_worker(1, DATABASE_URL=url, DATABASE_IDLE_IN_TRANSACTION_TIMEOUT=IDLE_TIMEOUT, **env)
    try:
        # The network between that worker and the database goes silent while its transaction holds the rows:
        # the server has answered the statement and waits for the next one, which never comes.
        wait_for(proxy.frozen.is_set, timeout=60, what=f"the worker to freeze holding rows ({holding})")
        start_worker(CONCURRENCY, beat=True, **env)
        # The other worker delivers everything: the server ended the frozen session (its transaction rolled
        # back, its locks gone), and the claims that skipped the locked rows take them, after the lease for
        # the ones the frozen worker had claimed.
        check_nothing_lost(deliveries, receiver)
        wait_for(proxy.ended.is_set, what="the server to close the frozen session")
        assert IDLE_IN_TRANSACTION_ENDED in proxy.heard, bytes(proxy.heard)
        assert frozen.process.poll() is None  # still there, still frozen: nothing came from it
    finally:
        frozen.kill()
        proxy.close()


CONNECTION_SETTINGS = """
import json, socket
import django
django.setup()
from django.db import connection

with connection.cursor() as cursor:  # each setting's value, and whether this connection asked for it
    cursor.execute("SELECT name, current_setting(name), source = 'client' FROM pg_settings"
                   " WHERE name IN ('idle_in_transaction_session_timeout', 'statement_timeout')")
    shown = {name: [value, asked] for name, value, asked in cursor.fetchall()}
sock = socket.socket(fileno=connection.connection.fileno())
try:
    shown["keepalive"] = sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    shown["keepalive_idle"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE)
    shown["keepalive_interval"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL)
    shown["keepalive_count"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
    shown["user_timeout_ms"] = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)
finally:
    sock.detach()
print(json.dumps(shown))
"""


def connection_settings(start_env: dict[str, str], **env: str) -> dict:
    """What a product process's database connection has: the server's session settings and the socket's."""
    process_env = {key: value for key, value in start_env.items() if not key.startswith("DATABASE_")}
    done = subprocess.run([sys.executable, "-c", CONNECTION_SETTINGS], cwd=BASE_DIR, capture_output=True, text=True,
                          env={**process_env, "DJANGO_SETTINGS_MODULE": "config.settings", **env}, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_database_sessions_end_idle_transactions_and_sockets_keep_alive(start_worker):
    url = start_worker.env["DATABASE_URL"]
    shown = connection_settings(start_worker.env, DATABASE_URL=url)
    assert shown.pop("idle_in_transaction_session_timeout") == ["1min", True]
    assert shown.pop("statement_timeout")[1] is False  # not asked for: the server's own
    assert shown == {"keepalive": 1, "keepalive_idle": 30, "keepalive_interval": 10, "keepalive_count": 3,
                     "user_timeout_ms": 60_000}
    # Behind PgBouncer: 0 asks for nothing (the role's setting applies); what DATABASE_URL's options name wins.
    shown = connection_settings(
        start_worker.env, DATABASE_URL=f"{url}?options=-c%20statement_timeout%3D5000",
        DATABASE_IDLE_IN_TRANSACTION_TIMEOUT="0", DATABASE_STATEMENT_TIMEOUT="9",
        DATABASE_KEEPALIVES_IDLE="5", DATABASE_KEEPALIVES_INTERVAL="2", DATABASE_KEEPALIVES_COUNT="4",
    )
    assert shown.pop("idle_in_transaction_session_timeout")[1] is False
    assert shown.pop("statement_timeout") == ["5s", True]
    assert shown == {"keepalive": 1, "keepalive_idle": 5, "keepalive_interval": 2, "keepalive_count": 4,
                     "user_timeout_ms": 13_000}
