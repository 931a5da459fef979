"""Follow-ups: the work an attempt causes once its outcome is stored, in DESIGN's order.

First, for every stored outcome, what needs nothing but the outcome: usage counts and the attempt log,
endpoint health, the people to tell (e-mails as tasks of their own). Then the response captures, which
are handed to this process's capture workers (CaptureRunner), so the drain loop goes on claiming and
sending while they run: a slow expression holds neither another delivery nor another follow-up. Nothing
here can undo or hold up an outcome: a failure is logged and recorded, never raised.
"""
import atexit
import collections
import datetime
import logging
import os
import threading
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_shutdown
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from dispatcher.delivery import endpoint_health as health

from dispatcher.delivery import retry
from dispatcher.capture.apply import (
    PENDING, CaptureJob, capture_job, capture_wanted, captured_store, response_capture,
)
from dispatcher.capture.sandbox import Sandbox, sandbox
from dispatcher.delivery import counters
from dispatcher.delivery.attempt import Outcome
from dispatcher.ops.logs import attempt_log
from dispatcher.models import DeliverySource, DeliveryStatus, Endpoint
from dispatcher.ops.notifications import delivery_failed_notify
from dispatcher.ops.usage import UsageTally

logger = logging.getLogger(__name__)

INTERNAL_ERROR = {"error": "Internal processing error while capturing; see the worker log."}
CLAIM_LOST = {"error": "Not run: another worker took the delivery over before this attempt was stored; nothing "
                       "was captured."}
STOPPED = {"error": "Not run: the worker process stopped before this capture ran; nothing was captured."}
# A worker process that stops gives its captures this long to finish (a few WEBHOOK_CAPTURE_TIMEOUTs: a
# deploy should not wait for a backlog); what has not run by then is recorded as not run.
STOP_WAIT_SECONDS = 2.0  # with the drain's 1 s, inside honcho's 5 s before SIGKILL


def followups_run(*, outcomes: list[Outcome], updated: set[int], usage: UsageTally) -> None:
    """The follow-ups of stored outcomes; updated holds the deliveries that moved on (the others' claims were
    taken over: they are counted and logged, the rest is their new owner's). Endpoint health is counted once
    per destination for the batch (health.endpoint_outcomes: a statement at most, none for successes that
    change nothing). Captures last, off this thread."""
    ended: dict[int, tuple[Endpoint, list[tuple[bool, datetime.datetime]]]] = {}
    gone: list[tuple[Endpoint, datetime.datetime]] = []
    for outcome in outcomes:
        delivery, attempt = outcome.delivery, outcome.attempt
        source = _usage_source(delivery)
        usage.add(organization=delivery.organization, now=outcome.now, source=source,
                  outcome=attempt.outcome, duration_ms=attempt.duration_ms if outcome.timed else None)
        attempt_log(delivery, attempt, source)
        if delivery.pk not in updated:
            continue
        if outcome.timed and delivery.endpoint is not None and attempt.outcome in ENDED_BY_ANSWER:
            ended.setdefault(delivery.endpoint.pk, (delivery.endpoint, []))[1].append(
                (attempt.outcome == DeliveryStatus.SUCCESS, outcome.now))
            if outcome.result is not None and retry.is_gone(outcome.result):
                gone.append((delivery.endpoint, outcome.now))
        if attempt.outcome == DeliveryStatus.FAILED:
            _guarded(delivery_failed_notify, delivery, attempt.error_class)
    for endpoint, results in ended.values():
        _guarded(health.endpoint_outcomes, endpoint=endpoint, ended=results)
    for endpoint, now in gone:
        _guarded(health.endpoint_gone, endpoint=endpoint, now=now)
    for outcome in outcomes:
        _capture(outcome, claimed=outcome.delivery.pk in updated)


ENDED_BY_ANSWER = (DeliveryStatus.SUCCESS, DeliveryStatus.FAILED)  # what endpoint health counts


def capture_pending_mark(outcome: Outcome) -> None:
    """Before the attempt is stored: mark it as waiting for its capture, if it has one."""
    if _captures_of(outcome):
        outcome.attempt.captured = dict(PENDING)


def _captures_of(outcome: Outcome) -> list:
    delivery, result = outcome.delivery, outcome.result
    if result is None:
        return []
    return capture_wanted(webhook=delivery.webhook, record_id=delivery.record_id, status_code=result.status_code,
                          success=result.is_success)


def _capture(outcome: Outcome, *, claimed: bool) -> None:
    """The attempt's response capture: to the capture workers, or here when the caller holds a transaction
    (their connections could not see the attempt or the record before it commits; tests, a shell)."""
    delivery, result = outcome.delivery, outcome.result
    captures = _captures_of(outcome)
    if not captures or result is None or delivery.webhook is None or delivery.record_id is None:
        return
    job = capture_job(webhook=delivery.webhook, captures=captures, delivery_id=delivery.pk,
                      message_id=delivery.message_id, attempt_number=outcome.attempt.number,
                      record_id=delivery.record_id, body=result.body,
                      mask=outcome.request.mask if outcome.request is not None else str)
    if not claimed:  # the delivery is another worker's now: it attempts and captures again
        _store(job, dict(CLAIM_LOST), count="not_run")
    elif connection.in_atomic_block:
        capture_now(job, sandbox)
    elif (refused := capture_runner().submit(job)) is not None:
        _store(job, refused, count="not_run")


def capture_now(job: CaptureJob, own_sandbox: Sandbox, stopping: Callable[[], bool] = lambda: False) -> None:
    """Run one capture in this thread and store what it found on its attempt."""
    try:
        captured = response_capture(job=job, sandbox=own_sandbox)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        if stopping():  # its child was killed because the worker process is stopping
            _store(job, dict(STOPPED), count="not_run")
            return
        logger.exception("capture.failed", extra={
            "delivery_id": job.message_id, "organization_id": job.organization_id, "attempt": job.attempt_number})
        captured = dict(INTERNAL_ERROR)
    _store(job, captured, count=_counted_as(captured))


def _counted_as(captured: dict) -> str | None:
    """The capture's outcome for /metrics (webhook_engine_decisions_total{decision="capture"}), if notable."""
    if "error" in captured:
        return "timeout" if captured.pop("timeout", False) else "error"
    if any(isinstance(entry, dict) and "cut" in entry for entry in captured.values()):
        return "cut"
    return None


def _store(job: CaptureJob, captured: dict, *, count: str | None = None) -> None:
    if count:
        counters.count("capture", count)
    _guarded(captured_store, delivery_id=job.delivery_id, attempt_number=job.attempt_number, captured=captured)


class CaptureRunner:
    """This process's capture workers: WEBHOOK_CAPTURE_WORKERS threads, each with a child process of its own
    for the expressions and a database connection of its own (closed when it has nothing to do).

    Organizations take turns: the next capture is the oldest waiting one of the organization whose turn it
    is, and an organization has at most WEBHOOK_CAPTURE_PER_ORGANIZATION running at once. A worker that would
    otherwise be idle may run more of one organization's, but one worker always stays free for another
    organization, so a backlog of slow expressions delays another organization's capture by at most one
    capture. At most WEBHOOK_CAPTURE_MAX_WAITING captures of one organization wait (each holds its answer, up
    to WEBHOOK_MAX_RESPONSE_BYTES); more are recorded as not run.
    """

    def __init__(self, workers: int, per_organization: int, max_waiting: int) -> None:
        self.configured = (workers, per_organization, max_waiting)
        self.workers, self.per_organization = max(1, workers), max(1, per_organization)
        self.max_waiting = max(1, max_waiting)
        self.condition = threading.Condition()
        self.waiting: dict[int, collections.deque[CaptureJob]] = {}  # organization -> jobs; the order is the turns
        self.running: collections.Counter[int] = collections.Counter()
        self.stopping = False
        self.sandboxes: list[Sandbox] = []
        self.threads = [threading.Thread(target=self._work, name=f"webhook-capture-{n}", daemon=True)
                        for n in range(self.workers)]
        for thread in self.threads:
            thread.start()

    def submit(self, job: CaptureJob) -> dict | None:
        """Queue a capture; None when queued, else what to record on its attempt instead."""
        with self.condition:
            if self.stopping:
                return dict(STOPPED)
            queue = self.waiting.setdefault(job.organization_id, collections.deque())
            if len(queue) >= self.max_waiting:
                return {"error": "Not run: the organization's captures waiting in this worker process were at their "
                                 f"limit ({len(queue)}); nothing was captured."}
            queue.append(job)
            self.condition.notify()
        return None

    def wait(self, *, timeout: float, organization_id: int | None = None) -> bool:
        """Wait until no capture (of the organization, or at all) waits or runs; False if timeout came first."""
        def done() -> bool:
            if organization_id is None:
                return not self.waiting and not self.running
            return organization_id not in self.waiting and not self.running[organization_id]

        with self.condition:
            return self.condition.wait_for(done, timeout=timeout)

    def close(self, *, timeout: float) -> None:
        """Let what waits run for up to timeout seconds, then record the rest as not run and stop the workers
        (a child still evaluating is killed, so it cannot outlive the worker)."""
        self.wait(timeout=timeout)
        with self.condition:
            self.stopping = True
            left = [job for queue in self.waiting.values() for job in queue]
            self.waiting.clear()
            self.condition.notify_all()
        for sandbox_ in list(self.sandboxes):
            sandbox_.kill()
        for job in left:
            _store(job, dict(STOPPED), count="not_run")

    def _take(self) -> CaptureJob | None:
        """The next capture a free worker runs (called with the condition held)."""
        free = self.workers - sum(self.running.values())
        for lending in (False, True):
            if lending and free < 2:  # one worker is kept free for the other organizations
                return None
            for organization_id, queue in self.waiting.items():
                if lending or self.running[organization_id] < self.per_organization:
                    job = queue.popleft()
                    del self.waiting[organization_id]
                    if queue:  # to the back of the line: the other organizations go first
                        self.waiting[organization_id] = queue
                    self.running[organization_id] += 1
                    return job
        return None

    def _work(self) -> None:
        own_sandbox = Sandbox()
        self.sandboxes.append(own_sandbox)
        try:
            while (job := self._next()) is not None:
                try:
                    close_old_connections()
                    capture_now(job, own_sandbox, lambda: self.stopping)
                    counters.counters_flush()  # the loop that claimed it may have ended already
                except Exception:
                    logger.exception("capture.worker_failed", extra={
                        "delivery_id": job.message_id, "organization_id": job.organization_id,
                        "attempt": job.attempt_number})
                finally:
                    with self.condition:
                        self.running[job.organization_id] -= 1
                        if not self.running[job.organization_id]:
                            del self.running[job.organization_id]
                        idle = not self.waiting
                        self.condition.notify_all()
                    if idle:  # an idle worker holds no database connection
                        connection.close()
        finally:
            own_sandbox.stop()
            connection.close()

    def _next(self) -> CaptureJob | None:
        with self.condition:
            while not self.stopping:
                if (job := self._take()) is not None:
                    return job
                self.condition.wait()
        return None


_runner: CaptureRunner | None = None
_runner_pid = 0
_runner_lock = threading.Lock()


def capture_runner() -> CaptureRunner:
    """This process's capture workers (threads do not survive a fork: a pool child starts its own)."""
    global _runner, _runner_pid
    with _runner_lock:
        wanted = (settings.WEBHOOK_CAPTURE_WORKERS, settings.WEBHOOK_CAPTURE_PER_ORGANIZATION,
                  settings.WEBHOOK_CAPTURE_MAX_WAITING)
        if _runner is None or _runner_pid != os.getpid() or _runner.stopping \
                or _runner.configured != wanted:
            if _runner is not None and _runner_pid == os.getpid() and not _runner.stopping:
                _runner.close(timeout=STOP_WAIT_SECONDS)
            _runner, _runner_pid = CaptureRunner(*wanted), os.getpid()
        return _runner


def captures_wait(*, timeout: float, organization_id: int | None = None) -> bool:
    """Wait for this process's captures (of one organization, or all) to be done; False on timeout."""
    with _runner_lock:
        runner = _runner if _runner_pid == os.getpid() else None
    return runner is None or runner.wait(timeout=timeout, organization_id=organization_id)


@atexit.register
def captures_stop() -> None:
    """A worker process that stops (warm shutdown, a pool child replaced) gives its captures
    STOP_WAIT_SECONDS, then records the ones that have not run as such. A process killed outright
    leaves its attempts marked pending (capture.PENDING)."""
    with _runner_lock:
        runner = _runner if _runner_pid == os.getpid() else None
    if runner is not None and not runner.stopping:
        try:
            runner.close(timeout=STOP_WAIT_SECONDS)
        except Exception:  # exiting anyway: say why, and go on
            logger.exception("capture.stop_failed")


# A Celery pool child ends with os._exit, which skips atexit: its own shutdown signal is where it stops.
worker_process_shutdown.connect(lambda **kwargs: captures_stop(), weak=False,
                                dispatch_uid="dispatcher.captures_stop")


def _usage_source(delivery) -> str:
    """Attempts after a resend count as replays in the usage chart."""
    return DeliverySource.REPLAY if delivery.resent_at else delivery.source


def _guarded(function: Callable, *args, **kwargs) -> None:
    try:
        with transaction.atomic():
            function(*args, **kwargs)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.exception("deliver.followup_failed", extra={"function": getattr(function, "__name__", str(function))})
