"""Engine decisions counted in memory and added to the database with the outcomes they belong to, so
/metrics shows every worker's claims lost, leases taken over, fallbacks, cuts, failures to render or
sign, capture errors, and deliveries held, throttled or given back (docs/operate/monitoring.md)."""
import os
import socket
import threading
import time
from collections import Counter

from django.db.models import F
from django.utils import timezone

from dispatcher.models import EngineCounter, SenderProcess

_lock = threading.Lock()
_pending: Counter = Counter()


def count(decision: str, outcome: str = "", amount: int = 1) -> None:
    with _lock:
        _pending[(decision, outcome)] += amount


def counters_flush() -> None:
    """Add what was counted since the last flush: one UPDATE per decision that happened (rare ones only:
    attempts themselves are counted by the usage counters)."""
    with _lock:
        pending = dict(_pending)
        _pending.clear()
    for (decision, outcome), amount in pending.items():
        if not EngineCounter.objects.filter(decision=decision, outcome=outcome).update(count=F("count") + amount):
            counter, created = EngineCounter.objects.get_or_create(decision=decision, outcome=outcome,
                                                                  defaults={"count": amount})
            if not created:
                EngineCounter.objects.filter(pk=counter.pk).update(count=F("count") + amount)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


reported: dict[str, tuple] = {}
REPORT_UNCHANGED_EVERY = 30.0  # seconds: an unchanged figure is written this often (the gauge shows live processes)


def sender_report(*, in_flight: int, max_in_flight: int) -> None:
    """This process's requests in flight, for the /metrics gauge; written when it changed, or to say the
    process is still there."""
    name, now = process_name(), time.monotonic()
    last = reported.get(name)
    if last is not None and last[:2] == (in_flight, max_in_flight) and now - last[2] < REPORT_UNCHANGED_EVERY:
        return
    reported[name] = (in_flight, max_in_flight, now)
    if not SenderProcess.objects.filter(name=name).update(in_flight=in_flight, max_in_flight=max_in_flight,
                                                          seen_at=timezone.now()):
        SenderProcess.objects.get_or_create(name=name, defaults={
            "in_flight": in_flight, "max_in_flight": max_in_flight, "seen_at": timezone.now()})

