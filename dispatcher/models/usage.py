from django.db import models

from crm.models import Organization
from dispatcher.models.deliveries import DeliverySource, DeliveryStatus

# Upper bounds (ms) of the attempt latency histogram that /metrics exposes; one column per bucket.
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000)


def latency_column(duration_ms: int) -> str:
    """The histogram column an HTTP attempt of this duration is counted in (not cumulative)."""
    bound = next((b for b in LATENCY_BUCKETS_MS if duration_ms <= b), None)
    return f"latency_le_{bound}" if bound else "latency_le_inf"


class UsageCounter(models.Model):
    """Attempts per organization, local day, source and outcome, counted as they happen, so the usage
    chart reads a few rows instead of scanning millions of log rows."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_counters")
    day = models.DateField("day", help_text="A day in the organization's time zone.")
    source = models.CharField("source", max_length=20, choices=DeliverySource.choices)
    outcome = models.CharField("outcome", max_length=20, choices=DeliveryStatus.choices)
    calls = models.PositiveIntegerField("attempts", default=0)
    # Attempts that made an HTTP exchange, by duration, for the latency histogram (docs/operate/monitoring.md).
    latency_count = models.PositiveIntegerField("timed attempts", default=0)
    latency_ms_total = models.BigIntegerField("total duration (ms)", default=0)
    latency_le_50 = models.PositiveIntegerField(default=0)
    latency_le_100 = models.PositiveIntegerField(default=0)
    latency_le_250 = models.PositiveIntegerField(default=0)
    latency_le_500 = models.PositiveIntegerField(default=0)
    latency_le_1000 = models.PositiveIntegerField(default=0)
    latency_le_2500 = models.PositiveIntegerField(default=0)
    latency_le_5000 = models.PositiveIntegerField(default=0)
    latency_le_10000 = models.PositiveIntegerField(default=0)
    latency_le_inf = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "usage counter"
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["organization", "day", "source", "outcome"],
                                               name="usage_counter_unique")]

    def __str__(self) -> str:
        return f"{self.organization} {self.day} {self.source}/{self.outcome}: {self.calls}"
