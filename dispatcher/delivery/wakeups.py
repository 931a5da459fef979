"""Wake-ups: how drain loops hear that deliveries are due. The database is the source of truth; a wake-up
lost only delays a delivery (the pump finds it within WEBHOOK_PUMP_INTERVAL), never loses it.

- **A commit that made deliveries due now** (deliveries_wake, once per transaction however many it made):
  after the commit, on PostgreSQL, one statement sends a ``pg_notify``, which reaches every drain loop that
  listens (a loop that is awake: delivery/run.py), and asks whether one keeps up (holds the AWAKE lock). A
  broker message (``dispatcher.deliver``, coalesced per process: _Coalescer) then starts a drain in a
  worker process, unless a listening loop keeps up and the commit made at most a batch: that loop takes
  them, and a loop that stops listening claims once more after letting go of the lock, so a commit that
  saw the lock is never left to the pump. A transaction rolled back notifies nobody.
- **A loop that listens** (Listener): LISTEN on its own connection, and the shared AWAKE lock while it
  keeps up (room for more, nothing due left behind by its last claim); it waits for a notification on
  the connection's socket instead of polling.
- **Other databases** (SQLite, the embedded default), and PostgreSQL through a pooler in transaction mode
  (DATABASE_POOLER=transaction: LISTEN and the session lock would stay with whichever server session ran
  them): no notifications, the broker message for every commit, as before; a loop does not linger
  (delivery/run.py).
- **The pump** (``dispatcher.pump``, celery beat): ``dispatcher.drain`` wake-ups for what is due (retries,
  deliveries given back, wake-ups lost, leases run out); **delivery_wake_at**: a later wake-up for a
  delivery waiting for a rate slot.
"""
import datetime
import functools
import logging
import math
import threading
import time
from collections.abc import Sequence

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from dispatcher.models import Delivery

logger = logging.getLogger(__name__)

CHANNEL = "dispatcher_deliveries_due"  # the NOTIFY channel (per database)
# The advisory lock a listening loop holds shared while it keeps up (two int4 keys: pg_locks shows them as
# classid and objid, objsubid 2). Any fixed pair no other code of the database uses.
AWAKE_LOCK = (0x77686B00, 27)
LATER_MAX_SECONDS = 300  # a longer wait is left to the pump rather than held as an ETA task in a worker
WAKE_COALESCE_SECONDS = 0.02  # short against a receiver's answer, long against one API call on two cores


def sessions_kept() -> bool:
    """Whether this connection keeps a PostgreSQL session of its own, which LISTEN and the AWAKE lock need:
    not through a pooler in transaction mode, which lends a server session per transaction."""
    return connection.vendor == "postgresql" and settings.DATABASE_POOLER != "transaction"


def deliveries_wake(ids: list[int]) -> None:
    """These deliveries were made due now in the caller's transaction: once it commits, notify listening
    loops and send the broker wake-ups unless a listening loop keeps up (_CommitWake)."""
    if not ids:
        return
    pending = _pending_wake()
    if pending is not None:
        pending.ids.extend(ids)
        return
    pending = _CommitWake()
    pending.ids.extend(ids)
    transaction.on_commit(pending)  # outside a transaction: at once


class _CommitWake:
    """The wake-ups of one transaction, sent once when it commits (found again by _pending_wake, so a
    transaction that enqueues ten times notifies once and asks once)."""

    def __init__(self) -> None:
        self.ids: list[int] = []

    def __call__(self) -> None:
        many = len(self.ids) > settings.WEBHOOK_DRAIN_BATCH  # more than one loop claims at once: wake others too
        if notify_and_ask() and not many:
            return
        for first in self.ids[::settings.WEBHOOK_DRAIN_BATCH]:  # a woken worker claims a whole batch
            _coalescer.wake(first)


def _pending_wake() -> _CommitWake | None:
    """The wake-up this transaction registered already, if any. Django drops it with a savepoint rolled
    back: the next enqueue then registers one again."""
    if not connection.in_atomic_block:
        return None
    for entry in connection.run_on_commit:  # (savepoint ids, function, robust)
        if isinstance(entry[1], _CommitWake):
            return entry[1]
    return None


_AWAKE_SQL = ("EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM "
              "pg_database WHERE datname = current_database()) AND classid = %s::oid AND objid = %s::oid "
              "AND objsubid = 2 AND granted)")  # pg_locks lists the locks of every database of the server


def notify_and_ask() -> bool:
    """After a commit that made deliveries due: notify the listening loops and ask whether one keeps up,
    in one statement (one round trip, in autocommit; the commit is visible to whoever the notification
    wakes). Any doubt (another database, a pooler, an error) says no: the broker is asked instead."""
    return _ask(f"SELECT pg_notify(%s, ''), {_AWAKE_SQL}", [CHANNEL, *AWAKE_LOCK])


def loop_awake() -> bool:
    """Whether a drain loop listens and keeps up now (holds the AWAKE lock), on PostgreSQL."""
    return _ask(f"SELECT NULL, {_AWAKE_SQL}", list(AWAKE_LOCK))


def _ask(sql: str, params: Sequence[str | int]) -> bool:
    if not sessions_kept() or connection.in_atomic_block:
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return bool(cursor.fetchone()[1])
    except DatabaseError:
        logger.warning("deliver_wake.awake_check_failed", exc_info=True)
        return False


class Listener:
    """A drain loop's ear on PostgreSQL: LISTEN on the loop's own connection (Django's, in autocommit) and
    the AWAKE lock while the loop keeps up. Closed (lock let go, UNLISTEN) when the loop ends: a connection
    left listening between tasks would gather notifications nobody reads."""

    def __init__(self) -> None:
        self.pg = connection.connection  # the psycopg connection the LISTEN belongs to
        self.awake = False

    @classmethod
    def open(cls, *, awake: bool = True) -> "Listener | None":
        """Listen, and hold the AWAKE lock if the loop keeps up (awake); None where notifications cannot reach
        this loop (another database, a transaction-mode pooler, or inside a transaction, which holds them back
        until it ends)."""
        if not sessions_kept() or connection.in_atomic_block:
            return None
        with connection.cursor() as cursor:
            cursor.execute(f"LISTEN {CHANNEL}")
        listener = cls()
        listener.keep_up(awake)
        return listener

    def alive(self) -> bool:
        """Still on the connection it listens on (a connection opened again since does not listen)."""
        return self.pg is not None and connection.connection is self.pg

    def keep_up(self, awake: bool) -> None:
        """Say whether this loop keeps up (holds the lock: enqueuers then leave new work to it) or not (a
        broker wake-up then starts another loop). One statement, only when it changes."""
        if awake == self.awake or not self.alive():
            return
        function = "pg_advisory_lock_shared" if awake else "pg_advisory_unlock_shared"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {function}(%s, %s)", list(AWAKE_LOCK))
        self.awake = awake

    def notified(self, timeout: float = 0.0) -> bool:
        """Whether a notification came (waiting up to timeout seconds on the connection's socket for the
        first); those that came with it are taken too: one claim answers them all."""
        if not self.alive():
            return False
        got = False
        with connection.wrap_database_errors:  # a connection lost while waiting fails as a Django DatabaseError
            for _ in self.pg.notifies(timeout=max(timeout, 0.0), stop_after=1):
                got = True
            if got:
                for _ in self.pg.notifies(timeout=0):
                    pass
        return got

    def close(self) -> None:
        """Let go of the lock and stop listening (best effort: a broken connection has lost both already)."""
        if not self.alive():
            return
        try:
            self.keep_up(False)
            with connection.cursor() as cursor:
                cursor.execute(f"UNLISTEN {CHANNEL}")
            self.notified(0.0)  # what arrived meanwhile was for this loop
        except DatabaseError:
            logger.warning("drain.listener_close_failed", exc_info=True)
        finally:
            self.pg = None


def deliveries_pump(*, now: datetime.datetime | None = None) -> int:
    """Periodic: send as many drain wake-ups as the due work needs (bounded); returns how many."""
    cap = settings.WEBHOOK_PUMP_MAX_DRAINS * settings.WEBHOOK_DRAIN_BATCH
    due = Delivery.objects.due(now or timezone.now())[:cap].count()
    drains = min(math.ceil(due / settings.WEBHOOK_DRAIN_BATCH), settings.WEBHOOK_PUMP_MAX_DRAINS)
    for _ in range(drains):
        drain_wake()
    return drains


def drain_wake() -> None:
    """A wake-up for whatever is due; expiring, so wake-ups cannot pile up in the broker while workers are busy."""
    current_app.send_task("dispatcher.drain", expires=settings.WEBHOOK_PUMP_INTERVAL * 5)


class _Coalescer:
    """At most one broker wake-up per WAKE_COALESCE_SECONDS per process: the first is sent at once, those that
    follow within the window become one ``dispatcher.drain`` at its end (a drain claims whatever is due).
    A process that commits one event at a time (the API) then pays for a broker message per window, not per
    event; a wake-up lost with the process is found by the pump."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent_at = -math.inf
        self.timer: threading.Timer | None = None

    def wake(self, delivery_id: int) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.sent_at >= WAKE_COALESCE_SECONDS and self.timer is None:
                self.sent_at = now
                send_now = True
            else:
                send_now = False
                if self.timer is None:
                    self.timer = threading.Timer(max(self.sent_at + WAKE_COALESCE_SECONDS - now, 0.0), self._trail)
                    self.timer.daemon = True
                    self.timer.start()
        if send_now:
            _send(delivery_id)

    def _trail(self) -> None:
        with self.lock:
            self.timer, self.sent_at = None, time.monotonic()
        try:
            drain_wake()
        except Exception:  # the pump will find the work
            logger.warning("deliver_wake.drain_failed", exc_info=True)


_coalescer = _Coalescer()


def delivery_wake_at(delivery_id: int, when: datetime.datetime) -> None:
    """On commit, a wake-up for this delivery at a later moment (rate limits), if the wait is short; the
    pump finds the others."""
    wait = (when - timezone.now()).total_seconds()
    if wait <= LATER_MAX_SECONDS:
        transaction.on_commit(functools.partial(_send, delivery_id, countdown=max(wait, 0)))


def _send(delivery_id: int, countdown: float | None = None) -> None:
    try:
        current_app.send_task("dispatcher.deliver", args=[delivery_id], countdown=countdown)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # the broker being down only delays the delivery: the pump will find it
        logger.warning("deliver_wake.failed", extra={"delivery_pk": delivery_id}, exc_info=True)
