from django.apps import AppConfig


class DispatcherConfig(AppConfig):
    name = "dispatcher"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        from dispatcher import checks, signals  # noqa: F401 - checks registers the system checks

        signals.connect()
