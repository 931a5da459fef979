"""One UPDATE for a batch of deliveries, each row conditional on its claim token, and one INSERT for a
batch of attempts.

Django's ``bulk_update`` has no per-row condition and no RETURNING, and one ``filter().update()`` per
delivery was the largest cost of a worker after the HTTP request itself (bench/throughput.py). On
PostgreSQL the whole batch travels as one JSON document (``json.dumps``, in C) read with
``json_to_recordset``: ``UPDATE … FROM json_to_recordset(…) … RETURNING id`` and ``INSERT … SELECT … FROM
json_to_recordset(…)``. Arrays of values (UNNEST) cost a worker more than the rest of storing an outcome:
the driver writes each element of each array in Python, with a regular expression per text. On SQLite
(3.35+) the update is ``UPDATE … FROM (VALUES …)`` and the insert Django's bulk_create.
"""
import json
import operator
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection, models
from django.db.models import Model

from dispatcher.models import Attempt, Delivery


def deliveries_update_claimed(rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> set[int]:
    """Apply each row's changes to its delivery where the claim token still matches; returns the ids
    that were updated (the others were taken over by another worker meanwhile)."""
    if not rows:
        return set()
    if connection.vendor == "postgresql":
        return _update_json(rows)
    updated: set[int] = set()
    groups: dict[tuple[str, ...], list[tuple[int, uuid.UUID, dict[str, Any]]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[2]), []).append(row)
    for names, group in groups.items():
        updated |= _update(names, group)
    return updated


def _concrete(name: str, model: type[Model] = Delivery) -> tuple[models.Field, str]:
    """A field of the delivery table (or another model's) with its column (what the statement assigns)."""
    field = model._meta.get_field(name)
    assert isinstance(field, models.Field) and field.column, f"{name} is not a column"
    return field, field.column


def _update(names: tuple[str, ...], rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> set[int]:
    """SQLite: UPDATE … FROM (VALUES …), whose columns are named column1, column2, …"""
    meta = Delivery._meta
    fields, column_names = zip(*(_concrete(name) for name in ("id", "claim_token", *names)), strict=True)
    table = connection.ops.quote_name(meta.db_table)
    columns: list[list[Any]] = [[] for _ in fields]
    for pk, token, changes in rows:
        values = [pk, token] + [_plain(changes[name]) for name in names]
        for column, field, value in zip(columns, fields, values, strict=True):
            column.append(field.get_db_prep_save(value, connection))
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


def _update_json(rows: list[tuple[int, uuid.UUID, dict[str, Any]]]) -> set[int]:
    """PostgreSQL: the whole batch in one statement, whatever changes each row has. A column that only some
    rows change keeps its value in the others (a flag per row says which: "set.<column>")."""
    quote = connection.ops.quote_name
    table = quote(Delivery._meta.db_table)
    names = list(dict.fromkeys(name for _, _, changes in rows for name in changes))
    partial = {name for name in names if any(name not in changes for _, _, changes in rows)}
    fields = {name: _concrete(name) for name in names}
    convert = {name: _json_value(field) for name, (field, _) in fields.items()}
    document = []
    for pk, token, changes in rows:
        row = {"match.id": pk, "match.claim_token": str(token)}  # apart from the changes (claim_token: None)
        for name, value in changes.items():
            row[fields[name][1]] = convert[name](value)
            if name in partial:
                row[f"set.{fields[name][1]}"] = True
        document.append(row)
    definitions = ['"match.id" bigint', '"match.claim_token" uuid']
    definitions += [f"{quote(column)} {_record_type(field)}" for field, column in fields.values()]
    definitions += [f"{quote('set.' + fields[name][1])} boolean" for name in names if name in partial]
    assignments = []
    for name in names:
        column = quote(fields[name][1])
        if name in partial:
            flag = quote("set." + fields[name][1])
            assignments.append(f"{column} = CASE WHEN v.{flag} THEN v.{column} ELSE {table}.{column} END")
        else:
            assignments.append(f"{column} = v.{column}")
    sql = (f"UPDATE {table} SET {', '.join(assignments)} "
           f"FROM json_to_recordset(%s::json) AS v({', '.join(definitions)}) "
           f'WHERE {table}.id = v."match.id" AND {table}.claim_token = v."match.claim_token" '
           f"AND {table}.{quote('status')} = 'dispatched' RETURNING {table}.id")
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(document, ensure_ascii=False)])
        return {row[0] for row in cursor.fetchall()}


def attempts_insert(attempts: list[Attempt]) -> None:
    """Insert these attempts with one statement (their ids are set, as bulk_create sets them)."""
    if not attempts:
        return
    if connection.vendor != "postgresql":
        Attempt.objects.bulk_create(attempts)
        return
    quote = connection.ops.quote_name
    fields = [_concrete(field.name, Attempt) for field in Attempt._meta.concrete_fields if not field.primary_key]
    readers = [(column, _reader(field), _json_value(field)) for field, column in fields]
    document = [{column: convert(read(attempt)) for column, read, convert in readers} for attempt in attempts]
    columns = ", ".join(quote(column) for _, column in fields)
    definitions = ", ".join(f"{quote(column)} {_record_type(field)}" for field, column in fields)
    sql = (f"INSERT INTO {quote(Attempt._meta.db_table)} ({columns}) SELECT {columns} "
           f"FROM json_to_recordset(%s::json) AS v({definitions}) RETURNING id, delivery_id, number")
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(document, ensure_ascii=False)])
        # Paired by (delivery, number), unique per attempt (attempt_unique_number): RETURNING's row order is
        # not a promise of PostgreSQL's.
        ids = {(delivery_id, number): pk for pk, delivery_id, number in cursor.fetchall()}
    for attempt in attempts:
        attempt.pk = ids[(attempt.delivery_id, attempt.number)]
        attempt._state.adding, attempt._state.db = False, connection.alias


def _reader(field: models.Field) -> Callable[[Model], Any]:
    """How the value to store is read from an object: as save() reads it for fields that set their own."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return lambda instance: field.pre_save(instance, True)
    return operator.attrgetter(field.attname)


def _record_type(field: models.Field) -> str:
    """The column's type in json_to_recordset's row: text for text columns (the table checks their length)."""
    if isinstance(field, (models.CharField, models.TextField)):
        return "text"
    return str(field.cast_db_type(connection))


def _json_value(field: models.Field) -> Callable[[Any], Any]:
    """How a value of this field is written into the JSON document (what its column receives): plain Python
    for Django's own kinds of field; any other kind through its get_db_prep_save (an encrypted text encrypts)."""
    kind = type(field)
    if isinstance(field, models.ForeignKey):
        return _plain
    if kind is models.DateTimeField:
        return lambda value: None if value is None else (
            value if value.tzinfo is not None else field.get_prep_value(value)).isoformat()
    if kind is models.UUIDField:
        return lambda value: None if value is None else str(value)
    if isinstance(field, models.JSONField) and kind is models.JSONField and field.encoder is None:
        return _same  # nested in the document, read as jsonb
    if kind.__module__ == models.Field.__module__ and isinstance(
            field, (models.BooleanField, models.IntegerField, models.CharField, models.TextField)):
        return _same
    return lambda value: field.get_db_prep_save(value, connection)


def _same(value: Any) -> Any:
    return value


def _plain(value: Any) -> Any:
    """A related object as its primary key, the way the column holds it."""
    return value.pk if isinstance(value, Model) else value
