"""The JSON Schema (draft 2020-12) of a channel notification, the body ``channels.notification_payload`` sends,
in one place.

Two documents publish it and must never disagree: the OpenAPI document's ``ChannelNotification``
(dispatcher/senders/payload_schemas.py: any module and operation, ``data`` generic) and each event's ``payload_schema``
in the event catalogue (dispatcher/senders/event_types.py: one module, operation and event, ``data`` from the module's
fields). Both call ``notification_schema``, so the envelope's keys, its ``events`` and ``affected_fields``
rules, the channel's id and token and the system values of ``data`` are written once, here.
"""
from typing import Any

from crm.events import EDIT
from dispatcher.senders.channels import CHANNEL_ID_RE, OPERATIONS
from dispatcher.models.channels import TOKEN_MAX_LENGTH

Schema = dict[str, Any]
ALL = "all"  # the event of a module's three operations: Deals.all
RECORD_ID_PATTERN = r"^[0-9]+$"  # a record's or CRM user's id, as text
_NAME = "[A-Za-z0-9_]+"  # a module's or field's API name, as event names spell them (channels._EVENT_RE)
_ECMA_SYNTAX = set("\\^$.|?*+()[]{}/")  # what an ECMA-262 pattern (JSON Schema's dialect) escapes, and only that


def notification_schema(*, data: Schema, channel: Schema | None = None, module: str | None = None,
                        operation: str | None = None, event: str | None = None) -> Schema:
    """A notification's body. Without module, operation and event: any notification; with them, one sent for
    that event (the event catalogue pins them). data is the record's (``data_schema``); channel replaces the
    inline channel reference (the OpenAPI document refers to a named one)."""
    properties: Schema = {
        "module": _pinned(module, {"type": "string"}, "The module's API name (Deals, Leads, …)."),
        "operation": _pinned(operation, {"type": "string", "enum": list(OPERATIONS)},
                             "What happened to the record: create, edit or delete."),
        "ids": {"type": "array", "items": record_id_schema(), "minItems": 1, "maxItems": 1,
                "description": "The record's id, as text, in a list of one."},
        "resource_uri": {"type": "string", "format": "uri",
                         "description": "The record in the REST API (GET it with a key of scope records:read)."},
        "token": token_schema(nullable=True, description="The channel's token, as given when subscribing (check "
                                                         "it is yours); null without one."),
        "channel": channel or channel_reference_schema(),
        "events": _events_schema(module, operation, event),
        "data": data,
    }
    required = list(properties)
    affected_fields = {
        "type": "array", "items": {"type": "string"}, "uniqueItems": True,
        "description": f"Only when operation is {EDIT}: the API names of the fields the edit changed, sorted "
                       "(empty: it changed none)."}
    rule: Schema = {}
    if operation is None:  # any operation: an edit's has affected_fields, no other has
        properties["affected_fields"] = affected_fields
        rule = {"if": {"properties": {"operation": {"const": EDIT}}}, "then": {"required": ["affected_fields"]},
                "else": {"not": {"required": ["affected_fields"]}}}
    elif operation == EDIT:
        properties["affected_fields"] = affected_fields
        required.append("affected_fields")
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False, **rule}


def data_schema(*, fields: dict[str, Schema], other: Schema | bool, description: str, singular: str = "Record",
                owner: Schema | None = None) -> Schema:
    """A notification's data: the record's values (fields by API name, other for any other name) and the system
    values every notification adds (channels._system_values). A record always has its owner (a required
    foreign key) and both times (set when it is saved, before any event), so these are never null."""
    system = {
        "id": {"title": f"{singular} Id", **record_id_schema("The record's id, as text.")},
        "Owner": {"title": f"{singular} Owner", **(owner or owner_schema()),
                  "description": "The record's owner: the CRM user's id, as text, and full name."},
        "Created_Time": {"title": "Created Time", "type": "string", "format": "date-time",
                         "description": "When the record was created (ISO 8601, UTC)."},
        "Modified_Time": {"title": "Modified Time", "type": "string", "format": "date-time",
                          "description": "When the record was last changed (ISO 8601, UTC)."},
    }
    return {"type": "object", "description": description, "properties": {**fields, **system},
            "required": list(system), "additionalProperties": other}


def owner_schema() -> Schema:
    """A record's owner, as data's Owner holds it."""
    return {"type": "object", "required": ["id", "name"], "additionalProperties": False, "properties": {
        "id": record_id_schema("The CRM user's id, as text."),
        "name": {"type": "string", "description": "The CRM user's full name."},
    }}


def channel_reference_schema() -> Schema:
    """The channel a notification or a verification request (channels.channel_verify) comes from."""
    return {
        "type": "object", "description": "The channel that sends this: its id and expiry_time.",
        "required": ["id", "expiry_time"], "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "pattern": f"^{CHANNEL_ID_RE.pattern}$",
                   "description": "The channel id: chosen when subscribing (channel_id) or generated (ch_…)."},
            "expiry_time": {"type": "string", "format": "date-time",
                            "description": "When the channel expires unless renewed (ISO 8601, UTC)."},
        },
    }


def token_schema(*, nullable: bool, description: str) -> Schema:
    """A channel's token: never empty, as a channel without one sends null (or, verifying, leaves it out)."""
    return {"type": ["string", "null"] if nullable else "string", "minLength": 1, "maxLength": TOKEN_MAX_LENGTH,
            "description": description}


def record_id_schema(description: str | None = None) -> Schema:
    schema: Schema = {"type": "string", "pattern": RECORD_ID_PATTERN}
    return {**schema, "description": description} if description else schema


def _pinned(value: str | None, general: Schema, description: str) -> Schema:
    """value itself, when the schema is one event's; else what any notification may have."""
    return {**({"const": value} if value is not None else general), "description": description}


def _events_schema(module: str | None, operation: str | None, event: str | None) -> Schema:
    """The channel's events a notification answers (channels._matched_events): the operation's, the module's
    all and, for an edit, a change event per changed field; with event, that one among them."""
    schema: Schema = {"type": "array", "items": _event_names(module, operation), "minItems": 1, "uniqueItems": True,
                      "description": "The channel's events this notification answers: Module.operation, Module.all, "
                                     "Module.Field.change."}
    return {**schema, "contains": {"const": event}} if event is not None else schema


def _event_names(module: str | None, operation: str | None) -> Schema:
    if module is not None and operation not in (None, EDIT):
        return {"enum": [f"{module}.{operation}", f"{module}.{ALL}"]}
    alternatives = [*(OPERATIONS if operation is None else (operation,)), ALL]
    if operation in (None, EDIT):  # by pattern: a field deleted since the channel listed it can still notify
        alternatives.append(rf"{_NAME}\.change")
    name = _NAME if module is None else _ecma_escaped(module)
    return {"type": "string", "pattern": rf"^{name}\.(?:{'|'.join(alternatives)})$"}


def _ecma_escaped(text: str) -> str:
    """text matched literally by an ECMA-262 pattern (Python's re.escape also escapes "-" and " ", which
    ECMA-262's unicode mode refuses)."""
    return "".join("\\" + char if char in _ECMA_SYNTAX else char for char in text)
