"""Follow-ups: the work an attempt causes once its outcome is stored, in DESIGN's order: the response
capture (written into the record as a system change, with its own time bound), then endpoint health,
then the people to tell (e-mails as tasks of their own), then usage counts and the attempt log.
Nothing here can undo or hold up an outcome: a failure is logged and recorded, never raised."""
import logging

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from dispatcher import health, retry
from dispatcher.notifications import delivery_failed_notify
from dispatcher.capture import response_capture
from dispatcher.cleaning import clean_json
from dispatcher.delivery import counters
from dispatcher.delivery.attempt import Outcome
from dispatcher.logs import attempt_log
from dispatcher.models import Attempt, DeliverySource, DeliveryStatus
from dispatcher.usage import UsageTally

logger = logging.getLogger(__name__)


def followups_run(*, outcomes: list[Outcome], updated: set[int], usage: UsageTally) -> None:
    for outcome in outcomes:
        if outcome.delivery.pk in updated:
            _capture(outcome)
    for outcome in outcomes:
        delivery, attempt = outcome.delivery, outcome.attempt
        usage.add(organization=delivery.organization, now=outcome.now, source=_usage_source(delivery),
                  outcome=attempt.outcome, duration_ms=attempt.duration_ms if outcome.timed else None)
        attempt_log(delivery, attempt)
        if delivery.pk not in updated:
            continue
        if outcome.timed and delivery.endpoint is not None and attempt.outcome in (DeliveryStatus.SUCCESS,
                                                                                   DeliveryStatus.FAILED):
            _guarded(health.endpoint_outcome, endpoint=delivery.endpoint, now=outcome.now,
                     success=attempt.outcome == DeliveryStatus.SUCCESS)
            if outcome.result is not None and retry.is_gone(outcome.result):
                _guarded(health.endpoint_gone, endpoint=delivery.endpoint, now=outcome.now)
        if attempt.outcome == DeliveryStatus.FAILED:
            _guarded(delivery_failed_notify, delivery, attempt.error_class)


def _capture(outcome: Outcome) -> None:
    """Response capture for a stored attempt; the result is added to the attempt."""
    delivery, result = outcome.delivery, outcome.result
    if result is None or result.status_code is None or delivery.webhook is None \
            or not delivery.webhook.capture_response:
        return
    try:
        captured = response_capture(webhook=delivery.webhook, record=delivery.record, body=result.body,
                                    success=result.is_success,
                                    mask=outcome.request.mask if outcome.request is not None else str)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.exception("capture.failed delivery=%s", delivery.public_id)
        captured = {"error": "Internal processing error while capturing; see the worker log."}
    if not captured:
        return
    if "error" in captured:
        counters.count("capture", "timeout" if captured.pop("timeout", False) else "error")
    captured, _ = clean_json(captured)
    outcome.attempt.captured = captured
    _guarded(lambda: Attempt.objects.filter(delivery_id=delivery.pk, number=outcome.attempt.number)
             .update(captured=captured))


def _usage_source(delivery) -> str:
    """Attempts after a resend count as replays in the usage chart."""
    return DeliverySource.REPLAY if delivery.resent_at else delivery.source


def _guarded(function, *args, **kwargs) -> None:
    try:
        with transaction.atomic():
            function(*args, **kwargs)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.exception("deliver.followup_failed function=%s", getattr(function, "__name__", function))
