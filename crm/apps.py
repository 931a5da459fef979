from django.apps import AppConfig


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        # Here, not at the top: signals imports the models, which cannot load before the app registry is
        # ready, and this module is what Django loads to fill it (the usual place to connect signals).
        from crm import signals

        signals.connect()
