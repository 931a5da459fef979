from django.apps import AppConfig


class DispatcherConfig(AppConfig):
    name = "dispatcher"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Here, not at the top: signals imports the models, which cannot load before the app registry is
        # ready, and this module is what Django loads to fill it. Importing checks registers the system checks.
        from dispatcher import checks, signals  # noqa: F401

        signals.connect()
