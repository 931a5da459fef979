from django.core.exceptions import ValidationError
from django.db import models

from config.caches import cache_register

MAX_DELAY_SECONDS = 7 * 24 * 3600  # a retry further away than a week is a lost webhook, not a retry
MAX_RETRIES = 20


def validate_delays(value) -> None:
    if not isinstance(value, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in value):
        raise ValidationError("Enter the delays as a list of whole seconds, e.g. [3600, 7200, 14400].")
    if len(value) > MAX_RETRIES:
        raise ValidationError(f"At most {MAX_RETRIES} retries.")
    if any(d < 1 or d > MAX_DELAY_SECONDS for d in value):
        raise ValidationError(f"Each delay must be between 1 second and {MAX_DELAY_SECONDS} seconds (7 days).")


class FailureEmails(models.TextChoices):
    NONE = "none", "None (Zoho: no e-mail when a webhook stops because of the third party)"
    EACH = "each", "One e-mail per failed delivery, to the record owner and the admins"
    DIGEST = "digest", "One e-mail per webhook and hour listing its failures (Vtiger)"


class RetryPolicy(models.Model):
    """When a failed delivery is tried again: a list of delays after the first attempt."""

    ZOHO = "zoho"
    VTIGER = "vtiger"
    STANDARD = "standard"  # Standard Webhooks / Svix: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h

    code = models.SlugField("code", max_length=50, unique=True, help_text="Stable identifier, e.g. 'zoho'.")
    name = models.CharField("name", max_length=100, help_text="How admins pick the policy on a webhook.")
    delays = models.JSONField(
        "retry delays (seconds)", default=list, validators=[validate_delays],
        help_text="Seconds to wait before each retry, counted from the failed attempt. "
        "Zoho: [900] (one retry after 15 minutes). Vtiger: [3600, 7200, 14400]. Standard Webhooks: "
        "[5, 300, 1800, 7200, 18000, 36000, 36000] (8 attempts over 27.6 hours). Each is moved by up to ±WEBHOOK_RETRY_JITTER.",
    )
    max_retry_after = models.PositiveIntegerField(
        "longest Retry-After honoured (seconds)", default=6 * 3600,
        help_text="A 429 or 503 with Retry-After waits that long (at most this) instead of the policy's delay.",
    )

    failure_emails = models.CharField(
        "e-mails on failure", max_length=10, choices=FailureEmails.choices, default=FailureEmails.NONE,
        help_text="Who hears of deliveries that failed for good. Zoho sends none; Vtiger notifies the record owner "
        "and the admins (here as an hourly digest per webhook). The daily-limit notice goes to admins in any case.",
    )

    class Meta:
        verbose_name = "retry policy"
        verbose_name_plural = "retry policies"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def default_id(cls) -> int:
        """The Zoho profile, used when a webhook names no policy; its row comes with the migrations."""
        if cls._default_id is None:
            cls._default_id = cls.objects.values_list("pk", flat=True).get(code=cls.ZOHO)
        return cls._default_id

    _default_id: int | None = None


def _default_id_forget() -> None:
    RetryPolicy._default_id = None


cache_register("default retry policy id", _default_id_forget)
