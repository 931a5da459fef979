"""The sender pool: the requests of a worker process in flight together.

Sending is waiting on the network, so threads do it: each sends one request through the guarded
client (which pins the checked address, refuses redirects and holds the deadline and the size cap)
and hands its result back on a queue. Everything else (claims, rendering, quotas, storing outcomes)
stays in the thread that owns the database connection. At most WEBHOOK_MAX_IN_FLIGHT requests are in
flight per process, and at most WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION to one destination, so a burst
does not flood one receiver and a receiver that hangs holds only its own share of the slots.
"""
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings

from dispatcher.http_client import ErrorClass, HttpResult, request_send
from dispatcher.rendering.request import RenderedRequest


@dataclass
class Sent:
    """A finished request: which job it was, what came back, when it started (monotonic)."""

    key: Hashable
    result: HttpResult
    started: float


class SenderPool:
    """Threads that send requests; the owner submits and collects from one thread."""

    def __init__(self, max_in_flight: int, per_destination: int) -> None:
        self.max_in_flight = max_in_flight
        self.per_destination = per_destination
        self.executor = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="webhook-send")
        self.finished: queue.SimpleQueue[Sent] = queue.SimpleQueue()
        self.in_flight = 0
        self.by_destination: Counter = Counter()
        self.starts: dict[Hashable, list[float]] = {}  # destination -> when its requests in flight started
        self.destination_of: dict[Hashable, tuple[Hashable, float]] = {}

    def room(self) -> int:
        return self.max_in_flight - self.in_flight

    def has_room_for(self, destination: Hashable) -> bool:
        return self.in_flight < self.max_in_flight and self.by_destination[destination] < self.per_destination

    def oldest_age(self, destination: Hashable) -> float:
        """Seconds the destination's oldest request in flight has been waiting for its answer (0: none)."""
        starts = self.starts.get(destination)
        return time.monotonic() - min(starts) if starts else 0.0

    def submit(self, key: Hashable, destination: Hashable, request: RenderedRequest) -> None:
        started = time.monotonic()
        self.in_flight += 1
        self.by_destination[destination] += 1
        self.starts.setdefault(destination, []).append(started)
        self.destination_of[key] = (destination, started)
        future = self.executor.submit(request_send, request)
        future.add_done_callback(lambda f: self.finished.put(Sent(key, _result_of(f, started), started)))

    def collect(self, timeout: float) -> list[Sent]:
        """Finished requests: waits up to timeout for the first, then takes whatever else is done."""
        if not self.in_flight:
            return []
        done: list[Sent] = []
        try:
            done.append(self.finished.get(timeout=max(timeout, 0.0)))
            while True:
                done.append(self.finished.get_nowait())
        except queue.Empty:
            pass
        for sent in done:
            destination, started = self.destination_of.pop(sent.key)
            self.in_flight -= 1
            self.by_destination[destination] -= 1
            if not self.by_destination[destination]:
                del self.by_destination[destination]
            starts = self.starts[destination]
            starts.remove(started)
            if not starts:
                del self.starts[destination]
        return done


def _result_of(future: Future, started: float) -> HttpResult:
    """The client never raises for a network problem; anything else is this request's error alone."""
    try:
        return future.result()
    except BaseException as error:  # noqa: BLE001 - one request's bug must not stop the others
        return HttpResult(None, int((time.monotonic() - started) * 1000), error_class=ErrorClass.PROTOCOL_ERROR,
                          error_message=f"The request could not be sent ({type(error).__name__}).")


_pool: SenderPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def sender_pool() -> SenderPool:
    """This process's pool (threads do not survive a fork: a pool child builds its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        wanted = (settings.WEBHOOK_MAX_IN_FLIGHT, settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION)
        if _pool is None or _pool_pid != os.getpid() or (_pool.max_in_flight, _pool.per_destination) != wanted:
            if _pool is not None and _pool_pid == os.getpid():
                _pool.executor.shutdown(wait=True)
            _pool, _pool_pid = SenderPool(*wanted), os.getpid()
        return _pool
