"""A drain loop that is already awake (issue 27): a worker's loop lingers after its last delivery, woken by
LISTEN/NOTIFY when a commit makes deliveries due, so the next delivery costs a few statements and no task
start; it ends after its linger, at once when the worker is asked to stop, and never leaves a delivery
committed while it listened to the pump. Real loops in a thread (or in the test's own thread, to count its
statements), a real receiver, committed transactions; outcomes are asserted, never timings.

PostgreSQL only where notifications are the subject: inside a transaction, or on another database, a loop
does not listen and so does not linger (the last test)."""
import datetime
import re
import threading

import psycopg
import pytest
from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import stopping, wakeups
from dispatcher.models import Delivery, DeliveryStatus
from tests.e2e.conftest import wait_for
from tests.factories import webhook_create

transactional = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY: an awake loop is a PostgreSQL feature (elsewhere a drain ends when idle)")


@pytest.fixture
def hook(receiver, modules):
    receiver.expect_request("/hook").respond_with_data("ok")
    return webhook_create(module=modules["Deals"], name="Awake", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")])


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Awake"})


def status_of(delivery: Delivery) -> str:
    return Delivery.objects.filter(pk=delivery.pk).values_list("status", flat=True).get()


class Statements:
    """Every statement the connection of the thread that installs it runs, with the rows it returned
    (connection.execute_wrapper)."""

    def __init__(self) -> None:
        self.run: list[tuple[str, int]] = []

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        self.run.append((" ".join(sql.split()), context["cursor"].rowcount))
        return result

    def from_claim_to_stored_outcome(self) -> list[str]:
        """From the last claim that claimed something to the store of its outcome: the last statement that
        updates deliveries and is not a claim (claims are WITH candidates … / WITH claimed …)."""
        claims = [n for n, (sql, rows) in enumerate(self.run) if sql.startswith("WITH") and " AS t SET " in sql
                  and rows > 0]
        stores = [n for n, (sql, _) in enumerate(self.run)
                  if not sql.startswith("WITH") and re.search(r'UPDATE "dispatcher_delivery" SET "status"', sql)]
        assert claims and stores and claims[-1] < stores[-1], "\n".join(sql[:200] for sql, _ in self.run)
        return [sql for sql, _ in self.run[claims[-1]:stores[-1] + 1]]


class AwakeDrain:
    """deliveries_drain as a worker runs it (lingering), in a thread with its own connection."""

    def __init__(self, linger_seconds: float = 120.0) -> None:
        self.wind_down = threading.Event()
        self.errors: list[BaseException] = []
        self.attempted: list[int] = []
        self.thread = threading.Thread(target=self._run, args=(linger_seconds,), daemon=True)
        self.thread.start()

    def _run(self, linger_seconds: float) -> None:
        try:
            self.attempted.append(delivery_engine.deliveries_drain(
                batch=10, budget_seconds=linger_seconds, linger_seconds=linger_seconds, wind_down=self.wind_down))
        except BaseException as error:  # noqa: BLE001 - reported by join()
            self.errors.append(error)
        finally:
            connection.close()

    def join(self, timeout: float = 60) -> int:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the drain never ended"
        assert self.errors == []
        return self.attempted[0]


@transactional
def test_a_lone_delivery_to_an_awake_loop_costs_at_most_six_statements(on_postgresql, hook, deal, receiver):
    """The loop runs in this thread (its statements counted); another thread waits until it is awake after a
    first delivery, then makes one more, as the API makes one event. From its claim to its stored outcome
    that delivery costs at most 6 statements: claimed and loaded in one, then the quota, the attempt and
    the outcome."""
    warm = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    made: list[Delivery] = []
    wind_down, errors = threading.Event(), []

    def one_more_once_awake() -> None:
        try:
            wait_for(lambda: status_of(warm) == DeliveryStatus.SUCCESS and wakeups.loop_awake(), timeout=60,
                     what="the loop to send the first delivery and listen")
            made.append(delivery_engine.delivery_enqueue(webhook=hook, record=deal))
            wait_for(lambda: status_of(made[0]) == DeliveryStatus.SUCCESS, timeout=60, what="the lone delivery")
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)
        finally:
            wind_down.set()
            connection.close()

    statements = Statements()
    helper = threading.Thread(target=one_more_once_awake)
    helper.start()
    with connection.execute_wrapper(statements):
        attempted = delivery_engine.deliveries_drain(batch=10, budget_seconds=120, linger_seconds=120,
                                                     wind_down=wind_down)
    helper.join(60)
    assert errors == []
    assert attempted == 2 and len(receiver.log) == 2
    window = statements.from_claim_to_stored_outcome()
    assert len(window) <= 6, f"{len(window)} statements:\n" + "\n".join(sql[:300] for sql in window)
    assert not wakeups.loop_awake()  # it let go when it ended


@transactional
def test_a_lingering_loop_is_woken_by_the_commit_and_ends_after_its_linger(on_postgresql, hook, deal, receiver):
    """After its last delivery the loop listens; a delivery committed then is sent by it (no worker, no
    broker message needed); once nothing comes for its linger it lets go and ends."""
    first = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    drain = AwakeDrain(linger_seconds=1.0)
    wait_for(lambda: status_of(first) == DeliveryStatus.SUCCESS and wakeups.loop_awake(), timeout=60,
             what="the loop to listen after its first delivery")
    second = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    wait_for(lambda: status_of(second) == DeliveryStatus.SUCCESS, timeout=60, what="the lingering loop to send it")
    assert drain.join() == 2  # it ended by itself, once it had lingered with nothing to do
    assert not wakeups.loop_awake()
    assert [request.headers["webhook-id"] for request, _ in receiver.log] == [
        Delivery.objects.get(pk=first.pk).message_id, Delivery.objects.get(pk=second.pk).message_id]


@transactional
def test_a_worker_asked_to_stop_ends_a_lingering_loop(on_postgresql, hook, deal):
    first = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    drain = AwakeDrain(linger_seconds=300)
    try:
        wait_for(lambda: status_of(first) == DeliveryStatus.SUCCESS and wakeups.loop_awake(), timeout=60,
                 what="the loop to linger")
        stopping.stop_request()
        assert drain.join(timeout=60) == 1  # long before its 300 s linger
    finally:
        # The next task of this process clears a stop that was not the worker's shutdown (stopping.py).
        stopping.task_started(task_id="after-the-stop", name="dispatcher.drain")
        stopping.task_ended(task_id="after-the-stop")
        drain.wind_down.set()
    assert not wakeups.loop_awake()


@transactional
def test_work_made_due_without_a_notification_is_still_claimed_before_the_loop_ends(on_postgresql, hook, deal):
    """A retry whose time comes is not notified: a lingering loop claims it at its next look (every
    LISTENING_CLAIM_SECONDS) or, at the latest, in the claim it makes after it stopped listening."""
    first = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    drain = AwakeDrain()
    wait_for(lambda: status_of(first) == DeliveryStatus.SUCCESS and wakeups.loop_awake(), timeout=60,
             what="the loop to linger")
    later = delivery_engine.delivery_enqueue(webhook=hook, record=deal,
                                             due_at=timezone.now() + datetime.timedelta(days=1))  # no wake-up
    Delivery.objects.filter(pk=later.pk).update(due_at=timezone.now())  # its time has come, silently
    drain.wind_down.set()
    assert drain.join() == 2
    assert status_of(later) == DeliveryStatus.SUCCESS


@pytest.fixture
def broker_queue():
    """The number of messages waiting in the deliveries queue of this test's Redis broker."""
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("counts the broker's messages in Redis")

    def waiting() -> int:
        with current_app.connection_for_write() as broker:
            return broker.default_channel.queue_declare(queue="deliveries").message_count

    with current_app.connection_for_write() as broker:
        broker.default_channel.queue_purge("deliveries")
    return waiting


@transactional
def test_no_broker_message_while_a_loop_keeps_up_and_one_once_none_is_awake(on_postgresql, hook, deal, broker_queue):
    first = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    drain = AwakeDrain()
    wait_for(lambda: status_of(first) == DeliveryStatus.SUCCESS and wakeups.loop_awake(), timeout=60,
             what="the loop to linger")
    with current_app.connection_for_write() as broker:
        broker.default_channel.queue_purge("deliveries")  # the first delivery's own wake-up
    second = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    wait_for(lambda: status_of(second) == DeliveryStatus.SUCCESS, timeout=60, what="the awake loop to send it")
    assert broker_queue() == 0  # the awake loop took it: no task was started for it
    drain.wind_down.set()
    drain.join()
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)  # no loop awake now: a worker must be woken
    wait_for(lambda: broker_queue() >= 1, timeout=30, what="a broker wake-up")


@transactional
def test_a_listener_holds_the_awake_lock_while_its_loop_keeps_up(on_postgresql):
    listener = wakeups.Listener.open()
    assert listener is not None and wakeups.loop_awake()
    listener.keep_up(False)  # its last claim left work behind, or it has no room: enqueuers wake workers
    assert not wakeups.loop_awake()
    listener.keep_up(True)
    assert wakeups.loop_awake()
    listener.close()
    assert not wakeups.loop_awake()


@transactional
def test_a_loop_awake_on_another_database_of_the_server_does_not_count(on_postgresql):
    """pg_locks lists every database's locks: a worker of another installation on the same server keeps up
    with its own deliveries, not with these."""
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"] or "postgres",
                         password=db["PASSWORD"] or None, dbname="postgres", autocommit=True) as elsewhere:
        elsewhere.execute("SELECT pg_advisory_lock_shared(%s, %s)", wakeups.AWAKE_LOCK)
        assert not wakeups.loop_awake()


@transactional
def test_a_listener_hears_each_commit_once_however_many_deliveries_it_made(on_postgresql, hook, deal):
    listener = wakeups.Listener.open()
    assert listener is not None
    try:
        def enqueue_three_in_one_transaction() -> None:
            try:
                with transaction.atomic():
                    for _ in range(3):
                        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
            finally:
                connection.close()

        committer = threading.Thread(target=enqueue_three_in_one_transaction)
        committer.start()
        committer.join(60)
        assert listener.notified(timeout=60)
        assert not listener.notified()  # one notification for the transaction
    finally:
        listener.close()


@pytest.mark.django_db
def test_nothing_is_heard_inside_a_transaction(hook, deal):
    """A transaction holds notifications back until it ends (and other databases have none): a loop run in
    one does not listen, so it does not linger either."""
    assert wakeups.Listener.open() is None
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    assert delivery_engine.deliveries_drain(batch=10, budget_seconds=300, linger_seconds=300) == 1
    assert status_of(delivery) == DeliveryStatus.SUCCESS


@transactional
def test_a_loop_near_its_end_wakes_another_instead_of_claiming_once_more(on_postgresql, hook, deal, broker_queue,
                                                                          settings):
    """A request started by the last claim of a loop whose claims end soon could outlive the drain task's time
    limit: such a loop does not claim when it stops listening, it sends a broker wake-up for whatever is due
    (nothing committed while it listened is left to the pump)."""
    settings.WEBHOOK_TOTAL_TIMEOUT = 600  # longer than the budget and its tail: the loop is closing from its start
    first = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    with current_app.connection_for_write() as broker:
        broker.default_channel.queue_purge("deliveries")  # the first delivery's own wake-up
    drain = AwakeDrain()
    wait_for(lambda: status_of(first) == DeliveryStatus.SUCCESS and wakeups.loop_awake(), timeout=60,
             what="the loop to listen after its first delivery")
    drain.wind_down.set()
    assert drain.join() == 1
    assert broker_queue() == 1  # its last act: a wake-up instead of a claim
