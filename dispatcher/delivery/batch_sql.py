"""One UPDATE for a batch of deliveries, each row conditional on its claim token.

Django's ``bulk_update`` has no per-row condition and no RETURNING, and one ``filter().update()`` per
delivery was the largest cost of a worker after the HTTP request itself (bench/throughput.py). This
writes ``UPDATE … FROM UNNEST(arrays) … RETURNING id`` on PostgreSQL and ``UPDATE … FROM (VALUES …)``
on SQLite (3.35+).
"""
import uuid
from typing import Any

from django.db import connection, models
from django.db.models import Model

from dispatcher.models import Delivery


def deliveries_update_claimed(rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> set[int]:
    """Apply each row's changes to its delivery where the claim token still matches; returns the ids
    that were updated (the others were taken over by another worker meanwhile)."""
    updated: set[int] = set()
    groups: dict[tuple[str, ...], list[tuple[int, uuid.UUID, dict[str, Any]]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[2]), []).append(row)
    for names, group in groups.items():
        updated |= _update(names, group)
    return updated


def _concrete(name: str) -> tuple[models.Field, str]:
    """A field of the delivery table with its column (what the statement assigns)."""
    field = Delivery._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column, f"{name} is not a column"
    return field, field.column


def _update(names: tuple[str, ...], rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> set[int]:
    meta = Delivery._meta
    fields, column_names = zip(*(_concrete(name) for name in ("id", "claim_token", *names)), strict=True)
    table = connection.ops.quote_name(meta.db_table)
    columns: list[list[Any]] = [[] for _ in fields]
    for pk, token, changes in rows:
        values = [pk, token] + [_plain(changes[name]) for name in names]
        for column, field, value in zip(columns, fields, values, strict=True):
            column.append(field.get_db_prep_save(value, connection))
    if connection.vendor == "postgresql":
        # One array per column: the statement's text is the same whatever the batch size, and 14 parameters
        # are bound instead of 14 per row.
        names_in_v = [f"c{i}" for i in range(len(fields))]
        source = ("UNNEST(" + ", ".join(f"%s::{f.cast_db_type(connection)}[]" for f in fields) + ") AS v("
                  + ", ".join(names_in_v) + ")")
        params: list[Any] = columns
    else:  # SQLite names the columns of VALUES column1, column2, …
        names_in_v = [f"column{i + 1}" for i in range(len(fields))]
        source = "(VALUES " + ", ".join(["(" + ", ".join(["%s"] * len(fields)) + ")"] * len(rows)) + ") AS v"
        params = [value for row in zip(*columns, strict=True) for value in row]
    assignments = ", ".join(f"{connection.ops.quote_name(column)} = v.{names_in_v[i]}"
                            for i, column in enumerate(column_names) if i >= 2)
    sql = (f"UPDATE {table} SET {assignments} FROM {source} "
           f"WHERE {table}.id = v.{names_in_v[0]} AND {table}.claim_token = v.{names_in_v[1]} "
           f"AND {table}.{connection.ops.quote_name('status')} = 'dispatched' RETURNING {table}.id")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _plain(value: Any) -> Any:
    """A related object as its primary key, the way the column holds it."""
    return value.pk if isinstance(value, Model) else value
