"""Wake-ups: the only messages the broker carries. Losing one delays a delivery, never loses it
(the pump finds due work in the database), so a broker that is down is logged, not raised."""
import datetime
import logging

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

LATER_MAX_SECONDS = 300  # a longer wait is left to the pump rather than held as an ETA task in a worker


def deliveries_wake(ids: list[int]) -> None:
    """On commit, one wake-up per batch of these deliveries (a woken worker claims a whole batch)."""
    for first in ids[::settings.WEBHOOK_DRAIN_BATCH]:
        transaction.on_commit(lambda pk=first: _send(pk))


def delivery_wake_at(delivery_id: int, when: datetime.datetime) -> None:
    """On commit, a wake-up for this delivery at a later moment (rate limits), if the wait is short."""
    wait = (when - timezone.now()).total_seconds()
    if wait <= LATER_MAX_SECONDS:
        transaction.on_commit(lambda: _send(delivery_id, countdown=max(wait, 0)))


def _send(delivery_id: int, countdown: float | None = None) -> None:
    try:
        current_app.send_task("dispatcher.deliver", args=[delivery_id], countdown=countdown)
    except Exception:  # the broker being down only delays the delivery: the pump will find it
        logger.warning("deliver_wake.failed delivery=%s", delivery_id, exc_info=True)
