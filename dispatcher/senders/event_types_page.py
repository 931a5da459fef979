"""docs/integrate/event-types.md, generated from the event catalogue of the standard modules (the modules and
fields every organization starts with): the page says what the API serves, and cannot drift from it
(tests/docs/test_event_types_page.py; `python scripts/docs_generate.py` writes it)."""
import json
from typing import Any

from crm.selectors import standard_modules_unsaved
from dispatcher.senders.event_types import EventType, event_types_of
from dispatcher.senders.notification_schema import RECORD_ID_PATTERN

PAGE = "integrate/event-types.md"
BASE_URL = "http://127.0.0.1:8000/api/v1"  # as in docs/integrate/rest-api.md
EXAMPLE_MODULE, EXAMPLE_EVENT = "Deals", "Deals.Stage.change"
SCHEMA_IN_FULL = "Deals.edit"
_JSON_NAMES = {str: "string", bool: "boolean", int: "integer", float: "number"}

INTRO = f"""# Event types

<!-- Generated from dispatcher/senders/event_types.py by `python scripts/docs_generate.py`: change the code, not this page. -->

A [channel](channels.md) subscribes to record events by name, and its notify URL receives one signed JSON
POST per record change it listed an event for. This page lists the events of the standard modules every
organization starts with, and what their notifications hold. Modules and fields an organization adds
itself are in its live catalogue, which the API serves with the JSON Schema (draft 2020-12) of each event's
notification, built from the same code as this page.

## The live catalogue

An API key with the `channels` scope (the one channels are managed with) reads it:

```sh
API={BASE_URL}; KEY=$(cat var/api-key)
curl -s $API/event-types/ -H "X-API-Key: $KEY"
curl -s "$API/event-types/?module={EXAMPLE_MODULE}" -H "X-API-Key: $KEY"
curl -s $API/event-types/{EXAMPLE_EVENT}/ -H "X-API-Key: $KEY"
```

The list answers `{{"data": [...]}}`, one event `{{"data": {{...}}}}`; each event has:

| Key | What it is |
|---|---|
| `name` | What a channel lists in its `events`, e.g. `Deals.edit` or `Deals.Stage.change`. |
| `module` | The module's API name. |
| `operation` | `create`, `edit`, `delete` or `all`; a field-change event is an `edit`. |
| `field` | For a field-change event, the field's API name; otherwise `null`. |
| `description` | When a channel listing the event is notified. |
| `payload_schema` | The JSON Schema (draft 2020-12) of the notification's body. |

`module` takes an API name or an alias (`Potentials` for `Deals`), and one event is found by any name a
channel accepts (any case, an alias, `update` for `edit`); the answer spells it as a channel stores it. A
key without the scope gets `403 missing_scope`, a module that does not exist or cannot be subscribed to
`400 invalid_fields`, an event that does not exist `404 not_found`, each as a problem document like every
error of the API. The list is not paged: it follows the organization's modules and fields.

## Event names

| Event | A channel listing it is notified |
|---|---|
| `<Module>.create` | when a record of the module is created. |
| `<Module>.edit` | when one is changed (`<Module>.update` is accepted and stored as `edit`). |
| `<Module>.delete` | when one is deleted (`data` holds the values it had). |
| `<Module>.all` | of all three, with one subscription; `operation` says which it is. |
| `<Module>.<Field>.change` | of an edit that changed that field (one of the module's own). |

Module and field are API names (or a module's alias), matched without regard to case. A record change
notifies a channel once, however many of its events it matches: the notification's `events` lists them.

### The field filter

A channel's `fields` (API names of fields of its modules) narrows its edits: a channel with `.edit` or
`.all` is notified of an edit only when one of those fields changed. `.change` events are notified
whatever the filter. Every edit notification's `affected_fields` names the fields the edit changed.
"""


def event_types_page() -> str:
    """The page's full text."""
    modules = standard_modules_unsaved()
    event_types = event_types_of(modules=modules)
    by_name = {event_type.name: event_type for event_type in event_types}
    parts = [INTRO, _envelope(by_name[SCHEMA_IN_FULL]), "## The standard modules\n"]
    for module, _ in modules:
        own = [event_type for event_type in event_types if event_type.module == module.api_name]
        parts.append(_module_section(module.api_name, own) if own else
                     f"### {module.api_name}\n\n{module.api_name} records cannot be subscribed to, as no webhook "
                     "can be defined on them.\n")
    parts.append(_schema_in_full(by_name[SCHEMA_IN_FULL]))
    return "\n".join(parts)


def _envelope(edit: EventType) -> str:
    rows = [f"| `{key}` | {_type_text(schema)} | {_cell(schema.get('description', ''))} |"
            for key, schema in edit.payload_schema["properties"].items()]
    return "\n".join([
        "## What every notification holds\n",
        "Every notification has these keys and no others; only an edit's has `affected_fields`.\n",
        "| Key | Type | What it is |", "|---|---|---|", *rows, ""])


def _module_section(module: str, event_types: list[EventType]) -> str:
    operations = [f"`{e.name}`" for e in event_types if e.field is None]
    changes = [f"`{e.name}`" for e in event_types if e.field is not None]
    edit = next(e for e in event_types if e.name == f"{module}.edit")
    data = edit.payload_schema["properties"]["data"]
    rows = [f"| `{name}` | {_cell(schema.get('title', ''))} | {_type_text(schema)} | "
            f"{_cell(_notes(schema, always=name in data['required']))} |"
            for name, schema in data["properties"].items()]
    return "\n".join([
        f"### {module}\n",
        f"Events: {', '.join(operations)}; field changes: {', '.join(changes) or 'none'}.\n",
        "`data`:\n",
        "| API name | Label | Type | Notes |", "|---|---|---|---|", *rows, ""])


def _schema_in_full(event_type: EventType) -> str:
    return "\n".join([
        "## One schema in full\n",
        f"The `payload_schema` of `{event_type.name}`, as `GET /api/v1/event-types/{event_type.name}/` serves it "
        "to an organization that has the standard fields only:\n",
        "```json", json.dumps(event_type.payload_schema, indent=2, ensure_ascii=False), "```", ""])


def _type_text(schema: dict[str, Any]) -> str:
    """A JSON Schema's type as a table cell says it: string (date-time), array of string, …"""
    if "const" in schema:
        return _JSON_NAMES.get(type(schema["const"]), "value")
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any value")
    text = " or ".join(kind) if isinstance(kind, list) else kind
    if text == "array":
        text = f"array of {_type_text(schema.get('items', {}))}"
    if "format" in schema:
        text += f" ({schema['format']})"
    if schema.get("pattern") == RECORD_ID_PATTERN:
        text += " of digits"
    if "maxLength" in schema:
        text += f", at most {schema['maxLength']:,} characters"
    return text


def _notes(schema: dict[str, Any], *, always: bool) -> str:
    notes = [schema.get("description", "")]
    if "examples" in schema:
        notes.append("Values: " + ", ".join(str(value) for value in schema["examples"]) + ".")
    if always:
        notes.append("Always present.")
    return " ".join(note for note in notes if note)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
