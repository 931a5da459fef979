"""The OpenAPI document as committed files: docs/openapi.json (what GET /api/v1/openapi.json serves) and
docs/integrate/api-reference.md, the same document as readable tables (config/docs_pages.py registers both).

Both come from the NinjaAPI object, built the way the server builds it (its root path as the prefix), so no
request is needed and the committed document cannot differ from the served one (tests/docs/ check both).
Markdown anchors are explicit ({#…}, the attr_list extension of mkdocs.yml), so links within the page hold
whatever the site's slug rules are.
"""
import json
import re
from collections.abc import Iterator
from typing import Any

from ninja.responses import NinjaJSONEncoder

from config.api import api

Schema = dict[str, Any]
OPENAPI_PAGE = "openapi.json"
REFERENCE_PAGE = "integrate/api-reference.md"
_CONSTRAINTS = (("pattern", ""), ("minLength", "minimum length {}"), ("maxLength", "maximum length {}"),
                ("minItems", "minimum items {}"), ("maxItems", "maximum items {}"), ("minimum", "minimum {}"),
                ("maximum", "maximum {}"), ("default", ""))


def openapi_document() -> dict[str, Any]:
    """What GET /api/v1/openapi.json serves, as plain JSON data."""
    document: dict[str, Any] = json.loads(json.dumps(api.get_openapi_schema(), cls=NinjaJSONEncoder))
    return document


def openapi_json() -> str:
    """docs/openapi.json: the served document, indented for reading and diffing."""
    return json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n"


# --- Markdown ---------------------------------------------------------------------------------------

def api_reference() -> str:
    """docs/integrate/api-reference.md: every operation, every webhook the product sends, every schema."""
    document = openapi_document()
    sections = [_introduction(document), _authentication(document), _operations(document),
                _webhooks(document), _schemas(document)]
    return "\n\n".join(section.strip("\n") for section in sections) + "\n"


def _introduction(document: dict[str, Any]) -> str:
    info = document["info"]
    return f"""# API reference

<!-- Generated from the OpenAPI document by config/api_reference.py; do not edit: change the code, then run
python scripts/docs_generate.py. -->

{info["title"]}, version {info["version"]}. {_text(info.get("description", ""))}

This page is the OpenAPI 3.1 document [openapi.json](../{OPENAPI_PAGE}) as tables: the same document the API
serves at `GET /api/v1/openapi.json`, with an interactive page at `/api/v1/docs`. Generate a client from it, or
validate what your receiver gets against its `webhooks`."""


def _authentication(document: dict[str, Any]) -> str:
    schemes = document.get("components", {}).get("securitySchemes", {})
    rows = [[f"`{name}`", f"{scheme.get('in', '')} `{scheme.get('name', '')}`", _text(scheme.get("description", ""))]
            for name, scheme in schemes.items()]
    return "## Authentication {#authentication}\n\n" + _table(["Scheme", "The key goes in", "Description"], rows)


def _operations(document: dict[str, Any]) -> str:
    operations = list(_each_operation(document))
    rows = [[f"[`{method.upper()} {path}`](#{_operation_anchor(method, path)})", _text(operation.get("summary", "")),
             _scopes(operation)] for method, path, operation in operations]
    parts = ["## Operations {#operations}", _table(["Operation", "Summary", "Scope"], rows)]
    tags = list(dict.fromkeys((operation.get("tags") or ["other"])[0] for _, _, operation in operations))
    for tag in tags:
        parts.append(f"### {tag.replace('-', ' ').capitalize()} {{#tag-{_slug(tag)}}}")
        parts += [_operation(method, path, operation) for method, path, operation in operations
                  if (operation.get("tags") or ["other"])[0] == tag]
    return "\n\n".join(parts)


def _each_operation(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            yield method, path, operation


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    parts = [f"#### `{method.upper()} {path}` {{#{_operation_anchor(method, path)}}}",
             f"**{_text(operation.get('summary', ''))}.** {_text(operation.get('description', ''))}"]
    parts += _call_parts(operation)
    return "\n\n".join(part for part in parts if part)


def _call_parts(operation: dict[str, Any], *, label: str = "Parameters") -> list[str]:
    """Parameters, request body and responses of an operation or of a webhook."""
    parts = []
    if parameters := operation.get("parameters"):
        parts += [f"{label}:", _parameters(parameters)]
    if body := operation.get("requestBody"):
        parts += _request_body(body)
    parts += ["Responses:", _responses(operation.get("responses", {}))]
    return parts


def _parameters(parameters: list[dict[str, Any]]) -> str:
    rows = [[f"`{p['name']}`", p["in"], _type(p.get("schema", {})), _yes(p.get("required", False)),
             _description(p.get("schema", {}), p.get("description", ""))] for p in parameters]
    return _table(["Name", "In", "Type", "Required", "Description"], rows)


def _request_body(body: dict[str, Any]) -> list[str]:
    parts = []
    for media_type, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        name = _type(schema) if "$ref" in schema else f"`{schema.get('title', 'inline')}` ({_type(schema)})"
        parts.append(f"Request body ({'required' if body.get('required') else 'optional'}, `{media_type}`): {name}. "
                     f"{_text(body.get('description', '') or schema.get('description', ''))}".rstrip())
        if "$ref" not in schema and (rows := _field_rows(schema, {})):
            parts.append(_table(["Field", "Type", "Required", "Description"], rows))
    return parts


def _responses(responses: dict[str, Any]) -> str:
    """One row per run of statuses with the same body and headers (the errors share the problem document);
    statuses without a body each get their own."""
    groups: list[tuple[list[str], list[str], str, str]] = []
    for status, response in responses.items():
        body = "; ".join(f"`{media}`: {_type(content.get('schema', {}))}"
                         for media, content in response.get("content", {}).items())
        headers = ", ".join(f"`{name}`" for name in response.get("headers", {}))
        if body and groups and groups[-1][2:] == (body, headers):
            groups[-1][0].append(str(status))
            groups[-1][1].append(_text(response.get("description", "")))
            continue
        groups.append(([str(status)], [_text(response.get("description", ""))], body, headers))
    rows = [[", ".join(statuses), "; ".join(descriptions), body or "–", headers or "–"]
            for statuses, descriptions, body, headers in groups]
    return _table(["Status", "Description", "Body", "Headers"], rows)


def _webhooks(document: dict[str, Any]) -> str:
    webhooks = document.get("webhooks", {})
    schemas = document.get("components", {}).get("schemas", {})
    parameter_lists = [operation.get("parameters", []) for item in webhooks.values() for operation in item.values()]
    shared = parameter_lists[0] if parameter_lists and all(p == parameter_lists[0] for p in parameter_lists) else []
    parts = ["## Webhooks (what receivers get) {#webhooks}",
             "The requests this product sends, each signed with the Standard Webhooks headers (see "
             "[Signatures](signatures.md) for receivers that verify them). Payload fields are listed with their "
             "nested fields (`channel.id`); `<any name>` is a name the sender chose.",
             _table(["Webhook", "Method", "Summary", "Body"], [
                 [f"[`{name}`](#webhook-{_slug(name)})", method.upper(), _text(operation.get("summary", "")),
                  _body_types(operation)]
                 for name, item in webhooks.items() for method, operation in item.items()])]
    if shared:
        parts += ["Every one of them carries these headers:", _parameters(shared)]
    for name, item in webhooks.items():
        methods = " or ".join(method.upper() for method in item)
        first = next(iter(item.values()))
        parts += [f"### `{name}` ({methods}) {{#webhook-{_slug(name)}}}",
                  f"**{_text(first.get('summary', ''))}.** {_text(first.get('description', ''))}"]
        parts += _payload(first.get("requestBody", {}), schemas)
        parts += _call_parts({key: value for key, value in first.items() if key != "requestBody"
                              and not (key == "parameters" and shared)}, label="Headers")
    return "\n\n".join(parts)


def _body_types(operation: dict[str, Any]) -> str:
    content = operation.get("requestBody", {}).get("content", {})
    return "; ".join(f"`{media}`: {_type(value.get('schema', {}))}" for media, value in content.items()) or "none"


def _payload(body: dict[str, Any], schemas: dict[str, Schema]) -> list[str]:
    parts = []
    for media_type, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        parts.append(f"Body (`{media_type}`): {_type(schema)}. {_text(body.get('description', ''))}".rstrip())
        target = _resolved(schema, schemas)
        if description := target.get("description"):
            parts.append(_text(description))
        if rows := _field_rows(target, schemas, flatten=True):
            parts.append(_table(["Field", "Type", "Required", "Description"], rows))
    return parts


def _schemas(document: dict[str, Any]) -> str:
    schemas = document.get("components", {}).get("schemas", {})
    parts = ["## Schemas {#schemas}", "The bodies of the operations and of the webhooks, by name."]
    for name in sorted(schemas, key=str.lower):
        schema = schemas[name]
        parts.append(f"### `{name}` {{#schema-{_slug(name)}}}")
        if description := schema.get("description"):
            parts.append(_text(description))
        rows = _field_rows(schema, {})
        parts.append(_table(["Field", "Type", "Required", "Description"], rows) if rows else f"{_type(schema)}.")
    return "\n\n".join(parts)


def _field_rows(schema: Schema, schemas: dict[str, Schema], *, flatten: bool = False, prefix: str = "",
                seen: frozenset[str] = frozenset()) -> list[list[str]]:
    """A row per property (and one for any other name, when allowed); with flatten, the properties of the
    object schemas they refer to follow as dotted names, each schema once per branch (they may recurse)."""
    if schema.get("type") == "array" and flatten:
        return _field_rows(_resolved(schema.get("items", {}), schemas), schemas, flatten=True, prefix=f"{prefix}[].",
                           seen=seen)
    required = set(schema.get("required", []))
    rows = []
    for name, value in schema.get("properties", {}).items():
        rows.append([f"`{prefix}{name}`", _type(value), _yes(name in required), _description(value)])
        ref = _ref_name(value)
        if flatten and ref in schemas and ref not in seen:
            rows += _field_rows(schemas[ref], schemas, flatten=True, prefix=f"{prefix}{name}.", seen=seen | {ref})
    other = schema.get("additionalProperties")
    if other is True or isinstance(other, dict):
        other_schema = other if isinstance(other, dict) else {}
        rows.append([f"`{prefix}<any name>`", _type(other_schema) if other_schema else "any", "no",
                     _description(other_schema)])
    return rows


# --- Text ---------------------------------------------------------------------------------------------

def _type(schema: Schema) -> str:
    """A schema in words: a link for a named schema, `one of` for an enum, `or` for alternatives."""
    if name := _ref_name(schema):
        return f"[`{name}`](#schema-{_slug(name)})"
    if "const" in schema:
        return f"`{json.dumps(schema['const'], ensure_ascii=False)}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return (" or " if key != "allOf" else " and ").join(_type(option) for option in schema[key])
    kinds = schema.get("type", [])
    words = [_kind(kind, schema) for kind in (kinds if isinstance(kinds, list) else [kinds])]
    return " or ".join(words) or "any"


def _kind(kind: str, schema: Schema) -> str:
    if kind == "array":
        items = _type(schema.get("items", {}))
        return f"array of ({items})" if " or " in items else f"array of {items}"
    other = schema.get("additionalProperties")
    if kind == "object" and not schema.get("properties") and isinstance(other, dict) and other:
        return f"object of {_type(other)}"
    return f"{kind} ({schema['format']})" if "format" in schema and kind != "null" else kind


def _description(schema: Schema, description: str = "") -> str:
    constraints = [f"pattern `{schema[key]}`" if key == "pattern"
                   else f"default `{json.dumps(schema[key], ensure_ascii=False)}`" if key == "default"
                   else words.format(schema[key]) for key, words in _CONSTRAINTS if key in schema]
    text = _text(description or schema.get("description", ""))
    return "; ".join(filter(None, [text.rstrip("."), *constraints])) + ("." if text or constraints else "")


def _scopes(operation: dict[str, Any]) -> str:
    return ", ".join(f"`{scope}`" for scope in operation.get("x-scopes", [])) or "none"


def _ref_name(schema: Schema) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/components/schemas/") else ""


def _resolved(schema: Schema, schemas: dict[str, Schema]) -> Schema:
    return schemas.get(_ref_name(schema), schema)


def _operation_anchor(method: str, path: str) -> str:
    return f"op-{method.lower()}-{_slug(path)}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _text(text: str) -> str:
    """One line for a table cell or a paragraph: white space collapsed, pipes escaped outside code."""
    text = re.sub(r"\s+", " ", str(text)).strip()
    return "".join(part if part.startswith("`") else part.replace("|", r"\|")
                   for part in re.split(r"(`[^`]*`)", text))


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
