"""Periodic jobs claimed in the database: any number of schedulers (each worker's embedded beat, or several
`celery beat`) share CELERY_BEAT_SCHEDULE, each job runs once per interval however many there are, and any one
left goes on when the others' hosts die (docs/internals/design/no-single-scheduler.md).

Every statement stands alone (autocommit): no session state, no lock held between two statements, so it
works through PgBouncer in transaction pooling, and on SQLite. Times are the database's clock, never a
host's: schedulers on hosts whose clocks differ agree on what is due.
"""
import datetime
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from django.db.models.functions import Least, Now

from dispatcher.models import PeriodicJob

ABANDONED_AFTER = datetime.timedelta(days=1)  # a job no scheduler ran for this long is no one's any more


def scheduler_host() -> str:
    """What last_host records: the host name and the scheduler's process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def jobs_sync(intervals: Mapping[str, float]) -> None:
    """Make the table the schedule given (names to seconds), as a scheduler starting knows it.

    A new job is due at once; a job whose interval changed is due within its new interval at the latest. A
    job not in this schedule is left to the schedulers that have it (in a rolling deploy, old and new ones run
    side by side): it is deleted only once nobody has run it for ABANDONED_AFTER. Schedulers starting together
    write the same rows: each statement is idempotent, and the last one started wins where settings differ.
    """
    PeriodicJob.objects.exclude(name__in=list(intervals)).filter(due_at__lt=Now() - ABANDONED_AFTER).delete()
    known = dict(PeriodicJob.objects.values_list("name", "interval_seconds"))
    PeriodicJob.objects.bulk_create([PeriodicJob(name=name, interval_seconds=seconds, due_at=Now())
                                     for name, seconds in intervals.items() if name not in known],
                                    ignore_conflicts=True)
    for name, seconds in intervals.items():
        if name in known and known[name] != seconds:
            PeriodicJob.objects.filter(name=name).update(
                interval_seconds=seconds, due_at=Least("due_at", Now() + datetime.timedelta(seconds=seconds)))


@dataclass(frozen=True)
class JobState:
    """A job as one read saw it, with the database's clock at that read."""

    name: str
    interval_seconds: float
    due_at: datetime.datetime
    last_run_at: datetime.datetime | None
    last_host: str
    runs: int
    now: datetime.datetime

    @property
    def is_due(self) -> bool:
        return self.due_at <= self.now

    @property
    def next_due_at(self) -> datetime.datetime:
        """The due time after this one: one interval on, or one interval from now if the schedulers were
        all down for longer (a job missed several times runs once, not once per interval missed)."""
        interval = datetime.timedelta(seconds=self.interval_seconds)
        return self.due_at + interval if self.due_at + interval > self.now else self.now + interval

    @property
    def seconds_to_due(self) -> float:
        return (self.due_at - self.now).total_seconds()


def jobs_read(names: Collection[str]) -> list[JobState]:
    """The jobs of these names, and the database's clock: one SELECT."""
    rows = PeriodicJob.objects.filter(name__in=list(names)).annotate(db_now=Now()).values_list(
        "name", "interval_seconds", "due_at", "last_run_at", "last_host", "runs", "db_now")
    return [JobState(*row) for row in rows]


def job_claim(job: JobState, *, host: str) -> bool:
    """Take the job's run at its due time: True for the one scheduler whose conditional UPDATE moved the row
    on from the run count it read, False for every other (including one whose read is older than another's
    claim: it reads again before it may claim)."""
    return PeriodicJob.objects.filter(name=job.name, runs=job.runs, due_at__lte=job.now).update(
        due_at=job.next_due_at, last_run_at=job.now, last_host=host, runs=job.runs + 1) == 1


def job_release(job: JobState, *, host: str) -> None:
    """Give back a claim whose task could not be sent (the broker was unreachable): the job is due again,
    for whichever scheduler comes next, unless another scheduler has claimed it since."""
    PeriodicJob.objects.filter(name=job.name, runs=job.runs + 1, last_host=host).update(
        due_at=job.due_at, last_run_at=job.last_run_at, last_host=job.last_host, runs=job.runs)


def jobs_list() -> list[PeriodicJob]:
    """Every job with its last run, for the operator (`manage.py periodic_jobs`)."""
    return list(PeriodicJob.objects.order_by("name"))
