"""A worker asked to stop: its drain loops hand back what they hold within a few seconds, and it exits.

Ctrl-C on command 1 makes honcho send SIGTERM to the worker's whole process group and SIGKILL it 5 s later
(honcho's KILL_WAIT); systemd does the same, a container runtime signals the main process only. A drain
(``dispatcher.drain``, ``dispatcher.deliver``) runs for up to a minute, so a pool process running one either
died of that SIGTERM at once, its deliveries left Dispatched until their leases ran out, or the warm
shutdown waited for the drain until the SIGKILL. Now:

- **A pool process running a drain** notes the request (SIGTERM, or a note from its main process); the
  drain loop claims nothing more, stores what ends within ``STOP_GRACE_SECONDS`` and gives the rest back,
  claimable again at once (a request it gave back may still reach the receiver, and is sent again with the
  same webhook-id: at least once). The task returns, and the process leaves when the pool closes.
- **A pool process waiting for a job** stays until the main process closes the pool in order. It used to
  exit on the group's SIGTERM while the main process was still running, and the main process was then
  found waiting at exit for the pool's job-queue lock until the SIGKILL (two Ctrl-Cs of an idle command 1
  in three; the same when the pool processes left by an exception).
- **A pool process running another task**, or any pool process once the main process stops cold (SIGQUIT,
  a second Ctrl-C: it then terminates its pool), exits by an exception at once, as before, which releases
  its locks on the way out (the broker gives the task again: tasks are acknowledged late).
- **The main process** (``worker_shutting_down``: SIGTERM, or Ctrl-C in a terminal) notes the request for
  a drain it runs itself (solo pool) and sends a note (``STOP_NOTE``) to its pool processes (prefork),
  which a container runtime's SIGTERM never reaches, and which may be given a drain task after the stop
  (Celery's consumer takes one more batch of messages as it stops). A note and not SIGTERM, so that it is
  never taken for a second terminate signal.

config/celery.py connects these to Celery's signals; ``DrainLoop.run`` asks ``stop_requested()``.
"""
import logging
import os
import signal
import threading
from typing import Any

import billiard.process  # Celery's fork of multiprocessing: a prefork worker's pool processes are its children

logger = logging.getLogger(__name__)

# How long a stopping drain waits for its requests in flight to end before giving them back: well inside
# honcho's 5 s (KILL_WAIT), leaving the worker time to close its pool and its broker connection.
STOP_GRACE_SECONDS = 1.0
DRAIN_TASKS = frozenset({"dispatcher.drain", "dispatcher.deliver"})
# From a main process to its pool processes, "stop your drains": a real-time signal, which nothing sends by
# accident and which billiard leaves alone (it replaces the handlers of SIGTERM, SIGUSR1/2 and the like).
# Without real-time signals (macOS), no note is sent: pool processes hear of a stop from the group's SIGTERM.
_REAL_TIME: int | None = getattr(signal, "SIGRTMIN", None)
STOP_NOTE = None if _REAL_TIME is None else _REAL_TIME + 1
COLD_NOTE = None if _REAL_TIME is None else _REAL_TIME + 2  # for a cold shutdown: leave when the pool terminates

_stop = threading.Event()
_running: dict[str, str] = {}  # task id -> task name, of the tasks this process runs now
_pool_process = False  # this is a prefork pool process (worker_process_init ran here)
_exiting = False  # a pool process on its way out: further signals change nothing
_cold = False  # the main process stops cold (SIGQUIT, a second Ctrl-C): SIGTERM means "exit now"
_noted = False  # the main process said it stops (its note): the stop holds for every later task


def stop_requested() -> bool:
    return _stop.is_set()


def stop_request() -> None:
    _stop.set()


def pool_process_started() -> None:
    """Celery's worker_process_init, in a new pool process. SIGTERM is ignored until this process's handler
    can be set: billiard sets its own after this signal unless SIGTERM is ignored, and a Python handler can
    only be set from this process's main thread, when a task starts or the main process's note arrives."""
    global _pool_process
    _pool_process = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for note in (STOP_NOTE, COLD_NOTE):
        if note is not None:
            signal.signal(note, _stop_noted)


def task_started(*, task_id: str, name: str) -> None:
    """Celery's task_prerun, in the process that runs the task."""
    _running[task_id] = name
    if _stop.is_set() and not _noted and not _exiting:
        # A SIGTERM to this process alone (revoke --terminate) stopped the task it ran, not the worker: a task
        # given to it now means the worker goes on. A shutdown's note sets the stop again.
        _stop.clear()
    _sigterm_handler_set()


def task_ended(*, task_id: str) -> None:
    _running.pop(task_id, None)


def _sigterm_handler_set() -> None:
    if _pool_process and signal.getsignal(signal.SIGTERM) is not _pool_process_sigterm:
        signal.signal(signal.SIGTERM, _pool_process_sigterm)


def _stop_noted(signum: int, frame: Any) -> None:
    global _cold, _noted
    _noted = True
    stop_request()
    _cold = _cold or signum == COLD_NOTE
    _sigterm_handler_set()  # handlers run in the main thread, where a handler may be set


def _pool_process_sigterm(signum: int, frame: Any) -> None:
    global _exiting
    stop_request()
    if _exiting:
        return
    drain = any(name in DRAIN_TASKS for name in _running.values())
    if not _cold and (drain or not _running):
        return  # a drain hands back what it holds; a process waiting for a job stays until the pool closes
    _exiting = True
    raise SystemExit(0)  # unlike the signal's default action, this releases the pool's locks on the way out


def worker_shutting_down(*, how: str) -> None:
    """The main process begins a warm or cold shutdown: drains it runs itself stop, and its pool processes
    are told to stop theirs."""
    stop_request()
    # Pool processes only (billiard names them "…PoolWorker-N"): an embedded beat (worker -B) is a child too,
    # and has no handler for the note.
    children = [child.pid for child in billiard.process.active_children() if child.pid and "PoolWorker" in child.name]
    note = COLD_NOTE if how == "Cold" else STOP_NOTE
    for pid in children:
        try:
            if note is not None:
                os.kill(pid, note)
        except ProcessLookupError:  # it has just exited
            pass
    logger.info("worker.stopping", extra={"how": how, "pool_processes": len(children)})
