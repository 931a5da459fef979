"""The periodic jobs of CELERY_BEAT_SCHEDULE, one row each: whichever scheduler moves a due row on runs the
job, so any number of them (one per worker, or several `celery beat`) run it once per interval
(docs/internals/design/no-single-scheduler.md)."""
from django.db import models


class PeriodicJob(models.Model):
    """One entry of CELERY_BEAT_SCHEDULE, as last synced by a scheduler starting, and its last run."""

    name = models.CharField("name", max_length=200, unique=True, help_text="The entry's key in CELERY_BEAT_SCHEDULE.")
    interval_seconds = models.FloatField("interval (seconds)", help_text="Seconds between two runs.")
    due_at = models.DateTimeField("due at", help_text="When a scheduler runs the job next (the database's clock).")
    last_run_at = models.DateTimeField("last run", null=True, blank=True,
                                       help_text="When a scheduler last claimed the job and sent its task.")
    runs = models.PositiveBigIntegerField("runs", default=0, help_text="Runs claimed so far, each by one scheduler: "
                                         "a claim is taken only from the count it read, so each due time runs once.")
    last_host = models.CharField("last run by", max_length=200, blank=True,
                                 help_text="Host name and process id of the scheduler that last ran the job.")

    class Meta:
        verbose_name = "periodic job"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
