"""Celery entry points of the workflows app."""
from celery import shared_task

from workflows import engine


@shared_task(name="workflows.fire_due", acks_late=True, ignore_result=True, soft_time_limit=120, time_limit=150)
def fire_due() -> int:
    return engine.runs_fire_due()
