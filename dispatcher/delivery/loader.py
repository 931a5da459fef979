"""The loader: claimed deliveries with what their attempts need, in as few statements as possible.

On PostgreSQL the claim statement itself (delivery/claims.py) returns each claimed delivery's row joined to
its endpoint, record, record owner and module, and its webhook's modification time (CLAIM_LOAD): the
objects are built from those rows here, each column converted as the ORM converts it (an encrypted text
decrypted, JSON read). What changes rarely comes from this process's caches: webhooks with their
parameters, headers and captures (reloaded when their modified_at moves: every change goes through a save
or sets it, admin actions included), organizations with their edition and retry policies (at most
RECENT_SECONDS old, so a change such as an edition without webhooks applies within that). Channels are read
fresh, one statement for a claim that has any. On other databases the claimed rows are read with the ORM,
and the webhooks' modification times with one query more.
"""
import functools
import time
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.db.models import Model, Prefetch

from config.caches import VersionedCache, cache_register
from crm.models import CrmUser, Module, Organization, Record
from dispatcher.delivery.claims import Claim, ClaimLoad
from dispatcher.models import Capture, Channel, Delivery, Endpoint, RetryPolicy, Webhook

WEBHOOKS_KEPT = 1000  # webhooks (with their parameters and captures) a process keeps between claims
RECENT_SECONDS = 10.0  # how old an organization or a retry policy kept by a process may be
_webhook_cache: VersionedCache[int, Webhook] = VersionedCache("engine webhooks", size=WEBHOOKS_KEPT)


def deliveries_load(claim: Claim) -> list[Delivery]:
    """The claimed deliveries, in id order, with their webhook or channel, organization, retry policy,
    endpoint (fresh from this claim; None before the first attempt) and record with its owner and module.
    Related objects are shared by the claim's deliveries, not built once per row."""
    if claim.rows is not None:
        deliveries, versions = _built(claim.rows)
    else:
        deliveries = list(Delivery.objects.select_related("endpoint", "record__owner", "record__module")
                          .defer("request_display").filter(pk__in=claim.ids).order_by("pk"))
        webhook_ids = {d.webhook_id for d in deliveries if d.webhook_id is not None}
        versions = dict(Webhook.objects.filter(pk__in=webhook_ids).values_list("pk", "modified_at")) \
            if webhook_ids else {}
    _attach(deliveries, versions)
    return deliveries


def _attach(deliveries: list[Delivery], versions: dict[int, Any]) -> None:
    def ids(attribute: str) -> set[int]:
        return {value for d in deliveries if (value := getattr(d, attribute)) is not None}

    webhooks = _webhooks(versions)
    channels = Channel.objects.in_bulk(ids("channel_id")) if ids("channel_id") else {}
    organizations = _organizations.get(ids("organization_id"))
    policies = _policies.get(ids("retry_policy_id"))
    for webhook in webhooks.values():  # a kept webhook renders with the organization as it is now
        webhook.organization = organizations.get(webhook.organization_id, webhook.organization)
    for delivery in deliveries:
        delivery.organization = organizations[delivery.organization_id]
        delivery.retry_policy = policies[delivery.retry_policy_id]
        delivery.webhook = webhooks.get(delivery.webhook_id) if delivery.webhook_id else None
        delivery.channel = channels.get(delivery.channel_id) if delivery.channel_id else None


def _webhooks(versions: dict[int, Any]) -> dict[int, Webhook]:
    """The webhooks with their parameters and captures, reused while their modified_at stays the same."""
    if not versions:
        return {}
    return _webhook_cache.get_many(versions, lambda stale: Webhook.objects.select_related(
        "organization", "module").prefetch_related(
        "entity_parameters", "custom_parameters", "headers",
        Prefetch("captures", queryset=Capture.objects.select_related("field")),
    ).in_bulk(stale))


class _Recent:
    """Rows of a small table that change rarely (organizations with their edition, retry policies), each kept
    RECENT_SECONDS after it was read; those older are read again together, with the next claim that needs
    them."""

    def __init__(self, name: str, read: Callable[[list[int]], dict[int, Any]]) -> None:
        self.read = read
        self.kept: dict[int, tuple[float, Any]] = {}
        cache_register(name, self.kept.clear)

    def get(self, ids: set[int]) -> dict[int, Any]:
        now = time.monotonic()
        found = {pk: kept[1] for pk in ids if (kept := self.kept.get(pk)) is not None and now - kept[0] < RECENT_SECONDS}
        if stale := [pk for pk in ids if pk not in found]:
            read = self.read(stale)
            if len(self.kept) + len(read) > 10_000:  # a working set far larger than it should be: start over
                self.kept.clear()
            self.kept.update({pk: (now, row) for pk, row in read.items()})
            found.update(read)
        return found


_organizations = _Recent("engine organizations", Organization.objects.select_related("edition").in_bulk)
_policies = _Recent("engine retry policies", RetryPolicy.objects.in_bulk)


# --- PostgreSQL: objects built from the claim statement's rows ------------------------------------------------
class _Part:
    """One model's columns in the claim statement's rows: which, under which alias, and their converters."""

    def __init__(self, model: type[Model], alias: str, fields: list) -> None:
        self.model, self.alias, self.fields = model, alias, fields
        self.names = [field.attname for field in fields]
        self.pk_index = next(n for n, field in enumerate(fields) if field.primary_key)
        self.converters: list[tuple[Any, list]] = []
        for field in fields:
            column = field.get_col(alias)  # as the ORM's compiler finds converters for a column it selects
            self.converters.append((column, connection.ops.get_db_converters(column)
                                    + column.get_db_converters(connection)))

    def columns(self) -> list[str]:
        quote = connection.ops.quote_name
        return [f"{self.alias}.{quote(field.column)}" for field in self.fields]

    def build(self, values: tuple) -> Any:
        if values[self.pk_index] is None:  # LEFT JOIN found nothing (no endpoint yet, a record deleted)
            return None
        converted = []
        for value, (column, converters) in zip(values, self.converters, strict=True):
            for converter in converters:
                value = converter(value, column, connection)
            converted.append(value)
        return self.model.from_db(connection.alias, self.names, converted)


@functools.cache
def _parts() -> tuple[_Part, ...]:
    def fields(model: type[Model]) -> list:
        return [field for field in model._meta.concrete_fields if field.attname != "request_display"]

    # The delivery's columns as the claim's RETURNING names them (request_display is only for the log).
    return (_Part(Delivery, "claimed", fields(Delivery)), _Part(Endpoint, "e", fields(Endpoint)),
            _Part(Record, "r", fields(Record)), _Part(CrmUser, "o", fields(CrmUser)),
            _Part(Module, "m", fields(Module)))


def claim_load() -> ClaimLoad:
    """What the claim statement returns with each delivery: the columns _built reads, in its order."""
    quote = connection.ops.quote_name
    delivery, *joined = _parts()
    table = {part.alias: quote(part.model._meta.db_table) for part in joined}
    joins = (f"LEFT JOIN {table['e']} AS e ON e.id = claimed.{quote('endpoint_id')} "
             f"LEFT JOIN {table['r']} AS r ON r.id = claimed.{quote('record_id')} "
             f"LEFT JOIN {table['o']} AS o ON o.id = r.{quote('owner_id')} "
             f"LEFT JOIN {table['m']} AS m ON m.id = r.{quote('module_id')} "
             f"LEFT JOIN {quote(Webhook._meta.db_table)} AS w ON w.id = claimed.{quote('webhook_id')}")
    columns = [column for part in _parts() for column in part.columns()] + [f"w.{quote('modified_at')}"]
    return ClaimLoad(returning=tuple(field.column for field in delivery.fields), columns=tuple(columns), joins=joins)


def _built(rows: list[tuple]) -> tuple[list[Delivery], dict[int, Any]]:
    """Deliveries (in id order) from claim_load's rows, and the modification time of each one's webhook."""
    delivery_part, endpoint_part, record_part, owner_part, module_part = _parts()
    shared: dict[tuple[type, int], Any] = {}  # one object per endpoint, record, owner and module of the claim

    def one(part: _Part, values: tuple) -> Any:
        key = (part.model, values[part.pk_index])
        if key not in shared:
            shared[key] = part.build(values)
        return shared[key]

    deliveries, versions = [], {}
    for row in sorted(rows, key=lambda r: r[delivery_part.pk_index]):
        start, pieces = 0, []
        for part in (delivery_part, endpoint_part, record_part, owner_part, module_part):
            pieces.append(row[start:start + len(part.fields)])
            start += len(part.fields)
        delivery = delivery_part.build(pieces[0])
        # Set even when the row is gone (deleted since): None then, as select_related leaves it.
        if delivery.endpoint_id is not None:
            delivery.endpoint = one(endpoint_part, pieces[1])
        if delivery.record_id is not None:
            if (record := one(record_part, pieces[2])) is not None:
                record.owner, record.module = one(owner_part, pieces[3]), one(module_part, pieces[4])
            delivery.record = record
        if delivery.webhook_id is not None and row[start] is not None:
            versions[delivery.webhook_id] = row[start]
        deliveries.append(delivery)
    return deliveries, versions
