"""Cursor pagination: newest first by id, ``limit`` rows and an opaque ``next_cursor`` for the rest.

A cursor is the last id of a page, so a page never repeats or skips a row while new rows arrive (offsets
do), and the query is an index range however deep the page."""
import base64
from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from ninja import Schema

from crm.api.errors import ApiError

LIMIT_DEFAULT = 50
LIMIT_MAX = 200


class Paging(Schema):
    """The query parameters of a list that takes no filters of its own."""

    cursor: str | None = None
    limit: int | None = None


def cursor_encode(pk: int) -> str:
    return base64.urlsafe_b64encode(f"id:{pk}".encode()).decode().rstrip("=")


def cursor_decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind != "id" or not value.isdecimal() or not value.isascii() or len(value) > 18:
            raise ValueError
        return int(value)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_cursor", "This cursor is not one the API gave out; start again without it.",
                       fields={"cursor": ["Not a cursor of this list."]}) from None


def page(queryset: QuerySet, *, cursor: str | None, limit: int | None, serialize: Callable[[Any], dict]) -> dict:
    """One page of queryset (ordered here, newest first) as {"data": [...], "next_cursor": … or null}."""
    if limit is not None and not 1 <= limit <= LIMIT_MAX:
        raise ApiError(400, "invalid_fields", "Some values are not valid: limit.",
                       fields={"limit": [f"Give a number from 1 to {LIMIT_MAX}."]})
    size = limit or LIMIT_DEFAULT
    queryset = queryset.order_by("-pk")
    if cursor:
        queryset = queryset.filter(pk__lt=cursor_decode(cursor))
    rows = list(queryset[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return {"data": [serialize(row) for row in rows],
            "next_cursor": cursor_encode(rows[-1].pk) if more and rows else None}
