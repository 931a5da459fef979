import functools
from urllib.parse import urlsplit

from django.db import models

from config.caches import cache_register
from crm.models import Organization
from dispatcher.transport.addresses import url_normalise


@functools.lru_cache(maxsize=4096)
def destination_of(url: str) -> str:
    """Scheme, host, port unless the default, and path of the normalised URL (transport.addresses.url_normalise):
    what identifies a receiver, however its URL was spelled; not the query. Kept per URL: a worker asks it
    for every first attempt, and parsing a URL costs more than the rest of finding its endpoint."""
    normalised = url_normalise(url)
    parts = urlsplit(normalised)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme.lower()}://{host}{port}{parts.path or '/'}"[:200]


class Endpoint(models.Model):
    """A destination (scheme, host and path of a URL) of one organization, with its recent health.

    Webhooks and event-subscription channels that point to the same place share it: a receiver that is
    down is down for all of them, and a rate limit protects the receiver whatever sends to it.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="endpoints",
                                     help_text="Destinations are tracked per organization.")
    destination = models.CharField("destination", max_length=200,
                                   help_text="Scheme, host and path of the URL; the query string is not part of it.")
    consecutive_failures = models.PositiveIntegerField(
        "failures in a row", default=0, help_text="Deliveries that failed for good since the last success.")
    failing_since = models.DateTimeField("failing since", null=True, blank=True,
                                         help_text=("The first failure of the current run of failures; empty while it "
                                                    "answers."))
    last_success_at = models.DateTimeField("last success", null=True, blank=True,
                                           help_text="The last attempt that succeeded.")
    last_failure_at = models.DateTimeField("last failure", null=True, blank=True,
                                           help_text="The last attempt that failed.")
    disabled_at = models.DateTimeField(
        "disabled", null=True, blank=True,
        help_text="While set, deliveries to this destination are put on hold (kept, not sent).")
    disabled_reason = models.CharField("why disabled", max_length=300, blank=True,
                                       help_text="Why it was disabled (failing for too long, or 410 Gone).")
    rate_limit = models.DecimalField(
        "rate limit (requests per second)", max_digits=7, decimal_places=2, null=True, blank=True,
        help_text="At most this many requests per second to this destination; deliveries over it wait. "
        "Empty: no limit.")
    next_slot_at = models.DateTimeField("next free slot", null=True, blank=True, editable=False,
                                        help_text="The next send time its rate limit allows.")

    class Meta:
        verbose_name = "endpoint"
        ordering = ["organization", "destination"]
        constraints = [models.UniqueConstraint(fields=["organization", "destination"], name="endpoint_unique")]

    def __str__(self) -> str:
        return self.destination

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None


cache_register("destinations of URLs", destination_of.cache_clear)
