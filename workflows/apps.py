from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflow rules"

    def ready(self) -> None:
        from workflows import signals

        signals.connect()
