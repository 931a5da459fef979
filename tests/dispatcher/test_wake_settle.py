"""An enqueuer asks whether a drain loop keeps up inside its own transaction (no round trip after the commit),
and a loop that stops listening waits for every transaction that saw it keep up before its last claim, so a
commit that saw the AWAKE lock is never left to the pump (delivery/wakeups.py). Real sessions and committed
transactions; the wait is observed in pg_locks, never timed."""
import threading

import psycopg
import pytest
from django.db import connection, transaction

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import wakeups
from dispatcher.models import Delivery
from tests.e2e.conftest import wait_for
from tests.factories import webhook_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture(autouse=True)
def on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the AWAKE and SETTLE locks are PostgreSQL advisory locks")


@pytest.fixture
def hook(modules):
    return webhook_create(module=modules["Deals"], name="Settle", url="https://hooks.example.com/in",
                          entity=[("deal", "${Deals.Deal Name}")])


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Settle"})


@pytest.fixture
def session():
    """Another session of the test database (a loop's, or an observer's), in autocommit."""
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres",
                         password=db["PASSWORD"] or None, dbname=db["NAME"], autocommit=True) as other:
        yield other


@pytest.fixture
def woken(monkeypatch):
    """The broker wake-ups sent (the coalescer's, recorded instead of sent)."""
    sent: list[int] = []
    monkeypatch.setattr(wakeups._coalescer, "wake", sent.append)
    return sent


def settle_waiters(session) -> int:
    return session.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
                           "AND objid = %s::oid AND NOT granted", wakeups.SETTLE_LOCK).fetchone()[0]


def test_an_enqueue_that_saw_a_loop_keep_up_sends_no_broker_message(hook, deal, session, woken):
    session.execute("SELECT pg_advisory_lock_shared(%s, %s)", wakeups.AWAKE_LOCK)  # a loop that keeps up
    with transaction.atomic():
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
        # The question was asked in the transaction, which now holds the SETTLE lock: no loop may take it.
        assert not session.execute("SELECT pg_try_advisory_lock(%s, %s)", wakeups.SETTLE_LOCK).fetchone()[0]
    assert woken == []
    session.execute("SELECT pg_advisory_unlock_shared(%s, %s)", wakeups.AWAKE_LOCK)
    with transaction.atomic():
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)  # nobody awake: a worker must be woken
        # and a transaction that saw no loop holds nothing a closing loop would wait for
        assert session.execute("SELECT pg_try_advisory_lock(%s, %s)", wakeups.SETTLE_LOCK).fetchone()[0]
        session.execute("SELECT pg_advisory_unlock(%s, %s)", wakeups.SETTLE_LOCK)
    assert len(woken) == 1


def test_a_loop_that_stops_listening_claims_only_after_the_enqueuers_that_saw_it(hook, deal, session, woken):
    listener = wakeups.Listener.open()  # the loop, on this thread's connection, keeping up
    assert listener is not None
    seen, release, made = threading.Event(), threading.Event(), []

    def enqueuer():  # its own connection; it saw the loop keep up and has not committed yet
        try:
            with transaction.atomic():
                made.append(delivery_engine.delivery_enqueue(webhook=hook, record=deal).pk)
                seen.set()
                release.wait(60)
        finally:
            connection.close()

    def releaser(waited: list[bool]):  # commits the enqueuer once the loop is seen waiting for it
        waited.append(bool(wait_for(lambda: settle_waiters(session) == 1, timeout=60,
                                    what="the loop to wait for the enqueuer")))
        release.set()

    waited: list[bool] = []
    threads = [threading.Thread(target=enqueuer), threading.Thread(target=releaser, args=(waited,))]
    threads[0].start()
    try:
        assert seen.wait(60)
        threads[1].start()
        listener.close()  # lets go of the AWAKE lock, stops listening, waits for the enqueuer's commit
        assert waited == [True]
        # What the loop's last claim would read now: the enqueuer's delivery, committed.
        assert Delivery.objects.filter(pk__in=made).count() == 1
    finally:
        release.set()
        for thread in threads:
            thread.join()
    assert woken == []  # it left the delivery to the loop that kept up


def test_a_transaction_left_open_keeps_the_loop_only_so_long(hook, deal, session, monkeypatch, caplog):
    monkeypatch.setattr(wakeups, "SETTLE_WAIT_SECONDS", 0.2)
    session.execute("BEGIN")
    session.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", wakeups.SETTLE_LOCK)  # an enqueuer, still open
    try:
        assert not wakeups.enqueuers_settled()
    finally:
        session.execute("ROLLBACK")
    assert "drain.enqueuers_unsettled" in caplog.text
    assert wakeups.enqueuers_settled()


def test_while_a_loop_waits_to_settle_new_enqueuers_wake_a_worker(hook, deal, session, woken):
    """A loop waiting for SETTLE is ending: an enqueuer that cannot take the lock at once asks the broker,
    even though the AWAKE lock is still held (by this loop or another)."""
    session.execute("SELECT pg_advisory_lock_shared(%s, %s)", wakeups.AWAKE_LOCK)
    session.execute("SELECT pg_advisory_lock(%s, %s)", wakeups.SETTLE_LOCK)  # a loop settling
    with transaction.atomic():
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    assert len(woken) == 1


def test_a_rolled_back_enqueue_notifies_nobody_and_wakes_nobody(hook, deal, session, woken):
    session.execute(f"LISTEN {wakeups.CHANNEL}")
    with pytest.raises(RuntimeError), transaction.atomic():
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
        raise RuntimeError("the record change failed")
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)  # a committed one, to have something to see
    notifications = list(session.notifies(timeout=5, stop_after=1))
    assert len(notifications) == 1 and len(woken) == 1
    assert list(session.notifies(timeout=0)) == []


def test_a_loop_that_never_kept_up_closes_without_waiting(session, monkeypatch, caplog):
    """No enqueuer can have left work to a loop that never held the AWAKE lock (a backlog's drain)."""
    monkeypatch.setattr(wakeups, "SETTLE_WAIT_SECONDS", 0.2)
    session.execute("BEGIN")
    session.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", wakeups.SETTLE_LOCK)  # an enqueuer, still open
    try:
        listener = wakeups.Listener.open(awake=False)
        assert listener is not None
        listener.close()
        assert "drain.enqueuers_unsettled" not in caplog.text
        listener = wakeups.Listener.open(awake=True)
        listener.close()
        assert "drain.enqueuers_unsettled" in caplog.text
    finally:
        session.execute("ROLLBACK")
