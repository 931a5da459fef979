"""Recover after an outage, as Svix's recover does: fix the receiver, then queue again every failed delivery
of its webhook or channel since the outage began, each with its delivery id (receivers deduplicate).

One service for the REST API (POST /deliveries/recover/), the deliveries_recover command and the admin.
"""
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import Q

from crm.models import Organization
from dispatcher.delivery.enqueue import deliveries_resend
from dispatcher.models import Channel, Delivery, DeliveryStatus, Webhook
from dispatcher.models.delivery_filters import DeliveryFilters, deliveries_filter

RECOVER_MAX = 10_000  # deliveries one recover queues again; the oldest first, so a second one continues


@dataclass(frozen=True)
class Recovered:
    """How many deliveries were queued again (or would be, in a dry run), and their delivery ids (msg_…)."""

    queued: int
    ids: list[str]


def recover_check(*, organization: Organization | int, filters: DeliveryFilters) -> None:
    """Whether filters say what a recover needs: exactly one webhook or one channel, of this organization,
    and the time the outage began (created_after). ValidationError (by field) or the webhook's or the
    channel's DoesNotExist, whose message says what is missing."""
    if (filters.webhook is None) == (filters.channel is None):
        raise ValidationError({"webhook": ["Give either a webhook id or a channel id."]})
    if filters.created_after is None:
        raise ValidationError({"since": ["Give the time the outage began."]})
    if filters.webhook is not None:
        if not Webhook.objects.filter(pk=filters.webhook, organization=organization).exists():
            raise Webhook.DoesNotExist(f"There is no webhook with id {filters.webhook}.")
    elif "\x00" in str(filters.channel) or not Channel.objects.filter(
            public_id=filters.channel, organization=organization).exists():
        raise Channel.DoesNotExist(f"There is no channel “{filters.channel}”.")


def deliveries_recover(*, organization: Organization | int, filters: DeliveryFilters, by: str,
                       limit: int = RECOVER_MAX, dry_run: bool = False) -> Recovered:
    """Queue again the failed deliveries that filters select (recover_check says what they must give), the
    oldest limit of them, each with its delivery id and the retry policy from the start; by is who asked
    (kept as resent_by). A dry run queues nothing and tells what would be queued."""
    recover_check(organization=organization, filters=filters)
    failed = deliveries_filter(Delivery.objects.filter(organization=organization, status=DeliveryStatus.FAILED),
                               filters)
    chosen = dict(failed.order_by("pk").values_list("pk", "public_id")[:limit])
    if dry_run:  # what deliveries_resend would take: its webhook or channel still exists
        resendable = failed.filter(Q(webhook__isnull=False) | Q(channel__isnull=False), pk__in=chosen)
        ids = [f"msg_{public_id.hex}" for public_id in resendable.values_list("public_id", flat=True)]
        return Recovered(queued=len(ids), ids=ids)
    queued = deliveries_resend(ids=list(chosen), by=by)
    requeued = Delivery.objects.filter(pk__in=chosen, status=DeliveryStatus.QUEUED).values_list("public_id", flat=True)
    return Recovered(queued=queued, ids=[f"msg_{public_id.hex}" for public_id in requeued])
