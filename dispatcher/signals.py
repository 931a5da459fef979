"""Signal wiring of the dispatcher, in one place."""
from django.core.signals import setting_changed

from crm.events import RecordEvent, record_changed


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("WEBHOOK_"):
        from dispatcher.http_client import session_reset

        session_reset()


def _on_record_changed(sender, event: RecordEvent, **kwargs) -> None:
    from dispatcher.channels import record_event_notify

    record_event_notify(event)


def connect() -> None:
    setting_changed.connect(_on_setting_changed, dispatch_uid="dispatcher.setting_changed")
    record_changed.connect(_on_record_changed, dispatch_uid="dispatcher.record_changed")
