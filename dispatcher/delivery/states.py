"""The delivery state machine: the status moves that are allowed, and the only functions that write a
delivery's status once it exists.

Every write is a conditional UPDATE on the status it moves from (and, for a claimed delivery, on the
claim token), so two workers, an admin and a purge can never move the same delivery twice.
"""
import datetime
import uuid
from typing import Any

from django.db.models import F, QuerySet

from dispatcher.delivery.batch_sql import deliveries_update_claimed
from dispatcher.models import Delivery, DeliveryStatus

S = DeliveryStatus

#: Status a delivery is created with: waiting to be sent, or logged as never sent.
INITIAL = frozenset({S.QUEUED, S.CANCELLED})

#: from status -> statuses it may move to.
MOVES: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.DISPATCHED}),  # claimed by a worker
    S.RETRY: frozenset({S.DISPATCHED}),
    S.THROTTLED: frozenset({S.DISPATCHED}),  # its rate slot has come
    S.DISPATCHED: frozenset({
        S.SUCCESS, S.RETRY, S.FAILED,  # an attempt was made
        S.CANCELLED, S.LIMIT_REACHED,  # ended without a request
        S.HELD,  # the destination is disabled
        S.THROTTLED,  # waits for a slot under the destination's rate limit
        S.QUEUED,  # given back unattempted (its destination is busy); Retry if an attempt failed before
        S.DISPATCHED,  # a lease that ran out, taken over by another worker
    }),
    S.HELD: frozenset({S.QUEUED}),  # the destination was enabled again
    S.FAILED: frozenset({S.QUEUED}),  # resent
    S.LIMIT_REACHED: frozenset({S.QUEUED}),
    S.CANCELLED: frozenset({S.QUEUED}),
    S.SUCCESS: frozenset(),
}

RESENDABLE = (S.FAILED, S.LIMIT_REACHED, S.CANCELLED)


class IllegalMove(ValueError):
    """A status move the state machine does not allow: a bug, never a user's mistake."""


def move_check(from_status: str, to_status: str) -> None:
    if to_status not in MOVES.get(from_status, ()):
        raise IllegalMove(f"A delivery cannot move from {from_status} to {to_status}.")


def sources_of(to_status: str) -> list[str]:
    """The statuses that may move to to_status."""
    return [source for source, targets in MOVES.items() if to_status in targets]


def delivery_move(*, delivery_id: int, from_status: str, to_status: str, token: uuid.UUID | None = None,
                  **changes: Any) -> bool:
    """Move one delivery if it is still in from_status (and, when given, still claimed with token)."""
    move_check(from_status, to_status)
    rows = Delivery.objects.filter(pk=delivery_id, status=from_status)
    if token is not None:
        rows = rows.filter(claim_token=token)
    return rows.update(status=to_status, **changes) == 1


def deliveries_dispatch(*, rows: QuerySet, token: uuid.UUID, lease_until: datetime.datetime) -> int:
    """Claim: due rows (waiting, or abandoned by a worker whose lease ran out) become Dispatched to the
    worker holding token."""
    for source in (S.QUEUED, S.RETRY, S.THROTTLED, S.DISPATCHED):
        move_check(source, S.DISPATCHED)
    return rows.update(
        status=S.DISPATCHED, claim_token=token, lease_expires_at=lease_until, attempt_count=F("attempt_count") + 1)


def deliveries_requeue(*, ids: list[int], from_statuses: tuple[str, ...], now: datetime.datetime,
                       **changes: Any) -> int:
    """Resend ended deliveries or release held ones: Queued again, due now, the retry policy from the start."""
    for source in from_statuses:
        move_check(source, S.QUEUED)
    return Delivery.objects.filter(pk__in=ids, status__in=from_statuses).update(
        status=S.QUEUED, due_at=now, finished_at=None, status_reason="", cycle_start=F("attempt_count"), **changes)


def delivery_release(*, delivery: Delivery, token: uuid.UUID, to_status: str, changes: dict[str, Any]) -> bool:
    """Give a claimed delivery back without an attempt (held, throttled, destination busy); its claim no
    longer counts as an attempt."""
    changes = {**changes, "status": to_status, "lease_expires_at": None, "claim_token": None}
    moved = delivery_move(delivery_id=delivery.pk, from_status=S.DISPATCHED, to_status=to_status, token=token,
                          attempt_count=F("attempt_count") - 1,
                          **{k: v for k, v in changes.items() if k != "status"})
    if moved:
        for key, value in changes.items():
            setattr(delivery, key, value)
        delivery.attempt_count -= 1
    return moved


def deliveries_conclude(rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> set[int]:
    """Store the outcome of attempts: each claimed delivery moves to the status in its changes, where its
    claim token still matches (one statement for all of them); returns the ids that moved."""
    for _, _, changes in rows:
        move_check(S.DISPATCHED, changes["status"])
    return deliveries_update_claimed(rows)


def waiting_status(delivery: Delivery) -> str:
    """The status of a claimed delivery given back unattempted: Retry once an earlier attempt of this cycle
    failed, Queued before its first (its claim already counts in cycle_attempts)."""
    return S.RETRY if delivery.cycle_attempts > 1 else S.QUEUED
