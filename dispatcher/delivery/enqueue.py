"""Enqueue: delivery rows (the queue and the log) written in the caller's transaction, resends, and deliveries that
only enter the log: cancelled without ever being sent, or test sends made at once from the admin.
Workers are woken when the transaction commits."""
import datetime
import logging
import uuid
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from crm.models import Record
from dispatcher.delivery import states
from dispatcher.delivery.attempt import RESPONSE_EXCERPT_CHARS
from dispatcher.delivery.rows import delivery_new
from dispatcher.delivery.wakeups import deliveries_wake
from dispatcher.transport import errors
from dispatcher.transport.cleaning import clean_headers, clean_text
from dispatcher.transport.result import HttpResult
from dispatcher.models import Attempt, Delivery, DeliverySource, DeliveryStatus, Webhook
from dispatcher.rendering.request import webhook_render_unsigned
from dispatcher.transport.request import RenderedRequest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Enqueue:
    """One delivery to make: which webhook, for which record, why, and when (None: now)."""

    webhook: Webhook
    record: Record
    source: str = DeliverySource.WORKFLOW
    trigger: str = ""
    due_at: datetime.datetime | None = None
    render_now: bool = False  # for a record about to be deleted


def delivery_enqueue(
    *, webhook: Webhook, record: Record, source: str = DeliverySource.WORKFLOW, trigger: str = "",
    due_at: datetime.datetime | None = None, render_now: bool = False,
) -> Delivery:
    """Write a delivery in the caller's transaction; a worker is woken when it commits."""
    return deliveries_enqueue([Enqueue(webhook, record, source, trigger, due_at, render_now)])[0]


def deliveries_enqueue(items: list[Enqueue]) -> list[Delivery]:
    """Write deliveries in the caller's transaction with one insert; on commit one wake-up per batch of
    them reaches the broker (a woken worker claims a whole batch)."""
    now = timezone.now()
    deliveries = []
    for item in items:
        webhook, record = item.webhook, item.record
        delivery = delivery_new(sender=webhook, record=record, source=item.source, trigger=item.trigger,
                                due_at=item.due_at or now)  # refused first if the edition has no webhooks
        if record.module_id != webhook.module_id:
            raise ValidationError(f"Webhook “{webhook.name}” is for {webhook.module.api_name} records, not "
                                  f"{record.module.api_name}.")
        if item.render_now:
            request = webhook_render_unsigned(webhook=webhook, record=record)
            delivery.request_sealed, delivery.request_display = request.seal(), request.masked().as_text()
        deliveries.append(delivery)
    return deliveries_insert(deliveries)


def deliveries_insert(deliveries: list[Delivery]) -> list[Delivery]:
    """Insert prepared deliveries (webhook or channel) with one statement; workers are woken on commit. One
    in a status it cannot be created with is refused (states.IllegalMove, from DeliveryQuerySet.bulk_create)."""
    now = timezone.now()
    Delivery.objects.bulk_create(deliveries)
    deliveries_wake([d.pk for d in deliveries if d.due_at and d.due_at <= now])
    return deliveries


def deliveries_resend(*, ids: list[int], by: str) -> int:
    """Send ended deliveries again: same delivery id (receivers deduplicate), the retry policy from the
    start, and the quota and the guarded client as for any attempt. Returns how many were queued."""
    now = timezone.now()
    with transaction.atomic():
        chosen = list(Delivery.objects.filter(Q(webhook__isnull=False) | Q(channel__isnull=False), pk__in=ids,
                                              status__in=states.RESENDABLE).values_list("pk", flat=True))
        count = states.deliveries_requeue(ids=chosen, from_statuses=states.RESENDABLE, now=now,
                                          resent_by=by[:150], resent_at=now)
        deliveries_wake(chosen)
    logger.info("deliver.resend", extra={"count": count, "by": by})
    return count


def delivery_log_cancelled(
    *, webhook: Webhook, record: Record | None, record_ref: str, trigger: str, reason: str
) -> Delivery:
    """A delivery that was due but will not be sent (its record is gone or no longer qualifies), for the log:
    created Cancelled (and finished), which no worker claims."""
    delivery = delivery_new(sender=webhook, record=record, record_ref=record_ref, source=DeliverySource.WORKFLOW,
                            trigger=trigger, status=DeliveryStatus.CANCELLED, status_reason=reason[:300])
    delivery.save(force_insert=True)
    return delivery


def delivery_log_test(*, webhook: Webhook, record: Record, request: RenderedRequest, result: HttpResult,
                      started_at: datetime.datetime, by: str, public_id) -> Delivery:
    """A test send from the admin, in the log as a delivery of source "Test" with its one attempt (masked
    as every attempt is). It went out at once through the guarded client, outside the engine: it is not
    retried and not charged to the daily quota, but it is shown and counted in the usage.

    Logged after the fact, in one transaction, through the moves any delivery makes (Queued, Dispatched to
    this process, then Success or Failed): never visible half-way, so no worker can claim it and send it
    again, and it holds the same columns as an engine's delivery."""
    error_class = errors.error_class_of(result)
    status = DeliveryStatus.SUCCESS if result.is_success else DeliveryStatus.FAILED
    reason = "" if result.is_success else errors.failure_reason(error_class, result.error_message,
                                                                "a test send is not retried.")
    headers, _ = clean_headers({name: request.mask(value) for name, value in result.headers.items()})
    body, _ = clean_text(request.mask(result.body.decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS]))
    token = uuid.uuid4()
    with transaction.atomic():
        delivery = delivery_new(sender=webhook, record=record, source=DeliverySource.TEST,
                                trigger=f"Test send by {by}", public_id=public_id,
                                request_display=clean_text(request.masked().as_text())[0])
        delivery.save(force_insert=True)  # due_at empty: never due to a worker
        states.deliveries_dispatch(rows=Delivery.objects.filter(pk=delivery.pk), token=token,
                                   lease_until=timezone.now())
        Attempt.objects.create(
            delivery=delivery, number=1, started_at=started_at, duration_ms=result.duration_ms,
            status_code=result.status_code, error_class=error_class,
            error_message=clean_text(result.error_message)[0][:500], response_truncated=result.truncated,
            outcome=status, response_headers=headers, response_body=body,
        )
        states.deliveries_conclude([(delivery.pk, token, {
            "status": status, "status_reason": clean_text(reason)[0][:300], "last_status_code": result.status_code,
            "last_error_class": error_class, "last_duration_ms": result.duration_ms,
        })])
    delivery.refresh_from_db()
    return delivery
