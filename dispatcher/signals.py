"""Signal wiring of the dispatcher, in one place."""
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from config.caches import caches_reset
from crm.events import RecordEvent, record_changed
from dispatcher.models import Capture, CustomParameter, EntityParameter, Webhook, WebhookHeader
from dispatcher.senders.channels import record_event_notify


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("WEBHOOK_"):
        caches_reset()


def _on_record_changed(sender, event: RecordEvent, **kwargs) -> None:
    record_event_notify(event)


def _on_webhook_part_changed(sender, instance, **kwargs) -> None:
    """A parameter or capture changed: the webhook counts as modified, so workers load it again
    (dispatcher/delivery/loader.py keeps webhooks while their modified_at stays the same)."""
    Webhook.objects.filter(pk=instance.webhook_id).update(modified_at=timezone.now())


def connect() -> None:
    setting_changed.connect(_on_setting_changed, dispatch_uid="dispatcher.setting_changed")
    record_changed.connect(_on_record_changed, dispatch_uid="dispatcher.record_changed")
    for model in (Capture, CustomParameter, EntityParameter, WebhookHeader):
        for signal in (post_save, post_delete):
            signal.connect(_on_webhook_part_changed, sender=model,
                           dispatch_uid=f"dispatcher.{model.__name__}.{signal is post_save}")
