"""What a look at the delivery log may ask for, and the one place it becomes a query.

The REST API's list, the admin's list and its CSV export (dispatcher.selectors.deliveries_list) and a
recover (dispatcher.delivery.recover) all narrow the log with DeliveryFilters, so the same filters select
the same deliveries wherever they are given. It sits with the tables, below the engine and the selectors,
because both use it.
"""
import datetime
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

from django.db.models import Q, QuerySet
from django.utils.text import smart_split, unescape_string_literal

from dispatcher.models.deliveries import Delivery

StatusClass = Literal["2", "3", "4", "5", "none"]  # the HTTP status's first digit, or no answer at all
SEARCHED = ("record_ref", "webhook_name", "request_display", "trigger")  # what the admin's search box looks in


@dataclass(frozen=True, kw_only=True)
class DeliveryFilters:
    """Every field narrows the log; a field left at its default does not. Where each comes from:

    ==================  ============================  =================================================
    field               REST API (GET /deliveries/)   admin list and CSV export (query parameter)
    ==================  ============================  =================================================
    status              status (repeatable)           status (status__exact)
    status_class        -                             HTTP status (http=2…5 or none)
    webhook             webhook                       webhook (webhook__id__exact)
    no_webhook          -                             webhook: Empty (webhook__isnull)
    channel             channel (ch_…)                -
    channel_pk          -                             channel (channel__id__exact)
    no_channel          -                             channel: Empty (channel__isnull)
    record              record                        -
    module              -                             module (module=, the webhook's module)
    source              source                        source (source__exact)
    trigger             -                             trigger (recent) (trigger=)
    error_class         error_class                   -
    created_after       created_after                 created (created_at__gte)
    created_before      created_before                created (created_at__lt)
    search              -                             the search box (q=)
    ==================  ============================  =================================================

    The admin's organization filter (superusers) is deliveries_list's organization.
    """

    status: Collection[str] = ()
    status_class: StatusClass | None = None
    webhook: int | None = None
    no_webhook: bool = False
    channel: str | None = None
    channel_pk: int | None = None
    no_channel: bool = False
    record: int | None = None
    module: str | None = None
    source: str | None = None
    trigger: str | None = None
    error_class: str | None = None
    created_after: datetime.datetime | None = None
    created_before: datetime.datetime | None = None
    search: str = ""


def deliveries_filter(deliveries: QuerySet[Delivery], filters: DeliveryFilters) -> QuerySet[Delivery]:
    """deliveries narrowed by filters. A text with a NUL matches nothing (no row holds one, and PostgreSQL
    refuses it in a query)."""
    wanted: dict[str, Any] = {
        "status__in": list(filters.status) or None, "webhook_id": filters.webhook,
        "channel__public_id": filters.channel, "channel_id": filters.channel_pk, "record_id": filters.record,
        "webhook__module__api_name": filters.module, "source": filters.source, "trigger": filters.trigger,
        "last_error_class": filters.error_class, "created_at__gte": filters.created_after,
        "created_at__lt": filters.created_before,
        "webhook__isnull": filters.no_webhook or None, "channel__isnull": filters.no_channel or None,
    }
    wanted = {lookup: value for lookup, value in wanted.items() if value is not None}
    texts = [*filters.status, *(value for value in wanted.values() if isinstance(value, str)), filters.search]
    if any("\x00" in text for text in texts):
        return deliveries.none()
    deliveries = deliveries.filter(_status_class(filters.status_class), **wanted)
    return deliveries.filter(_search(filters.search)) if filters.search.strip() else deliveries


def _status_class(value: StatusClass | None) -> Q:
    if value == "none":
        return Q(last_status_code__isnull=True)
    if value in ("2", "3", "4", "5"):
        low = int(value) * 100
        return Q(last_status_code__gte=low, last_status_code__lt=low + 100)
    return Q()  # None, or a value the admin's filter does not offer: it ignores those


def _search(text: str) -> Q:
    """As the admin's search box finds: every word (or "quoted phrase") in one of SEARCHED, or the whole
    text is a delivery id (msg_…, or the bare UUID)."""
    found = Q()
    for word in smart_split(text):
        if word.startswith(('"', "'")) and word[0] == word[-1]:
            word = unescape_string_literal(word)
        found &= Q.create([(f"{name}__icontains", word) for name in SEARCHED], connector=Q.OR)
    try:
        return found | Q(public_id=uuid.UUID(text.strip().removeprefix("msg_")))
    except ValueError:
        return found
