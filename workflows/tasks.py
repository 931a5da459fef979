"""Celery entry points of the workflows app."""
from celery import shared_task

from workflows import config_io, engine


@shared_task(name="workflows.fire_due", acks_late=True, ignore_result=True, soft_time_limit=120, time_limit=150)
def fire_due() -> int:
    return engine.runs_fire_due()


# acks_late: a worker that dies mid-import rolled its transaction back. A message redelivered after
# JOB_TIME_LIMIT_SECONDS imports the file again; one redelivered sooner finds the job running and leaves it,
# and the job then shows as failed ("send the file again") once that time has passed.
@shared_task(name="workflows.config_import", acks_late=True, ignore_result=True,
             soft_time_limit=config_io.JOB_TIME_LIMIT_SECONDS - 60, time_limit=config_io.JOB_TIME_LIMIT_SECONDS)
def config_import(job_id: int) -> None:
    """A configuration file too large for a web request (workflows.config_jobs)."""
    config_io.config_import_job_run(job_id=job_id)
