from django.db import models

from crm.models import Organization
from dispatcher.models.deliveries import DeliverySource, DeliveryStatus


class UsageCounter(models.Model):
    """Attempts per organization, local day, source and outcome, counted as they happen, so the usage
    chart reads a few rows instead of scanning millions of log rows."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_counters")
    day = models.DateField("day", help_text="A day in the organization's time zone.")
    source = models.CharField("source", max_length=20, choices=DeliverySource.choices)
    outcome = models.CharField("outcome", max_length=20, choices=DeliveryStatus.choices)
    calls = models.PositiveIntegerField("attempts", default=0)

    class Meta:
        verbose_name = "usage counter"
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["organization", "day", "source", "outcome"],
                                               name="usage_counter_unique")]

    def __str__(self) -> str:
        return f"{self.organization} {self.day} {self.source}/{self.outcome}: {self.calls}"
