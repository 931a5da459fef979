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
from dispatcher.ops import notifications
from dispatcher.models import Delivery, DeliveryStatus, Endpoint
from dispatcher.models.endpoints import destination_of
from dispatcher.delivery import states
from dispatcher.delivery.wakeups import deliveries_wake

logger = logging.getLogger(__name__)

SLOT_TRIES = 5  # conditional updates tried before a busy destination's slot is given up for this claim
SUCCESS_STAMP_EVERY = datetime.timedelta(minutes=1)  # last_success_at is refreshed at most this often


def endpoint_for(*, organization: Organization, url: str) -> Endpoint:
    endpoint, _ = Endpoint.objects.get_or_create(organization=organization, destination=destination_of(url))
    return endpoint


def endpoint_outcome(*, endpoint: Endpoint, success: bool, now: datetime.datetime) -> None:
    """Count a delivery that ended for good, and disable the destination after a long run of failures."""
    endpoint_outcomes(endpoint=endpoint, ended=[(success, now)])


def endpoint_outcomes(*, endpoint: Endpoint, ended: list[tuple[bool, datetime.datetime]]) -> None:
    """Count deliveries to this destination that ended for good (success or not, and when), in the order they
    ended, with at most one UPDATE for all of them (a worker's batch); then disable the destination after a
    long run of failures."""
    if not ended:
        return
    last_success = max((n for n, (success, _) in enumerate(ended) if success), default=None)
    failures = [when for success, when in ended if not success]
    if last_success is None:  # a run of failures goes on: counted on top of what other workers counted
        Endpoint.objects.filter(pk=endpoint.pk).update(
            consecutive_failures=F("consecutive_failures") + len(failures),
            failing_since=Coalesce("failing_since", failures[0]), last_failure_at=failures[-1])
        endpoint.refresh_from_db(fields=["consecutive_failures", "failing_since", "disabled_at"])
        _disable_if_failing(endpoint, failures[-1])
        return
    succeeded_at = ended[last_success][1]
    run = [when for success, when in ended[last_success + 1:]]  # failures since the last success
    # Most successes change nothing: skip the write unless failures were counted or the stamp is old.
    if not failures and not endpoint.consecutive_failures and endpoint.last_success_at \
            and succeeded_at - endpoint.last_success_at <= SUCCESS_STAMP_EVERY:
        return
    changes: dict = {"consecutive_failures": len(run), "failing_since": run[0] if run else None,
                     "last_success_at": succeeded_at}
    if failures:
        changes["last_failure_at"] = failures[-1]
    Endpoint.objects.filter(pk=endpoint.pk).update(**changes)
    for name, value in changes.items():
        setattr(endpoint, name, value)
    if run:
        _disable_if_failing(endpoint, run[-1])


def _disable_if_failing(endpoint: Endpoint, now: datetime.datetime) -> None:
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
    logger.warning("endpoint.disabled", extra={"endpoint_id": endpoint.pk, "organization_id": endpoint.organization_id,
                                               "failures": endpoint.consecutive_failures})
    notifications.notify_later(notifications.notify_endpoint_disabled, endpoint.pk)  # once disabled_at commits
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
    logger.info("endpoint.enabled", extra={"endpoint_id": endpoint.pk, "organization_id": endpoint.organization_id,
                                           "replayed": len(held), "by": by})
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
