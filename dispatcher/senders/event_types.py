"""The event catalogue: every event a channel can subscribe to, each with the JSON Schema (draft 2020-12) of
the notification its notify URL receives, so that an integrator can write and check a receiver before the
first record changes.

Each event's schema is the notification's (dispatcher/senders/notification_schema.py, which the OpenAPI document's
ChannelNotification is too) pinned to the event's module, operation and event, with data built from the
module's usable fields through the field-type registry (``FieldKind.value_schema``: values travel as they
are stored). Tests validate real notifications against it, so the two cannot drift apart. The live catalogue
is an organization's (dispatcher.selectors, ``GET /api/v1/event-types/``); docs/integrate/event-types.md is that
of the standard modules (dispatcher/senders/event_types_page.py).
"""
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

from crm.events import CREATE, DELETE, EDIT
from crm.field_types import kind_of
from crm.models import Field, Module
from dispatcher.senders.channels import OPERATIONS, event_name_valid
from dispatcher.senders.notification_schema import ALL, data_schema, notification_schema

DIALECT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class EventType:
    """One event a channel may list in its events, and the notification it brings."""

    name: str  # as a channel lists it: Deals.create, Deals.all, Deals.Stage.change
    module: str
    operation: str  # create, edit, delete or all; a field-change event is an edit
    field: str | None  # the field of a field-change event
    description: str
    payload_schema: dict[str, Any]


def event_types_of(*, modules: list[tuple[Module, list[Field]]]) -> list[EventType]:
    """The events of these modules (those that allow webhooks) with their fields, module by module: create,
    edit, delete, all, then one field-change event per usable field of the module's own."""
    found: list[EventType] = []
    for module, fields in modules:
        if module.supports_webhooks:
            found.extend(_module_event_types(module, [f for f in fields if f.is_usable and not f.is_system]))
    return found


def event_type_pick(event_types: list[EventType], name: str) -> EventType:
    """The event type of a canonical name (dispatcher.senders.channels.channel_events_clean spells it)."""
    found = next((event_type for event_type in event_types if event_type.name == name), None)
    if found is None:  # an event a channel may list but that never notifies, such as Deals.Modified_Time.change
        raise ValidationError(f"“{name}” notifies nothing: a change event is for one of the module's own fields.")
    return found


def _module_event_types(module: Module, fields: list[Field]) -> list[EventType]:
    name, record = module.api_name, f"{_article(module.singular_label)} {module.singular_label} record"
    data = _data_schema(module, fields)
    described = {
        CREATE: f"When {record} is created. data holds its values.",
        EDIT: f"When {record} is changed. data holds its values after the change, affected_fields the API names "
              "of those that changed. With the channel's field filter (fields), only an edit that changed one of "
              "those fields notifies.",
        DELETE: f"When {record} is deleted. data holds the values it had.",
    }
    event_types = [EventType(f"{name}.{operation}", name, operation, None, text, _root(
        f"{name}.{operation}", text, notification_schema(data=data, module=name, operation=operation,
                                                         event=f"{name}.{operation}")))
        for operation, text in described.items()]
    every = (f"When {record} is created, changed or deleted: {name}.create, {name}.edit and {name}.delete in one "
             "subscription; operation says which. The field filter applies to the edits.")
    event_types.append(EventType(f"{name}.{ALL}", name, ALL, None, every, _root(f"{name}.{ALL}", every, {
        "oneOf": [notification_schema(data=data, module=name, operation=operation, event=f"{name}.{ALL}")
                  for operation in OPERATIONS]})))
    for field in fields:
        event = f"{name}.{field.api_name}.change"
        if event_name_valid(event):
            text = (f"When an edit of {record} changes “{field.label}” ({field.api_name}), whatever the channel's "
                    "field filter. The notification is the edit's.")
            event_types.append(EventType(event, name, EDIT, field.api_name, text, _root(
                event, text, notification_schema(data=data, module=name, operation=EDIT, event=event))))
    return event_types


def _article(word: str) -> str:
    return "an" if word[:1].lower() in ("a", "e", "i", "o", "u") else "a"


def _root(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DIALECT, "title": f"{name} notification", "description": description, **schema}


def _data_schema(module: Module, fields: list[Field]) -> dict[str, Any]:
    """The record's values: the module's own fields, each as its type stores it."""
    return data_schema(
        fields={field.api_name: {"title": field.label, **_value_schema(field)} for field in fields}, other=True,
        singular=module.singular_label,
        description="The record's values by field API name. A field without a value is left out; values of fields "
                    "deleted or disabled since they were set, or added after this catalogue was read, may appear "
                    "too.")


def _value_schema(field: Field) -> dict[str, Any]:
    try:
        kind = kind_of(field)
    except ValidationError:  # a field type this version does not know (a row written by hand): any value
        return {"description": f"A value of the field type “{field.field_type}”, which this version does not know."}
    return kind.value_schema(field)
