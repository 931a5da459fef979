"""One attempt of a claimed delivery, in the order it happens: the checks before sending (still ours,
still sendable, rendered, destination enabled, under its rate limit, within the daily quota), signing,
and what the receiver's answer means (Success, Retry or Failed). Each ends in an Outcome to store, a
Send to hand to the sender pool, or a release (the delivery waits, unattempted).

A delivery that cannot be rendered or signed fails alone, with its reason.
"""
import binascii
import datetime
import logging
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from dispatcher.transport import errors

from dispatcher.delivery import endpoint_health as health

from dispatcher.ops import quotas

from dispatcher.delivery import retry
from dispatcher.delivery import counters, states
from dispatcher.delivery.quota_reservation import QuotaReservation
from dispatcher.delivery.wakeups import delivery_wake_at
from dispatcher.transport.cleaning import clean_text
from dispatcher.transport.result import HttpResult
from dispatcher.models import Attempt, Delivery, DeliveryStatus, Endpoint
from dispatcher.models.deliveries import TERMINAL_STATUSES
from dispatcher.rendering.request import request_sign, webhook_render_unsigned
from dispatcher.transport.request import RenderedRequest
from dispatcher.rendering.request import send_auth_for
from dispatcher.transport.sending import SendAuth

logger = logging.getLogger(__name__)

RESPONSE_EXCERPT_CHARS = 64 * 1024  # of a response body kept on the attempt; the client already capped the read
MAX_EXTRA_CLAIMS = 3  # claims beyond the policy's attempts (workers that died mid-send) before giving up


@dataclass
class Outcome:
    """An attempt and the delivery's next state, to be stored (delivery/outcomes.py)."""

    delivery: Delivery
    token: uuid.UUID
    attempt: Attempt
    changes: dict
    now: datetime.datetime
    timed: bool = False  # an HTTP exchange took place
    result: HttpResult | None = field(default=None, repr=False)  # for the response capture, after storing
    request: RenderedRequest | None = field(default=None, repr=False)


@dataclass
class Send:
    """A signed request ready for the sender pool."""

    delivery: Delivery
    token: uuid.UUID
    request: RenderedRequest
    destination: int  # the endpoint's id
    started_at: datetime.datetime
    auth: SendAuth | None = None  # added at send time (OAuth token, client certificate)


def attempt_prepare(delivery: Delivery, token: uuid.UUID, *, quota: QuotaReservation,
                    endpoint_of: Callable[[Delivery, str], Endpoint],
                    limit_reached: Callable[[Delivery, datetime.datetime], None]) -> Send | Outcome | None:
    """Everything before the request is sent; None when the delivery was given back to wait. It takes its
    call from the loop's quota reservation, finds its destination's endpoint with endpoint_of (the loop's,
    one per destination), and calls limit_reached when the organization's day is used up."""
    now = timezone.now()
    if delivery.cycle_attempts > len(delivery.retry_policy.delays) + 1 + MAX_EXTRA_CLAIMS:
        return outcome_without_request(delivery, token, now, DeliveryStatus.FAILED, errors.INTERNAL_ERROR,
                                       "Workers stopped while sending it several times; given up.")
    if (problem := _unsendable(delivery)) is not None:
        return outcome_without_request(delivery, token, now, *problem)
    request = _render(delivery, token, now) if not delivery.request_sealed else \
        RenderedRequest.unseal(delivery.request_sealed)
    if isinstance(request, Outcome):  # it could not be rendered
        return request
    endpoint = endpoint_of(delivery, request.url)
    if endpoint.is_disabled:
        counters.count("held")
        release(delivery, token, DeliveryStatus.HELD, due_at=None,
                reason=f"On hold: the destination is disabled. {endpoint.disabled_reason}")
        return None
    if endpoint.rate_limit and not (delivery.rate_slot_at and delivery.rate_slot_at <= now):
        if (slot := health.rate_slot_take(endpoint=endpoint, now=now)) is not None:
            counters.count("throttled")
            release(delivery, token, DeliveryStatus.THROTTLED, due_at=slot, rate_slot_at=slot,
                    reason=f"Waiting for the destination's rate limit ({endpoint.rate_limit}/s).")
            delivery_wake_at(delivery.pk, slot)
            return None
    # Signed before the quota is taken: a delivery that cannot be signed is not charged.
    sender = delivery.sender
    assert sender is not None, "_unsendable ends a delivery whose sender is gone"
    try:
        signed = request_sign(request, secrets=sender.signing_secrets(now), message_id=delivery.message_id)
    except (binascii.Error, ValueError, TypeError):
        counters.count("sign_failed")
        logger.warning("deliver.sign_failed", extra={
            "delivery_id": delivery.message_id, "organization_id": delivery.organization_id,
            "webhook_id": delivery.webhook_id, "channel_id": getattr(delivery.channel, "public_id", None)})
        return outcome_without_request(
            delivery, token, now, DeliveryStatus.FAILED, errors.INTERNAL_ERROR,
            "The signing secret is not valid (it must be whsec_ followed by base64); rotate it and resend.")
    try:
        auth = send_auth_for(sender)
    except (ssl.SSLError, ValueError, OSError):
        return outcome_without_request(
            delivery, token, now, DeliveryStatus.FAILED, errors.INTERNAL_ERROR,
            "The webhook's client certificate or CA bundle cannot be loaded; enter them again and resend.")
    if not quota.take(delivery, now):
        limit_reached(delivery, now)
        return outcome_without_request(
            delivery, token, now, DeliveryStatus.LIMIT_REACHED, errors.LIMIT_REACHED,
            f"Daily limit of {quotas.daily_limit(organization=delivery.organization)} calls reached.")
    return Send(delivery, token, signed, endpoint.pk, now, auth)


def _unsendable(delivery: Delivery) -> tuple[str, str, str] | None:
    """Why this delivery must end before sending, checked before every attempt."""
    sender = delivery.sender
    if sender is None or not sender.is_active:
        kind = "channel" if delivery.is_subscription else "webhook"
        return DeliveryStatus.CANCELLED, "", f"The {kind} was deleted or deactivated."
    if delivery.record is None and not delivery.request_sealed:  # a delete event's request is rendered at once
        return DeliveryStatus.CANCELLED, "", "The record was deleted."
    if refusal := quotas.webhooks_refusal(delivery.organization):
        return DeliveryStatus.FAILED, errors.INTERNAL_ERROR, refusal
    return None


def _render(delivery: Delivery, token: uuid.UUID, now: datetime.datetime) -> RenderedRequest | Outcome:
    """Render and keep the request on the first attempt (stored with this attempt's outcome, and resent
    as is on retries); a rendering failure ends this delivery alone."""
    # Only a webhook's delivery with its record gets here (_unsendable; a channel's is rendered at enqueue).
    assert delivery.webhook is not None and delivery.record is not None
    try:
        request = webhook_render_unsigned(webhook=delivery.webhook, record=delivery.record)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        counters.count("render_failed")
        logger.exception("deliver.render_failed", extra={"delivery_id": delivery.message_id,
                                                         "organization_id": delivery.organization_id,
                                                         "webhook_id": delivery.webhook_id})
        return outcome_without_request(delivery, token, now, DeliveryStatus.FAILED, errors.INTERNAL_ERROR,
                                       "The request could not be rendered; see the worker log.")
    delivery.request_sealed = request.seal()
    delivery.request_display = clean_text(request.masked().as_text())[0]  # record values may hold NUL
    delivery.request_prepared = True
    return request


def outcome_of_result(send: Send, result: HttpResult, sent: RenderedRequest | None = None) -> Outcome:
    """What the receiver's answer means: Success, or Retry at the policy's next time, or Failed. sent: the
    request as it went out (with a token added at send time), whose secrets are masked in the answer."""
    delivery, request = send.delivery, sent or send.request
    finished = timezone.now()
    error_class = errors.error_class_of(result)
    if result.is_success:
        status, due_at, reason = DeliveryStatus.SUCCESS, None, ""
    else:
        due_at = retry.next_attempt_at(policy=delivery.retry_policy, attempt_number=delivery.cycle_attempts,
                                       result=result, now=finished)
        status = DeliveryStatus.RETRY if due_at else DeliveryStatus.FAILED
        reason = errors.failure_reason(error_class, result.error_message, retry.verdict(
            policy=delivery.retry_policy, attempt_number=delivery.cycle_attempts, result=result, due_at=due_at))
    attempt = Attempt(
        delivery=delivery, number=delivery.attempt_count, started_at=send.started_at,
        duration_ms=result.duration_ms, status_code=result.status_code, error_class=error_class,
        error_message=result.error_message[:500], response_truncated=result.truncated, outcome=status,
        # Masked: a receiver that echoes the request would otherwise put its secrets in the log.
        response_headers={name: request.mask(value) for name, value in result.headers.items()},
        response_body=request.mask(result.body.decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS]),
    )
    outcome = _outcome(delivery, send.token, attempt, now=finished, reason=reason, due_at=due_at,
                       duration_ms=result.duration_ms)
    outcome.timed, outcome.result, outcome.request = True, result, request
    return outcome


def outcome_without_request(delivery: Delivery, token: uuid.UUID, now: datetime.datetime, status: str,
                            error_class: str, reason: str) -> Outcome:
    """End a delivery without an HTTP exchange (cancelled, limit reached, internal error); logged as an attempt."""
    attempt = Attempt(delivery=delivery, number=delivery.attempt_count, started_at=now, error_class=error_class,
                      error_message=reason[:500], outcome=status)
    return _outcome(delivery, token, attempt, now=now, reason=reason)


def _outcome(delivery: Delivery, token: uuid.UUID, attempt: Attempt, *, now: datetime.datetime, reason: str,
             due_at: datetime.datetime | None = None, duration_ms: int | None = None) -> Outcome:
    terminal = attempt.outcome in TERMINAL_STATUSES
    changes = {
        "status": attempt.outcome, "status_reason": reason[:300], "due_at": due_at, "lease_expires_at": None,
        "claim_token": None, "last_status_code": attempt.status_code, "last_error_class": attempt.error_class,
        "last_duration_ms": duration_ms, "rate_slot_at": None, "endpoint": delivery.endpoint,
        "finished_at": now if terminal else None,
    }
    if delivery.request_prepared:
        changes.update(request_sealed=delivery.request_sealed, request_display=delivery.request_display)
    return Outcome(delivery, token, attempt, changes, now)


def release(delivery: Delivery, token: uuid.UUID, status: str, *, due_at: datetime.datetime | None, reason: str,
            rate_slot_at: datetime.datetime | None = None) -> bool:
    """Give a claimed delivery back without an attempt; the rendered request is kept."""
    changes = {"status_reason": reason[:300], "due_at": due_at, "rate_slot_at": rate_slot_at,
               "endpoint": delivery.endpoint}
    if delivery.request_prepared:
        changes.update(request_sealed=delivery.request_sealed, request_display=delivery.request_display)
    moved = states.delivery_release(delivery=delivery, token=token, to_status=status, changes=changes)
    if moved:
        delivery.request_prepared = False
    return moved
