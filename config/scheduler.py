"""The Celery beat scheduler (CELERY_BEAT_SCHEDULER) of every process that runs one: each worker of the
Procfile (`celery worker -B`), or any number of `celery beat`. None of them is the single one: each sends a
job's task only when its claim of the job's row wins (dispatcher/ops/periodic.py), so every interval runs once
across the installation, and the survivors go on when a host dies (docs/internals/design/no-single-scheduler.md).

A subclass of celery.beat.Scheduler as Celery documents custom schedulers: the schedule is read from
CELERY_BEAT_SCHEDULE (one place), its entries' tasks are sent with the base class's apply_async; only tick()
and setup_schedule() are the table's.
"""
import logging
from typing import Any

from celery.beat import Scheduler
from celery.schedules import schedule as interval_schedule
from django.core.exceptions import ImproperlyConfigured
from django.db import close_old_connections

from dispatcher.ops import periodic

logger = logging.getLogger(__name__)


def entry_seconds(name: str, entry: Any) -> float:
    """An entry's interval: the claim moves a job on by a fixed interval, so crontab and solar entries are
    refused when the scheduler starts rather than run at a wrong time."""
    if not isinstance(entry.schedule, interval_schedule):
        raise ImproperlyConfigured(f"CELERY_BEAT_SCHEDULE[{name!r}]: {entry.schedule!r} is not an interval; "
                                   "config.scheduler runs jobs every so many seconds (a number or a timedelta).")
    return float(entry.schedule.run_every.total_seconds())


class ClaimingScheduler(Scheduler):
    """Beat's scheduler, with the due times kept in the database and each run claimed there."""

    #: Longest sleep between two looks at the table: another scheduler starting may move a due time earlier.
    max_interval = 30.0
    #: Seconds before the next try when the database or the broker failed.
    retry_seconds = 5.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.host = periodic.scheduler_host()
        self.intervals: dict[str, float] = {}
        self.synced = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        """CELERY_BEAT_SCHEDULE only, without Celery's default entry (celery.backend_cleanup, for a result
        backend the product does not have); the table is synced from it now, or at the first tick the
        database answers."""
        self.merge_inplace(self.app.conf.beat_schedule)
        self.intervals = {name: entry_seconds(name, entry) for name, entry in self.schedule.items()}
        try:
            self._sync()
        except Exception:  # the database not there yet: the first tick syncs
            logger.exception("periodic jobs: could not sync the table with CELERY_BEAT_SCHEDULE; trying again")

    def _sync(self) -> None:
        periodic.jobs_sync(self.intervals)
        self.synced = True
        logger.info("periodic jobs: %d synced with CELERY_BEAT_SCHEDULE by %s", len(self.intervals), self.host)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        """Send the task of every job this scheduler claims now; return the seconds until one is due."""
        try:
            if not self.synced:
                self._sync()
            jobs = periodic.jobs_read(self.intervals)
            if len(jobs) < len(self.intervals):  # a row gone (deleted by hand, or by an older scheduler)
                self._sync()
                jobs = periodic.jobs_read(self.intervals)
            waits = [self._run_if_due(job) for job in jobs]
        except Exception:  # never let the embedded scheduler die with the worker alive: log, and try again
            logger.exception("periodic jobs: the tick failed; trying again in %g s", self.retry_seconds)
            close_old_connections()  # a connection the database dropped (a restart, a failover) is replaced
            return self.retry_seconds
        return max(0.0, min([*waits, self.max_interval]))

    def _run_if_due(self, job: periodic.JobState) -> float:
        if not job.is_due:
            return job.seconds_to_due
        if not periodic.job_claim(job, host=self.host):
            return 0.0  # another scheduler ran it: read its next due time at once
        try:
            self.apply_async(self.schedule[job.name], producer=self.producer, advance=False)
        except Exception:  # whatever the broker raised (or the producer, connecting): the run goes back
            periodic.job_release(job, host=self.host)
            logger.exception("periodic job %s: its task could not be sent; due again", job.name)
            return self.retry_seconds
        logger.info("periodic job %s: run %d sent (task %s, due at %s) by %s", job.name, job.runs + 1,
                    self.schedule[job.name].task, job.due_at.isoformat(), self.host)
        return (job.next_due_at - job.now).total_seconds()

    @property
    def info(self) -> str:
        return "    . jobs -> claimed in the table dispatcher_periodicjob (any number of schedulers)"
