"""Signal wiring of the dispatcher, in one place."""
from django.core.signals import setting_changed


def _on_setting_changed(*, setting: str, **kwargs) -> None:
    if setting.startswith("WEBHOOK_"):
        from dispatcher.http_client import session_reset

        session_reset()


def connect() -> None:
    setting_changed.connect(_on_setting_changed, dispatch_uid="dispatcher.setting_changed")
