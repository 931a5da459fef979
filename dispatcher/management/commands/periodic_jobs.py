"""The periodic jobs (CELERY_BEAT_SCHEDULE) with each one's last run and the scheduler that ran it: with no single
beat process, this is where an operator sees that some scheduler is still running them, and which."""
import datetime
import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from dispatcher.models import PeriodicJob
from dispatcher.ops import periodic


class Command(BaseCommand):
    help = ("List the periodic jobs: interval, last run and the host:pid of the scheduler that ran it (--json adds "
            "the next due time and the number of runs).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", dest="as_json", help="One JSON object per job instead of a table.")

    def handle(self, *args, as_json: bool, **options) -> None:
        now = timezone.now()
        jobs = periodic.jobs_list()
        if as_json:
            for job in jobs:
                self.stdout.write(json.dumps({
                    "name": job.name, "interval_seconds": job.interval_seconds, "due_at": job.due_at.isoformat(),
                    "runs": job.runs, "last_run_at": job.last_run_at.isoformat() if job.last_run_at else None,
                    "last_run_age_seconds": _age(job, now), "last_host": job.last_host}))
            return
        if not jobs:
            self.stdout.write("No periodic jobs yet: no scheduler has started (a worker with -B, or celery beat).")
            return
        self.stdout.write(f"{'job':<28} {'every':>8}  {'last run (UTC)':<19} {'age':>9}  by")
        for job in jobs:
            last = f"{job.last_run_at:%Y-%m-%d %H:%M:%S}" if job.last_run_at else "never"
            age = _age(job, now)
            self.stdout.write(f"{job.name:<28} {job.interval_seconds:>6g} s  {last:<19} "
                              f"{'—' if age is None else f'{age:g} s':>9}  {job.last_host or '—'}")


def _age(job: PeriodicJob, now: datetime.datetime) -> float | None:
    """Seconds since the job last ran, or None if it never has."""
    return round((now - job.last_run_at).total_seconds(), 1) if job.last_run_at else None
