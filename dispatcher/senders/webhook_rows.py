"""A webhook's rows as values and in bulk: the parameters and custom headers a save is given (Parameter,
Header), and the configuration import's plan (WebhookRows) with its bulk store (webhooks_store)."""
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from django.db import connection, models

from dispatcher.models import Capture, CustomParameter, EntityParameter, Webhook, WebhookHeader


@dataclass(frozen=True)
class Parameter:
    """An entity or custom parameter as given to a save; its place in the list is the order it is stored in."""

    name: str
    value: str


@dataclass(frozen=True)
class Header:
    """A custom header as given to a save; a secret one is sent as typed and masked wherever it shows."""

    name: str
    value: str
    secret: bool = False


@dataclass
class WebhookRows:
    """A webhook to store with the rows it owns (the import's plan): None leaves that kind as stored.
    fields: the webhook's own fields that differ from what is stored (a stored webhook only)."""

    webhook: Webhook
    fields: list[str] = dataclasses.field(default_factory=list)
    entity_parameters: list[Parameter] | None = None
    custom_parameters: list[Parameter] | None = None
    headers: list[Header] | None = None
    captures: list[Capture] | None = None


BULK_BATCH = 500  # rows per statement when storing an import: large files, statements of a sensible size


def webhooks_store(*, items: list[WebhookRows]) -> None:
    """Store webhooks that webhook_problems found valid (the configuration import; the admin saves one at a
    time with webhook_save): new webhooks and the rows of every kind that changed in one statement per batch
    of BULK_BATCH, a changed webhook's own fields in one UPDATE of just those fields (Django's bulk_update
    builds a CASE per field and row, which costs more than the rows it saves). Every webhook stored counts
    as modified, so workers load it again."""
    stored = {item.webhook.pk for item in items if item.webhook.pk is not None}  # only these have rows to replace
    Webhook.objects.bulk_create([item.webhook for item in items if item.webhook.pk is None], batch_size=BULK_BATCH)
    for item in items:
        if item.webhook.pk in stored:
            item.webhook.save(update_fields=[*item.fields, "modified_at"])
    for model, rows_of in _ROW_KINDS:
        given = [(item.webhook, rows) for item in items if (rows := rows_of(item)) is not None]
        _rows_delete(model, [webhook.pk for webhook, _ in given if webhook.pk in stored])
        model._default_manager.bulk_create([row for webhook, rows in given for row in rows], batch_size=BULK_BATCH)


def _entity_rows(item: WebhookRows) -> list[models.Model] | None:
    return None if item.entity_parameters is None else [
        EntityParameter(webhook=item.webhook, name=p.name, value=p.value, position=i)
        for i, p in enumerate(item.entity_parameters)]


def _custom_rows(item: WebhookRows) -> list[models.Model] | None:
    return None if item.custom_parameters is None else [
        CustomParameter(webhook=item.webhook, name=p.name, value=p.value, position=i)
        for i, p in enumerate(item.custom_parameters)]


def _header_rows(item: WebhookRows) -> list[models.Model] | None:
    return None if item.headers is None else [
        WebhookHeader(webhook=item.webhook, name=h.name, value=h.value, is_secret=h.secret, position=i)
        for i, h in enumerate(item.headers)]


def _capture_rows(item: WebhookRows) -> list[models.Model] | None:
    if item.captures is None:
        return None
    for position, capture in enumerate(item.captures):
        capture.webhook, capture.position = item.webhook, position
    return list(item.captures)


# Each kind of row a webhook owns, and how a plan gives it (None: keep the stored rows).
_ROW_KINDS: list[tuple[type[models.Model], Callable[[WebhookRows], list[models.Model] | None]]] = [
    (EntityParameter, _entity_rows), (CustomParameter, _custom_rows), (WebhookHeader, _header_rows),
    (Capture, _capture_rows),
]


def _rows_delete(model: type[models.Model], webhook_ids: list[int]) -> None:
    """Delete the rows of these webhooks with one statement per batch. Raw SQL on purpose: the ORM's delete
    loads every row to send post_delete, whose handler marks the webhook modified one row at a time, and
    webhooks_store has just set modified_at on every one of them."""
    quote = connection.ops.quote_name
    owner = cast(models.ForeignKey, model._meta.get_field("webhook"))  # every kind of row points to its webhook
    table, column = quote(model._meta.db_table), quote(owner.column)
    with connection.cursor() as cursor:
        for start in range(0, len(webhook_ids), BULK_BATCH):
            chunk = webhook_ids[start:start + BULK_BATCH]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {table} WHERE {column} IN ({placeholders})", chunk)  # noqa: S608 - quoted identifiers, values as parameters
