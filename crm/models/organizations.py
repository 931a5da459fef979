"""Organizations (the tenants) and their editions (what a plan allows); the metadata version that modules and
fields bump when they change."""
import uuid

from django.core.validators import MinValueValidator
from django.db import models

from crm.formats import DATE_FORMAT_CHOICES, DATETIME_FORMAT_CHOICES, validate_time_zone


class Edition(models.Model):
    """A CRM edition: what an organization's plan allows (webhook quota, webhooks per rule)."""

    code = models.SlugField("code", max_length=50, unique=True, help_text="Stable identifier, e.g. 'professional'.")
    name = models.CharField("name", max_length=100, help_text="Shown to admins, e.g. 'Professional Edition'.")
    webhooks_enabled = models.BooleanField(
        "webhooks available", default=True, help_text="Editions without webhooks refuse webhook definitions."
    )
    daily_call_limit = models.PositiveIntegerField(
        "daily call limit", default=10_000, help_text="Most webhook calls an organization may make per local day."
    )
    calls_per_licence = models.PositiveIntegerField(
        "calls per user licence",
        default=100,
        help_text="Calls per day per user licence; the daily quota is the lower of this total and the daily limit.",
    )
    webhooks_per_rule = models.PositiveSmallIntegerField(
        "webhooks per workflow rule", default=6, help_text="Zoho allows 6 (1 instant + 5 time-based); Vtiger 3."
    )
    instant_webhooks_per_rule = models.PositiveSmallIntegerField(
        "instant webhooks per workflow rule", default=1, help_text="Zoho: 1 (the other 5 are time-based); Vtiger: 3."
    )

    class Meta:
        verbose_name = "edition"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def daily_quota(self, user_licences: int) -> int:
        """The lower of the fixed daily limit and the per-licence allowance (seed 003)."""
        return min(self.daily_call_limit, self.calls_per_licence * user_licences)


class Organization(models.Model):
    """A CRM account (Zoho calls it the company): the tenant every other row belongs to."""

    name = models.CharField("name", max_length=200, help_text="Company name, available as ${Organization.Name}.")
    edition = models.ForeignKey(
        Edition, on_delete=models.PROTECT, related_name="organizations", verbose_name="edition",
        help_text="Decides whether webhooks are available and the daily call quota.",
    )
    user_licences = models.PositiveIntegerField(
        "user licences", default=1, validators=[MinValueValidator(1)],
        help_text="Number of paid user licences; part of the daily webhook quota.",
    )
    time_zone = models.CharField(
        "time zone", max_length=64, default="UTC", validators=[validate_time_zone],
        help_text="IANA time zone; a quota day is a local day, and webhooks render datetimes in it by default.",
    )
    date_format = models.CharField(
        "date format", max_length=32, choices=DATE_FORMAT_CHOICES, default="yyyy-MM-dd",
        help_text="Default format of dates in webhook payloads.",
    )
    datetime_format = models.CharField(
        "date/time format", max_length=32, choices=DATETIME_FORMAT_CHOICES, default="yyyy-MM-dd'T'HH:mm:ssXXX",
        help_text="Default format of date/times in webhook payloads.",
    )
    phone = models.CharField("phone", max_length=50, blank=True, help_text="Available as ${Organization.Phone}.")
    website = models.CharField("website", max_length=200, blank=True, help_text="Available as ${Organization.Website}.")
    street = models.CharField("street", max_length=200, blank=True,
                              help_text="Street and number of the address; the merge field ${Organization.Street}.")
    city = models.CharField("city", max_length=100, blank=True, help_text="The merge field ${Organization.City}.")
    country = models.CharField("country", max_length=100, blank=True,
                               help_text="The merge field ${Organization.Country}.")
    currency_code = models.CharField("currency", max_length=3, default="USD", help_text="ISO 4217 code, e.g. EUR.")
    schema_version = models.UUIDField(
        "metadata version", default=uuid.uuid4, editable=False,
        help_text="Changes whenever a module or field changes, so cached metadata is known to be stale. "
        "Random rather than counted: a rolled-back change can never make an old number mean new metadata.",
    )

    class Meta:
        verbose_name = "organization"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def schema_changed(organization_ids) -> None:
    """Mark the metadata of these organizations as changed (modules or fields were written)."""
    Organization.objects.filter(pk__in=set(organization_ids)).update(schema_version=uuid.uuid4())
