"""Celery entry points: they take ids and call one service."""
import datetime

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from crm import services as crm_services
from crm.api.idempotency import idempotent_requests_purge
from crm.api.throttle import api_throttle_windows_purge
from crm.models import Organization
from dispatcher import channels, delivery, notifications, secret_rotation
from dispatcher.models import Delivery, Endpoint

TASK_OPTIONS = {"acks_late": True, "ignore_result": True}


@shared_task(name="dispatcher.deliver", soft_time_limit=120, time_limit=150, **TASK_OPTIONS)
def deliver(delivery_id: int) -> None:
    delivery.delivery_run(delivery_id=delivery_id, batch=settings.WEBHOOK_DRAIN_BATCH,
                          budget_seconds=settings.WEBHOOK_DRAIN_SECONDS)


@shared_task(name="dispatcher.drain", soft_time_limit=120, time_limit=150, **TASK_OPTIONS)
def drain() -> int:
    return delivery.deliveries_drain(batch=settings.WEBHOOK_DRAIN_BATCH,
                                     budget_seconds=settings.WEBHOOK_DRAIN_SECONDS)


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


# E-mails are tasks of their own, sent after the outcome is stored: a slow mail server (EMAIL_TIMEOUT)
# delays a notification, never a delivery.
NOTIFY_OPTIONS = {"soft_time_limit": 60, "time_limit": 90, **TASK_OPTIONS}


@shared_task(name="dispatcher.notify_delivery_failed", **NOTIFY_OPTIONS)
def notify_delivery_failed(delivery_id: int) -> None:
    found = Delivery.objects.select_related("organization", "record__owner", "channel__owner", "webhook") \
        .filter(pk=delivery_id).first()
    if found is not None:
        notifications.delivery_failed(delivery=found)


@shared_task(name="dispatcher.failure_digests", soft_time_limit=240, time_limit=300, **TASK_OPTIONS)
def failure_digests() -> int:
    return notifications.failure_digests_send()


@shared_task(name="dispatcher.notify_limit_reached", **NOTIFY_OPTIONS)
def notify_limit_reached(organization_id: int, at: str) -> None:
    organization = Organization.objects.select_related("edition").get(pk=organization_id)
    notifications.limit_reached(organization=organization, now=datetime.datetime.fromisoformat(at))


@shared_task(name="dispatcher.notify_endpoint_disabled", **NOTIFY_OPTIONS)
def notify_endpoint_disabled(endpoint_id: int) -> None:
    if (endpoint := Endpoint.objects.select_related("organization").filter(pk=endpoint_id).first()) is not None:
        notifications.endpoint_disabled(endpoint=endpoint)
