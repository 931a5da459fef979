"""What the delivery engine decided, counted per decision and outcome, and what each sender process has
in flight: kept in the database so that /metrics on any web process reports every worker's figures."""
from django.db import models


class EngineCounter(models.Model):
    """A running count of one engine decision (claim lost, fallback to row-by-row writes, value cut …)."""

    decision = models.CharField("decision", max_length=40)
    outcome = models.CharField("outcome", max_length=40, blank=True)
    count = models.BigIntegerField("count", default=0)

    class Meta:
        verbose_name = "engine counter"
        constraints = [models.UniqueConstraint(fields=["decision", "outcome"], name="engine_counter_unique")]

    def __str__(self) -> str:
        return f"{self.decision}/{self.outcome}: {self.count}"


class SenderProcess(models.Model):
    """One worker process's sender pool, as last reported (every flush of its outcomes)."""

    name = models.CharField("process", max_length=200, unique=True, help_text="host name and process id")
    in_flight = models.PositiveIntegerField("requests in flight", default=0)
    max_in_flight = models.PositiveIntegerField("most requests in flight", default=0)
    seen_at = models.DateTimeField("last report")

    class Meta:
        verbose_name = "sender process"

    def __str__(self) -> str:
        return self.name
