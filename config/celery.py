"""The Celery application: configuration comes from Django settings (CELERY_ prefix)."""
import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
@signals.beat_init.connect
def _refuse_insecure_start(sender=None, **kwargs) -> None:
    from dispatcher.checks import insecure_start_reason

    if reason := insecure_start_reason("Celery worker" if "Worker" in type(sender).__name__ else "Celery beat"):
        raise SystemExit(reason)  # not an Exception: Celery logs those from signal handlers and goes on
