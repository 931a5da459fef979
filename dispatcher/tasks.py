"""Celery entry points: they take ids and call one outbox service."""
from celery import shared_task
from django.conf import settings

from dispatcher import channels, outbox

TASK_OPTIONS = {"acks_late": True, "ignore_result": True}


@shared_task(name="dispatcher.deliver", soft_time_limit=120, time_limit=150, **TASK_OPTIONS)
def deliver(delivery_id: int) -> None:
    outbox.delivery_run(delivery_id=delivery_id, batch=settings.WEBHOOK_DRAIN_BATCH,
                        budget_seconds=settings.WEBHOOK_DRAIN_SECONDS)


@shared_task(name="dispatcher.drain", soft_time_limit=240, time_limit=300, **TASK_OPTIONS)
def drain() -> int:
    return outbox.deliveries_drain(batch=settings.WEBHOOK_DRAIN_BATCH, budget_seconds=settings.WEBHOOK_DRAIN_SECONDS)


@shared_task(name="dispatcher.pump", soft_time_limit=30, time_limit=60, **TASK_OPTIONS)
def pump() -> int:
    return outbox.deliveries_pump()


@shared_task(name="dispatcher.purge_logs", soft_time_limit=600, time_limit=660, **TASK_OPTIONS)
def purge_logs() -> int:
    return outbox.deliveries_purge(older_than_days=settings.WEBHOOK_LOG_RETENTION_DAYS)


@shared_task(name="dispatcher.channels_expiry", soft_time_limit=120, time_limit=150, **TASK_OPTIONS)
def channels_expiry() -> int:
    return channels.channels_expiry_notify()
