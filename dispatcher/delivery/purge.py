"""Purge: ended deliveries (with their attempts) older than the retention period, in small batches."""
import datetime
import logging

from django.utils import timezone

from dispatcher.models import Delivery
from dispatcher.models.deliveries import TERMINAL_STATUSES

logger = logging.getLogger(__name__)

PURGE_BATCH = 1000  # deliveries deleted per statement, so a large purge never holds long locks


def deliveries_purge(*, older_than_days: int, now: datetime.datetime | None = None) -> int:
    """Delete ended deliveries (with their attempts) that finished before the retention period."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=older_than_days)
    old = Delivery.objects.filter(status__in=TERMINAL_STATUSES, finished_at__lt=cutoff)
    purged = 0
    while batch := list(old.values_list("pk", flat=True)[:PURGE_BATCH]):
        Delivery.objects.filter(pk__in=batch).delete()
        purged += len(batch)
    logger.info("deliver.purge", extra={"count": purged, "cutoff": cutoff.isoformat()})
    return purged
