from django.apps import AppConfig


class DispatcherConfig(AppConfig):
    name = "dispatcher"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from dispatcher import signals

        signals.connect()
