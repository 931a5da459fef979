"""Storing outcomes: each attempt and its delivery's next state, on its own terms.

The outcomes a worker has gathered are stored together, in one transaction: one INSERT of their attempts
and one UPDATE of their deliveries, each row conditional on its claim token (delivery/batch_sql.py). Values
are made storable first (dispatcher/transport/cleaning.py). If the batch write still fails, each outcome is written
on its own, so at most the delivery that caused it is affected; one that cannot be stored even so is stored
without the receiver's answer.
"""
import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from dispatcher.delivery import counters, states
from dispatcher.delivery.attempt import Outcome
from dispatcher.delivery.batch_sql import attempts_insert
from dispatcher.delivery.followups import capture_pending_mark
from dispatcher.transport.cleaning import clean_headers, clean_text
from dispatcher.models import Attempt, DeliveryStatus
from dispatcher.transport import errors

logger = logging.getLogger(__name__)


def outcome_clean(outcome: Outcome) -> None:
    """Make the attempt and the delivery's changes storable; the attempt says what was cleaned or cut."""
    attempt, notes = outcome.attempt, []
    attempt.response_headers, header_notes = clean_headers(attempt.response_headers)
    notes += header_notes
    attempt.response_body, body_changed = clean_text(attempt.response_body)
    if body_changed:
        notes.append("NUL bytes or invalid text in the response body replaced")
    attempt.error_message, _ = clean_text(attempt.error_message)
    for key in ("status_reason", "request_display"):
        if isinstance(outcome.changes.get(key), str):
            outcome.changes[key], _ = clean_text(outcome.changes[key])
    if notes:
        counters.count("value_cut", amount=len(notes))
        attempt.cleaned = "; ".join(notes)[:300]


def _sealed_request_dropped_on_success(outcome: Outcome) -> None:
    """A delivery that succeeded is never sent again (Success is final and cannot be resent), so its request,
    secrets included, is not kept: nothing to encrypt on its first attempt, nothing left at rest after a
    retry. The masked copy for the log is kept."""
    if outcome.changes.get("status") == DeliveryStatus.SUCCESS:
        outcome.changes["request_sealed"] = ""


def outcomes_write(outcomes: list[Outcome]) -> set[int]:
    """Store these outcomes; returns the ids of the deliveries that moved on. The others' claims were taken
    over meanwhile (this worker was cut off past its lease): their attempts happened and are recorded, as
    late ones (_late), so the log shows the one outcome of the worker that took over: Success once."""
    for outcome in outcomes:
        outcome_clean(outcome)
        _sealed_request_dropped_on_success(outcome)
        capture_pending_mark(outcome)
    try:
        with transaction.atomic():
            updated = states.deliveries_conclude([(o.delivery.pk, o.token, o.changes) for o in outcomes])
            for o in outcomes:
                if o.delivery.pk not in updated:
                    _late(o.attempt)
            attempts_insert([o.attempt for o in outcomes])
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        if len(outcomes) == 1:
            updated = _write_alone(outcomes[0])
        else:
            logger.exception("deliver.write_fallback", extra={"count": len(outcomes)})
            counters.count("write_fallback")
            updated = set().union(*(_write_alone(o) for o in outcomes))
    for o in outcomes:
        if o.delivery.pk not in updated:
            counters.count("claim_lost")
            logger.warning("deliver.claim_lost", extra={"delivery_id": o.delivery.message_id,
                                                        "organization_id": o.delivery.organization_id,
                                                        "attempt": o.attempt.number})
            continue
        for key, value in o.changes.items():
            setattr(o.delivery, key, value)
    return updated


def _late(attempt: Attempt) -> None:
    """An attempt whose claim was lost: what the receiver answered stays, but it decides nothing (the delivery's
    status is the other worker's), so it says so instead of Success or Failed."""
    if attempt.error_class == errors.CLAIM_LOST:  # marked already, before a write that failed and is tried again
        return
    attempt.outcome, attempt.error_class = DeliveryStatus.DISPATCHED, errors.CLAIM_LOST
    attempt.error_message = (f"Claim lost: {attempt.error_message}" if attempt.error_message
                             else "Claim lost: the delivery was taken over by another worker.")[:500]


def _write_alone(outcome: Outcome) -> set[int]:
    for stripped in (False, True):
        if stripped:
            _strip(outcome)
        outcome.attempt.pk, outcome.attempt._state.adding = None, True  # a rolled-back insert set them
        try:
            with transaction.atomic():
                updated = states.deliveries_conclude([(outcome.delivery.pk, outcome.token, outcome.changes)])
                if not updated:
                    _late(outcome.attempt)
                outcome.attempt.save(force_insert=True)
                return updated
        except SoftTimeLimitExceeded:
            raise
        except Exception:
            written = "stripped" if stripped else "full"
            logger.exception("deliver.write_failed", extra={
                "delivery_id": outcome.delivery.message_id, "organization_id": outcome.delivery.organization_id,
                "attempt": outcome.attempt.number, "outcome": written})
            counters.count("write_failed", written)
    # Left as it is: Dispatched until its lease runs out, then another attempt.
    return set()


def _strip(outcome: Outcome) -> None:
    """The attempt without anything the receiver sent, and a plain reason: what is left can be stored."""
    attempt = outcome.attempt
    attempt.response_headers, attempt.response_body, attempt.captured = {}, "", {}
    attempt.error_message = attempt.error_message.encode("ascii", "replace").decode()
    attempt.cleaned = "the receiver's answer could not be stored and was dropped"
    outcome.changes["status_reason"] = outcome.changes.get("status_reason", "").encode("ascii", "replace").decode()
    if "request_display" in outcome.changes:
        outcome.changes["request_display"] = "(the request could not be stored for display)"
    outcome.result = None  # nothing to capture from
