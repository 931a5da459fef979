"""The delivery state machine: the status moves that are allowed, the statuses a new delivery may have, and
the only functions that write a delivery's status once it exists.

Every write is a conditional UPDATE on the status it moves from (and, for a claimed delivery, on the
claim token), so two workers, an admin and a purge can never move the same delivery twice. Each status
carries its columns: a claim token and a lease exactly while Dispatched, a finish time exactly while final.
The moves here set them; the table's CHECK constraints (delivery_claimed_while_dispatched,
delivery_finished_when_final) refuse any other writer that gets them wrong, and the ORM refuses to create
a delivery in any status but an initial one (DeliveryQuerySet.create and bulk_create).
"""
import datetime
import uuid
from typing import Any

from django.db.models import F, QuerySet
from django.utils import timezone

from dispatcher.delivery.batch_sql import deliveries_update_claimed
from dispatcher.models import Delivery, DeliveryStatus
from dispatcher.models.deliveries import INITIAL_STATUSES, TERMINAL_STATUSES, IllegalMove

S = DeliveryStatus

#: Status a delivery is created with: waiting to be sent, or logged as never sent.
INITIAL = frozenset(INITIAL_STATUSES)
FINAL = frozenset(TERMINAL_STATUSES)

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

__all__ = [
    "FINAL", "INITIAL", "MOVES", "RESENDABLE", "IllegalMove", "deliveries_conclude", "deliveries_dispatch",
    "deliveries_requeue", "delivery_build", "delivery_move", "delivery_release", "dispatch_assignments",
    "move_check", "sources_of", "status_columns", "waiting_status",
]


def move_check(from_status: str, to_status: str) -> None:
    if to_status not in MOVES.get(from_status, ()):
        raise IllegalMove(f"A delivery cannot move from {from_status} to {to_status}.")


def status_columns(to_status: str, changes: dict[str, Any], now: datetime.datetime) -> dict[str, Any]:
    """changes with the columns to_status implies added where missing: the claim token and lease cleared
    unless Dispatched, the finish time set (now) when final and cleared otherwise. Changes that contradict
    the status are refused, before any statement (the CHECK constraints would refuse them after one)."""
    implied: dict[str, Any] = {"finished_at": now if to_status in FINAL else None}
    if to_status == S.DISPATCHED:
        if changes.get("claim_token") is None or changes.get("lease_expires_at") is None:
            raise IllegalMove("A delivery is Dispatched with a claim token and a lease.")
    else:
        implied.update(claim_token=None, lease_expires_at=None)
    for name, value in implied.items():
        if name in changes and (changes[name] is None) != (value is None):
            raise IllegalMove(f"A delivery moving to {to_status} cannot have {name} = {changes[name]!r}.")
    return {**implied, **changes}


def delivery_build(*, status: str = S.QUEUED, **fields: Any) -> Delivery:
    """A new delivery, not saved: Queued, or Cancelled (then finished now, as it will never be sent). Product
    code makes one through rows.delivery_new, which fills the columns every path shares and calls this."""
    if status not in INITIAL:
        raise IllegalMove(f"A delivery cannot be created as {status}.")
    if status in FINAL:
        fields.setdefault("finished_at", timezone.now())
    return Delivery(status=status, **fields)


def sources_of(to_status: str) -> list[str]:
    """The statuses that may move to to_status."""
    return [source for source, targets in MOVES.items() if to_status in targets]


def delivery_move(*, delivery_id: int, from_status: str, to_status: str, token: uuid.UUID | None = None,
                  **changes: Any) -> bool:
    """Move one delivery if it is still in from_status (and, when given, still claimed with token); the
    columns to_status implies are set with it (status_columns)."""
    move_check(from_status, to_status)
    rows = Delivery.objects.filter(pk=delivery_id, status=from_status)
    if token is not None:
        rows = rows.filter(claim_token=token)
    return rows.update(status=to_status, **status_columns(to_status, changes, timezone.now())) == 1


def deliveries_dispatch(*, rows: QuerySet, token: uuid.UUID, lease_until: datetime.datetime) -> int:
    """Claim: due rows (waiting, or abandoned by a worker whose lease ran out) become Dispatched to the
    worker holding token."""
    for source in (S.QUEUED, S.RETRY, S.THROTTLED, S.DISPATCHED):
        move_check(source, S.DISPATCHED)
    return rows.update(
        status=S.DISPATCHED, claim_token=token, lease_expires_at=lease_until, attempt_count=F("attempt_count") + 1)


def dispatch_assignments(*, token: uuid.UUID, lease_until: datetime.datetime) -> tuple[str, list[Any]]:
    """The same claim as deliveries_dispatch, as the SET clause (and its parameters) of the statement that
    claims and loads in one (delivery/claims.py, on PostgreSQL)."""
    for source in (S.QUEUED, S.RETRY, S.THROTTLED, S.DISPATCHED):
        move_check(source, S.DISPATCHED)
    return ("status = %s, claim_token = %s, lease_expires_at = %s, attempt_count = attempt_count + 1",
            [S.DISPATCHED, token, lease_until])


def deliveries_requeue(*, ids: list[int], from_statuses: tuple[str, ...], now: datetime.datetime,
                       **changes: Any) -> int:
    """Resend ended deliveries or release held ones: Queued again, due now, the retry policy from the start."""
    for source in from_statuses:
        move_check(source, S.QUEUED)
    return Delivery.objects.filter(pk__in=ids, status__in=from_statuses).update(
        status=S.QUEUED, due_at=now, status_reason="", cycle_start=F("attempt_count"),
        **status_columns(S.QUEUED, changes, now))


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
    claim token still matches (one statement for all of them); returns the ids that moved. An outcome ends
    the claim: the token and lease are cleared and a final one is finished (added to its changes where
    missing); changes that contradict their status are refused before the statement."""
    now = timezone.now()
    for _, _, changes in rows:
        status = changes["status"]
        move_check(S.DISPATCHED, status)
        if status == S.DISPATCHED:
            raise IllegalMove("An attempt's outcome ends its claim: it cannot leave the delivery Dispatched.")
        for name, value in status_columns(status, changes, now).items():
            changes.setdefault(name, value)
    return deliveries_update_claimed(rows)


def waiting_status(delivery: Delivery) -> str:
    """The status of a claimed delivery given back unattempted: Retry once an earlier attempt of this cycle
    failed, Queued before its first (its claim already counts in cycle_attempts)."""
    return S.RETRY if delivery.cycle_attempts > 1 else S.QUEUED
