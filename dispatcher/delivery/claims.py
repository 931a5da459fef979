"""Claims and wake-ups: which due deliveries a worker takes, fairly across organizations, and the
broker messages that tell workers there is work.

The database is the source of truth; the broker only carries wake-ups (``dispatcher.deliver`` on
commit, ``dispatcher.drain`` from the pump). Losing one delays a delivery, never loses it. A claim is a
conditional update guarded by a claim token and a lease, so two workers never own the same delivery,
and a worker that dies leaves its deliveries claimable again when the lease runs out.
"""
import collections
import datetime
import functools
import logging
import math
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from dispatcher.delivery import counters, states
from dispatcher.models import Delivery, DeliveryStatus
from dispatcher.models.deliveries import WAITING_STATUSES

logger = logging.getLogger(__name__)

FAIR_ORGANIZATIONS_MAX = 50  # organizations a claim shares out between; more wait for the next claim
LATER_MAX_SECONDS = 300  # a longer wait is left to the pump rather than held as an ETA task in a worker


@dataclass(frozen=True)
class ClaimRoom:
    """How much of each organization's work the claiming process can start now (delivery/book.py): for the
    organizations it holds slots for, how many more (0: none until their requests end); for any other,
    `newcomer`. A slow destination's deliveries (by endpoint id) are claimed only as many as its limit leaves
    room for in this process (0: left in the database)."""

    organizations: Mapping[int, int]
    newcomer: int
    slow_destinations: Mapping[int, int] = field(default_factory=dict)

    def of(self, organization_id: int) -> int:
        return self.organizations.get(organization_id, self.newcomer)

    def any(self) -> bool:
        return self.newcomer > 0 or any(n > 0 for n in self.organizations.values())


def deliveries_claim(*, now: datetime.datetime, limit: int, ids: list[int] | None = None,
                     first: int | None = None, room: ClaimRoom | None = None) -> list[tuple[int, uuid.UUID]]:
    """Claim up to limit due deliveries for this worker, delivery `first` before the others if it is due;
    returns (id, claim token) pairs.

    Fair across organizations: the claim is shared out equally between the organizations that have due
    work, so one organization's import of 100,000 deliveries delays another's single delivery by one
    claim, not by the whole import. What a share leaves unused goes to the others. With a room (a drain
    loop's), no organization gets more than the process can start for it now.
    """
    token = uuid.uuid4()
    lease_until = now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    with transaction.atomic():
        chosen = _choose(now, limit, ids, first) if room is None or ids is not None \
            else _choose_within(now, limit, first, room)
        if not chosen:
            return []
        # PostgreSQL locked the chosen rows (FOR UPDATE): nobody can have moved them. SQLite takes its write
        # lock only now, so there the rows are checked again.
        rows = Delivery.objects.filter(pk__in=chosen) if connection.vendor == "postgresql" \
            else Delivery.objects.due(now).filter(pk__in=chosen)
        claimed = states.deliveries_dispatch(rows=rows, token=token, lease_until=lease_until)
    if claimed == len(chosen):  # all of them (always so on PostgreSQL, where they were locked)
        return [(pk, token) for pk in chosen]
    counters.count("claim_lost", amount=len(chosen) - claimed)
    return [(pk, token) for pk in Delivery.objects.filter(claim_token=token).values_list("pk", flat=True)]


def _choose(now: datetime.datetime, limit: int, ids: list[int] | None, first: int | None) -> list[int]:
    candidates = Delivery.objects.due(now)
    if ids is not None:
        candidates = candidates.filter(pk__in=ids)

    def take(rows, n: int) -> list[int]:
        return [pk for pk, _ in _take(rows, n)]

    organizations = _organizations_with_due_work(now) if ids is None else []
    order = ["due_at"] if first is None else [Case(When(pk=first, then=Value(0)), default=Value(1)), "due_at"]
    if len(organizations) <= 1:  # nothing to share: one statement, `first` first
        return take(candidates.order_by(*order), limit)
    chosen = take(candidates.filter(pk=first), 1) if first is not None else []
    share = math.ceil((limit - len(chosen)) / len(organizations))
    for organization_id in organizations:
        chosen += take(candidates.filter(organization_id=organization_id).exclude(pk__in=chosen)
                       .order_by("due_at"), min(share, limit - len(chosen)))
    if len(chosen) >= limit:
        return chosen
    return chosen + take(candidates.exclude(pk__in=chosen).order_by("due_at"), limit - len(chosen))


def _choose_within(now: datetime.datetime, limit: int, first: int | None, room: ClaimRoom) -> list[int]:
    """_choose, within what the process can start: organizations with no room are left out, each one's part
    is at most its room, and a slow destination's deliveries are taken apart, at most its room."""
    candidates = Delivery.objects.due(now)
    if full := [organization_id for organization_id, n in room.organizations.items() if n <= 0]:
        candidates = candidates.exclude(organization_id__in=full)
    slow = list(room.slow_destinations)
    general = candidates.exclude(endpoint_id__in=slow) if slow else candidates
    chosen: list[int] = []
    taken: collections.Counter[int] = collections.Counter()

    def add(rows, n: int) -> int:
        found = _take(rows.exclude(pk__in=chosen), min(n, limit - len(chosen)))
        for pk, organization_id in found:
            chosen.append(pk)
            taken[organization_id] += 1
        return len(found)

    def left(organization_id: int) -> int:
        return room.of(organization_id) - taken[organization_id]

    if first is not None:
        add(general.filter(pk=first), 1)
    # Deliveries whose worker died (lease over) are not waiting, so no listed organization has them.
    add(general.filter(status=DeliveryStatus.DISPATCHED).order_by("due_at"), room.newcomer)
    for endpoint_id, n in room.slow_destinations.items():
        if n > 0:
            add(candidates.filter(endpoint_id=endpoint_id).order_by("due_at"), n)
    listed = _organizations_with_due_work(now)
    organizations = [organization_id for organization_id in listed if left(organization_id) > 0]
    if organizations and len(chosen) < limit:
        share = math.ceil((limit - len(chosen)) / len(organizations))
        filled = [organization_id for organization_id in organizations
                  if add(general.filter(organization_id=organization_id).order_by("due_at"),
                         min(share, left(organization_id))) == share]
        for organization_id in filled:  # what the others left unused, to those that had more
            if len(chosen) < limit and left(organization_id) > 0:
                add(general.filter(organization_id=organization_id).order_by("due_at"), left(organization_id))
    if len(chosen) < limit and len(listed) >= FAIR_ORGANIZATIONS_MAX:  # organizations beyond those listed
        add(general.exclude(organization_id__in=listed).order_by("due_at"), room.newcomer)
    return chosen


def _take(rows, n: int) -> list[tuple[int, int]]:
    """Up to n of these rows, locked for this claim: (id, organization id)."""
    # SKIP LOCKED lets workers claim side by side on PostgreSQL; SQLite ignores it and serialises writers.
    found = list(rows.select_for_update(skip_locked=True).values_list("pk", "status", "organization_id")[:n]) \
        if n > 0 else []
    taken_over = sum(1 for _, status, _ in found if status == DeliveryStatus.DISPATCHED)
    if taken_over:  # their worker died or hung past its lease
        counters.count("lease_taken_over", amount=taken_over)
    return [(pk, organization_id) for pk, _, organization_id in found]


def _organizations_with_due_work(now: datetime.datetime) -> list[int]:
    """The organizations with deliveries waiting and due. On PostgreSQL a skip scan of the partial index
    delivery_due_organization: one index probe per organization, however many deliveries each has."""
    if connection.vendor != "postgresql":
        return list(Delivery.objects.filter(status__in=WAITING_STATUSES, due_at__lte=now).order_by("organization_id")
                    .values_list("organization_id", flat=True).distinct()[:FAIR_ORGANIZATIONS_MAX])
    table = connection.ops.quote_name(Delivery._meta.db_table)
    waiting = "status IN (" + ", ".join(["%s"] * len(WAITING_STATUSES)) + ")"
    sql = f"""
        WITH RECURSIVE organizations(id) AS (
            (SELECT organization_id FROM {table} WHERE {waiting} AND due_at <= %s ORDER BY organization_id LIMIT 1)
            UNION ALL
            SELECT (SELECT organization_id FROM {table} WHERE {waiting} AND due_at <= %s
                    AND organization_id > organizations.id ORDER BY organization_id LIMIT 1)
            FROM organizations WHERE organizations.id IS NOT NULL
        )
        SELECT id FROM organizations WHERE id IS NOT NULL LIMIT %s"""
    params: list[Any] = [*WAITING_STATUSES, now, *WAITING_STATUSES, now, FAIR_ORGANIZATIONS_MAX]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def deliveries_pump(*, now: datetime.datetime | None = None) -> int:
    """Periodic: send as many drain wake-ups as the due work needs (bounded); returns how many."""
    cap = settings.WEBHOOK_PUMP_MAX_DRAINS * settings.WEBHOOK_DRAIN_BATCH
    due = Delivery.objects.due(now or timezone.now())[:cap].count()
    drains = min(math.ceil(due / settings.WEBHOOK_DRAIN_BATCH), settings.WEBHOOK_PUMP_MAX_DRAINS)
    for _ in range(drains):
        _drain_send()
    return drains


def _drain_send() -> None:
    """A wake-up for whatever is due; expiring, so wake-ups cannot pile up in the broker while workers are busy."""
    current_app.send_task("dispatcher.drain", expires=settings.WEBHOOK_PUMP_INTERVAL * 5)


def deliveries_wake(ids: list[int]) -> None:
    """On commit, one wake-up per batch of these deliveries (a woken worker claims a whole batch), coalesced
    with the other wake-ups of this process (see _Coalescer)."""
    for first in ids[::settings.WEBHOOK_DRAIN_BATCH]:
        transaction.on_commit(functools.partial(_coalescer.wake, first))


class _Coalescer:
    """At most one wake-up per WAKE_COALESCE_SECONDS per process: the first is sent at once, those that
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
            _drain_send()
        except Exception:  # the pump will find the work
            logger.warning("deliver_wake.failed drain", exc_info=True)


WAKE_COALESCE_SECONDS = 0.02  # short against a receiver's answer, long against one API call on two cores
_coalescer = _Coalescer()


def delivery_wake_at(delivery_id: int, when: datetime.datetime) -> None:
    """On commit, a wake-up for this delivery at a later moment (rate limits, busy destinations), if the
    wait is short; the pump finds the others."""
    wait = (when - timezone.now()).total_seconds()
    if wait <= LATER_MAX_SECONDS:
        transaction.on_commit(lambda: _send(delivery_id, countdown=max(wait, 0)))


def _send(delivery_id: int, countdown: float | None = None) -> None:
    try:
        current_app.send_task("dispatcher.deliver", args=[delivery_id], countdown=countdown)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # the broker being down only delays the delivery: the pump will find it
        logger.warning("deliver_wake.failed delivery=%s", delivery_id, exc_info=True)
