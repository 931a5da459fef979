from django.db import models

from crm.models import Field
from dispatcher.models.webhooks import Webhook


class CaptureWhen(models.TextChoices):
    SUCCESS = "success", "On success"
    FAILURE = "failure", "On failure"


class Capture(models.Model):
    """A value taken from a webhook's response into a field of the record (seed 004: capture response)."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="captures",
                                help_text="The webhook whose answers this capture reads.")
    when = models.CharField("when", max_length=10, choices=CaptureWhen.choices, default=CaptureWhen.SUCCESS,
                            help_text="Evaluated on a 2xx answer (success) or on any other answer (failure).")
    expression = models.CharField(
        "expression", max_length=500,
        help_text="JSONPath such as $.invoice.id, or XPath such as //response/status/text(), as the webhook's "
        "response type says.",
    )
    field = models.ForeignKey(Field, on_delete=models.PROTECT, related_name="+", verbose_name="into field",
                              help_text="A field of the webhook's module; written without firing workflow rules.")
    position = models.PositiveIntegerField("position", default=0, help_text="Captures are evaluated in this order.")

    class Meta:
        verbose_name = "response capture"
        ordering = ["webhook", "when", "position", "id"]

    def __str__(self) -> str:
        return f"{self.expression} → {self.field.label}"
