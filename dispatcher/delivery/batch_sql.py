"""One UPDATE for a batch of deliveries, each row conditional on its claim token.

Django's ``bulk_update`` has no per-row condition and no RETURNING, and one ``filter().update()`` per
delivery was the largest cost of a worker after the HTTP request itself (bench/throughput.py). This
writes ``UPDATE … FROM (VALUES …) RETURNING id``, which PostgreSQL and SQLite (3.35+) both run.
"""
import uuid
from typing import Any

from django.db import connection
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


def _update(names: tuple[str, ...], rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> set[int]:
    meta = Delivery._meta
    fields = [meta.get_field("id"), meta.get_field("claim_token")] + [meta.get_field(name) for name in names]
    postgres = connection.vendor == "postgresql"
    table = connection.ops.quote_name(meta.db_table)

    def value_of(column: int) -> str:
        # A VALUES column that is NULL in every row has no type on PostgreSQL: cast it to the field's own.
        return f"CAST(v.column{column} AS {fields[column - 1].cast_db_type(connection)})" if postgres else f"v.column{column}"

    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = {value_of(i)}"
                            for i, f in enumerate(fields[2:], start=3))
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params: list[Any] = []
    for pk, token, changes in rows:
        values = [pk, token] + [_plain(changes[name]) for name in names]
        params += [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    sql = (f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([placeholders] * len(rows))}) AS v "
           f"WHERE {table}.id = {value_of(1)} AND {table}.claim_token = {value_of(2)} "
           f"AND {table}.{connection.ops.quote_name('status')} = 'dispatched' RETURNING {table}.{connection.ops.quote_name('id')}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def _plain(value: Any) -> Any:
    """A related object as its primary key, the way the column holds it."""
    return value.pk if isinstance(value, Model) else value
