from django.db import models

from crm.models import Organization


class DailyUsage(models.Model):
    """Webhook calls of one organization on one of its local days: the quota counter and the usage chart."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="webhook_usage",
                                     help_text="Whose quota this day counts.")
    day = models.DateField("day", help_text="A day in the organization's time zone.")
    calls = models.PositiveIntegerField("calls", default=0, help_text="Webhook calls charged to the day's quota.")
    limit_notified = models.BooleanField("admins told about the limit", default=False,
                                         help_text="The admins were told that the limit was reached (once a day).")

    class Meta:
        verbose_name = "daily webhook usage"
        verbose_name_plural = "daily webhook usage"
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["organization", "day"], name="daily_usage_unique_day")]

    def __str__(self) -> str:
        return f"{self.organization} {self.day}: {self.calls}"
