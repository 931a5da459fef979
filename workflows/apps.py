from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflow rules"

    def ready(self) -> None:
        # Here, not at the top: signals imports the models, which cannot load before the app registry is
        # ready, and this module is what Django loads to fill it (the usual place to connect signals).
        from workflows import signals

        signals.connect()
