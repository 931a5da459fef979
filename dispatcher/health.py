"""Endpoint health and rate limits: per destination (scheme, host and path of a URL) of an organization.

- Every delivery that ends for good counts: a success resets the run of failures, a final failure
  extends it. A run of WEBHOOK_DISABLE_AFTER_FAILURES failures lasting WEBHOOK_DISABLE_AFTER_HOURS
  disables the destination: its deliveries are then put on hold (kept, not sent), the admins are told,
  and enabling it again replays what was held. A 410 Gone disables it at once.
- A rate limit hands out send slots one interval apart with conditional updates, so workers on any
  number of machines share it; a delivery over the limit reserves the next slot and waits for it.
"""
import datetime
import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.models import Organization
from dispatcher import notifications
from dispatcher.models import Delivery, DeliveryStatus, Endpoint
from dispatcher.models.endpoints import destination_of
from dispatcher.delivery import states
from dispatcher.delivery.claims import deliveries_wake

logger = logging.getLogger(__name__)

SLOT_TRIES = 5  # conditional updates tried before a busy destination's slot is given up for this claim
SUCCESS_STAMP_EVERY = datetime.timedelta(minutes=1)  # last_success_at is refreshed at most this often


def endpoint_for(*, organization: Organization, url: str) -> Endpoint:
    endpoint, _ = Endpoint.objects.get_or_create(organization=organization, destination=destination_of(url))
    return endpoint


def endpoint_outcome(*, endpoint: Endpoint, success: bool, now: datetime.datetime) -> None:
    """Count a delivery that ended for good, and disable the destination after a long run of failures."""
    if success:
        # Most successes change nothing: skip the write unless failures were counted or the stamp is old.
        if endpoint.consecutive_failures or not endpoint.last_success_at \
                or now - endpoint.last_success_at > SUCCESS_STAMP_EVERY:
            Endpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0, failing_since=None,
                                                           last_success_at=now)
            endpoint.consecutive_failures, endpoint.failing_since, endpoint.last_success_at = 0, None, now
        return
    Endpoint.objects.filter(pk=endpoint.pk).update(
        consecutive_failures=F("consecutive_failures") + 1, failing_since=Coalesce("failing_since", now),
        last_failure_at=now,
    )
    endpoint.refresh_from_db(fields=["consecutive_failures", "failing_since", "disabled_at"])
    threshold = settings.WEBHOOK_DISABLE_AFTER_FAILURES
    if not threshold or endpoint.consecutive_failures < threshold:
        return
    failing_since = endpoint.failing_since or now  # set by the update above with the first failure
    if now - failing_since < datetime.timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS):
        return
    endpoint_disable(endpoint=endpoint, now=now, reason=(
        f"{endpoint.consecutive_failures} deliveries in a row failed for good since "
        f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC."))


def endpoint_gone(*, endpoint: Endpoint, now: datetime.datetime) -> None:
    """The receiver answered 410 Gone: the endpoint no longer exists, so the destination is disabled at once
    (Standard Webhooks); what is still due for it is held, not sent, until someone enables it again."""
    endpoint_disable(endpoint=endpoint, now=now, reason=(
        f"The receiver answered 410 Gone at {now:%Y-%m-%d %H:%M} UTC: it says this endpoint no longer exists."))


def endpoint_disable(*, endpoint: Endpoint, now: datetime.datetime, reason: str) -> bool:
    """Disable a destination and tell the admins; True if this call disabled it."""
    # Whoever flips disabled_at tells the admins; a concurrent worker finds it set and stays quiet.
    if not Endpoint.objects.filter(pk=endpoint.pk, disabled_at__isnull=True).update(disabled_at=now,
                                                                                      disabled_reason=reason):
        return False
    endpoint.disabled_at, endpoint.disabled_reason = now, reason
    logger.warning("endpoint.disabled endpoint=%s organization=%s failures=%s", endpoint.destination,
                   endpoint.organization_id, endpoint.consecutive_failures)
    notifications.notify_later("dispatcher.notify_endpoint_disabled", endpoint.pk)
    return True


def endpoint_enable(*, endpoint: Endpoint, by: str = "") -> int:
    """Enable a disabled destination and replay its held deliveries (retry policy from the start);
    returns how many were queued again."""
    now = timezone.now()
    with transaction.atomic():
        Endpoint.objects.filter(pk=endpoint.pk).update(disabled_at=None, disabled_reason="", consecutive_failures=0,
                                                       failing_since=None)
        held = list(Delivery.objects.filter(endpoint=endpoint, status=DeliveryStatus.HELD)
                    .order_by("pk").values_list("pk", flat=True))
        states.deliveries_requeue(ids=held, from_statuses=(DeliveryStatus.HELD,), now=now)
        deliveries_wake(held)
    endpoint.refresh_from_db()
    logger.info("endpoint.enabled endpoint=%s replayed=%s by=%s", endpoint.destination, len(held), by or "-")
    return len(held)


def rate_slot_take(*, endpoint: Endpoint, now: datetime.datetime) -> datetime.datetime | None:
    """Reserve the destination's next send slot: None when it is now (send), else the time to wait for."""
    if not endpoint.rate_limit:
        return None  # no limit: always now
    interval = datetime.timedelta(seconds=float(1 / Decimal(endpoint.rate_limit)))
    for _ in range(SLOT_TRIES):
        current = Endpoint.objects.filter(pk=endpoint.pk).values_list("next_slot_at", flat=True).get()
        slot = max(current or now, now)
        if Endpoint.objects.filter(pk=endpoint.pk, next_slot_at=current).update(next_slot_at=slot + interval):
            return None if slot <= now else slot
    # Many workers racing for this destination: wait one interval and ask again then.
    return now + interval
