"""Celery entry points: they take ids and call one service."""
from celery import shared_task
from django.conf import settings
from django.utils import timezone

from crm import services as crm_services
from crm.api.idempotency import idempotent_requests_purge
from crm.api.throttle import api_throttle_windows_purge
from dispatcher import delivery
from dispatcher.senders import channels
from dispatcher.ops import notifications
from dispatcher.senders import secret_rotation

TASK_OPTIONS = {"acks_late": True, "ignore_result": True}
# The e-mails that follow an outcome (dispatcher.notify_*) are tasks of dispatcher/ops/notifications.py, which
# queues them when the outcome commits; this module imports the engine that queues them, so they cannot be
# here. Importing notifications above registers them wherever these tasks are.


@shared_task(name="dispatcher.deliver", soft_time_limit=120, time_limit=150, **TASK_OPTIONS)
def deliver(delivery_id: int) -> None:
    delivery.delivery_run(delivery_id=delivery_id, batch=settings.WEBHOOK_DRAIN_BATCH,
                          budget_seconds=settings.WEBHOOK_DRAIN_SECONDS,
                          linger_seconds=settings.WEBHOOK_DRAIN_LINGER_SECONDS)


@shared_task(name="dispatcher.drain", soft_time_limit=120, time_limit=150, **TASK_OPTIONS)
def drain() -> int:
    return delivery.deliveries_drain(batch=settings.WEBHOOK_DRAIN_BATCH, budget_seconds=settings.WEBHOOK_DRAIN_SECONDS,
                                     linger_seconds=settings.WEBHOOK_DRAIN_LINGER_SECONDS)


@shared_task(name="dispatcher.pump", soft_time_limit=30, time_limit=60, **TASK_OPTIONS)
def pump() -> int:
    return delivery.deliveries_pump()


@shared_task(name="dispatcher.purge_logs", soft_time_limit=600, time_limit=660, **TASK_OPTIONS)
def purge_logs() -> int:
    crm_services.api_rate_windows_purge(now=timezone.now())  # the API's per-key minutes, kept an hour
    api_throttle_windows_purge(now=timezone.now())  # per organization and per address, kept an hour
    secret_rotation.previous_secrets_purge(now=timezone.now())
    idempotent_requests_purge(now=timezone.now())  # Idempotency-Key answers past IDEMPOTENCY_KEY_HOURS
    return delivery.deliveries_purge(older_than_days=settings.WEBHOOK_LOG_RETENTION_DAYS)


@shared_task(name="dispatcher.channels_expiry", soft_time_limit=120, time_limit=150, **TASK_OPTIONS)
def channels_expiry() -> int:
    return channels.channels_expiry_notify()


@shared_task(name="dispatcher.failure_digests", soft_time_limit=240, time_limit=300, **TASK_OPTIONS)
def failure_digests() -> int:
    return notifications.failure_digests_send()
