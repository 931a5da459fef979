"""The sender pool: the requests of a worker process in flight together.

Sending is waiting on the network, so one event loop in a thread of its own does it, through the
engine's guarded client (dispatcher/transport/client.py: the checked address is the one connected to, no
redirects, a total deadline and a size cap, keep-alive pools per destination), and hands each result
back on a queue. Everything else (claims, rendering, quotas, storing outcomes) stays in the thread that
owns the database connection. At most WEBHOOK_MAX_IN_FLIGHT requests are in flight per process, and to
one destination at most its limit (delivery/book.py: it starts at WEBHOOK_DESTINATION_START_SLOTS, grows
with fast answers up to WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION and is halved by slow ones), so a burst does
not flood one receiver and a receiver that hangs or trickles holds only a few slots.
"""
import asyncio
import atexit
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Hashable
from concurrent.futures import Future
from dataclasses import dataclass

from django.conf import settings

from config.caches import cache_register

from dispatcher.transport import client as async_client

from dispatcher.transport import sending
from dispatcher.delivery.book import DestinationLimits
from dispatcher.transport.result import ErrorClass, HttpResult
from dispatcher.transport.request import RenderedRequest


@dataclass
class Sent:
    """A finished request: which job it was, what came back, when it started and ended (monotonic), and the
    request as sent (with the authentication added at send time, whose secrets mask the answer)."""

    key: Hashable
    result: HttpResult
    started: float
    request: RenderedRequest
    finished: float = 0.0


class SenderPool:
    """An event loop that sends requests; the owner submits and collects from one thread."""

    def __init__(self, max_in_flight: int, per_destination: int) -> None:
        self.max_in_flight = max_in_flight
        self.per_destination = per_destination
        self.egress = settings.WEBHOOK_EGRESS_PROXY  # the session's proxy: a new setting needs a new pool
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="webhook-send", daemon=True)
        self.thread.start()
        self.session = self._call(self._session())
        self.finished: queue.SimpleQueue[Sent] = queue.SimpleQueue()
        self.in_flight = 0
        self.by_destination: Counter = Counter()
        self.starts: dict[Hashable, list[float]] = {}  # destination -> when its requests in flight started
        self.destination_of: dict[Hashable, tuple[Hashable, float]] = {}
        self.limits = DestinationLimits()  # kept with the pool: a destination's limit outlives a drain

    def room(self) -> int:
        return self.max_in_flight - self.in_flight

    def has_room_for(self, destination: Hashable) -> bool:
        return self.in_flight < self.max_in_flight and self.by_destination[destination] < self.limits.limit(destination)

    def destination_room(self, destination: Hashable) -> int:
        """How many more requests the destination may have in flight now, by its limit alone."""
        return max(0, self.limits.limit(destination) - self.by_destination[destination])

    def oldest_age(self, destination: Hashable) -> float:
        """Seconds the destination's oldest request in flight has been waiting for its answer (0: none)."""
        starts = self.starts.get(destination)
        return time.monotonic() - min(starts) if starts else 0.0

    def submit(self, key: Hashable, destination: Hashable, request: RenderedRequest,
               auth: sending.SendAuth | None = None) -> None:
        started = time.monotonic()
        self.in_flight += 1
        self.by_destination[destination] += 1
        self.starts.setdefault(destination, []).append(started)
        self.destination_of[key] = (destination, started)
        future = asyncio.run_coroutine_threadsafe(sending.send(self.session, request, auth), self.loop)

        def done(f: Future) -> None:
            result, sent = _result_of(f, started, request)
            self.finished.put(Sent(key, result, started, sent, time.monotonic()))

        future.add_done_callback(done)

    def collect(self, timeout: float) -> list[Sent]:
        """Finished requests: waits up to timeout for the first, then takes whatever else is done. Their
        durations, and the age of those still in flight, adjust the destinations' limits."""
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
            self.limits.answered(sent.key, destination, sent.finished - sent.started)
        now = time.monotonic()
        self.limits.watch((key, destination, now - started)
                          for key, (destination, started) in self.destination_of.items())
        return done

    async def _session(self):
        return async_client.session_create(max_in_flight=self.max_in_flight)

    def _call(self, coroutine, timeout: float | None = None):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Close the connections and stop the loop (requests still in flight are cancelled)."""
        if not self.thread.is_alive():
            return
        self._call(self.session.close(), timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _result_of(future: Future, started: float, request: RenderedRequest) -> tuple[HttpResult, RenderedRequest]:
    """The client never raises for a network problem; anything else is this request's error alone."""
    try:
        return future.result()
    except BaseException as error:  # noqa: BLE001 - one request's bug must not stop the others
        return HttpResult(None, int((time.monotonic() - started) * 1000), error_class=ErrorClass.PROTOCOL_ERROR,
                          error_message=f"The request could not be sent ({type(error).__name__})."), request


_pool: SenderPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _pool_forget() -> None:
    """Close this process's pool; the next send builds a new one (caches_reset, e.g. between tests)."""
    global _pool
    _pool_close()
    _pool = None


@atexit.register
def _pool_close() -> None:
    """Close this process's connections when it exits, rather than leaving them to the garbage collector
    (which warns "Unclosed client session" after logging has shut down)."""
    if _pool is not None and _pool_pid == os.getpid():
        try:
            _pool.close()
        except Exception:  # noqa: BLE001, S110 - exiting anyway; a stuck loop must not block the exit
            pass


def sender_pool() -> SenderPool:
    """This process's pool (threads do not survive a fork: a pool child builds its own)."""
    global _pool, _pool_pid
    with _pool_lock:
        wanted = (settings.WEBHOOK_MAX_IN_FLIGHT, settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION)
        if _pool is None or _pool_pid != os.getpid() or (_pool.max_in_flight, _pool.per_destination) != wanted \
                or _pool.egress != settings.WEBHOOK_EGRESS_PROXY:
            if _pool is not None and _pool_pid == os.getpid():
                _pool.close()
            _pool, _pool_pid = SenderPool(*wanted), os.getpid()
        return _pool


cache_register("sender pool", _pool_forget)
