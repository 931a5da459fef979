"""The shape of a configuration file: which keys an entry has, and text, numbers, booleans, lists and objects
where they belong.

Checked before anything is looked up or validated, so that a value of the wrong type is a located message
(``capture.captures: must be a list (got 1).``) and never an exception deeper down. What the values mean
(a URL, a header value of at most 2,000 characters, a signing secret) is the model's and the services'
business, the same as in the admin.
"""
from collections import defaultdict
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as ShapeError

NUL_NOTE = "text must not contain NUL characters (\\u0000), which no database stores"


class Shape(BaseModel):
    """Keys exactly as documented; no coercion ("1" is not a number, 1 is not text)."""

    model_config = ConfigDict(extra="forbid", strict=True)


# A whole number any database column of the file's numbers holds (SQLite would take 10**30 to an overflow,
# PostgreSQL to an error of its own); the model's validation then applies its own range.
Whole = Annotated[int, Field(ge=-(2 ** 31), le=2 ** 31 - 1)]


class RetryPolicyShape(Shape):
    code: str
    name: str | None = None
    delays: list[Whole]
    max_retry_after: Whole | None = None
    failure_emails: str | None = None


class AuthShape(Shape):
    type: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    scope: str | None = None
    client_auth: str | None = None


class TlsShape(Shape):
    client_certificate: str | None = None
    client_key: str | None = None
    ca_bundle: str | None = None


class EntityParameterShape(Shape):
    name: str
    value: str


class CustomParameterShape(Shape):
    name: str
    value: str | None = None  # null keeps the stored value


class HeaderShape(Shape):
    name: str
    value: str | None = None  # null keeps a stored secret
    secret: bool = False


class CaptureShape(Shape):
    when: str
    expression: str
    field: str


class CaptureSettingsShape(Shape):
    enabled: bool = False
    type: str | None = None
    namespaces: str | None = None
    captures: list[CaptureShape] | None = None


class PreviousSecretShape(Shape):
    secret: str
    expires: str


class WebhookShape(Shape):
    """One entry of "webhooks"; a key left out keeps what is stored where docs/operate/config-files.md says so."""

    organization: str
    module: str
    name: str
    url: str
    description: str | None = None
    method: str | None = None
    content_type: str | None = None
    active: bool | None = None
    body: str | None = None
    date_format: str | None = None
    datetime_format: str | None = None
    time_zone: str | None = None
    auth: AuthShape | None = None
    entity_parameters: list[EntityParameterShape] | None = None
    custom_parameters: list[CustomParameterShape] | None = None
    headers: list[HeaderShape] | None = None
    tls: TlsShape | None = None
    signing_secret: str | None = None
    previous_signing_secret: PreviousSecretShape | None = None
    capture: CaptureSettingsShape | None = None
    retry_policy: str | None = None


S = TypeVar("S", bound=Shape)

_TYPE_NAMES = {
    "string_type": "must be text", "bool_type": "must be true or false", "int_type": "must be a whole number",
    "list_type": "must be a list", "model_type": "must be an object", "dict_type": "must be an object",
    "model_attributes_type": "must be an object", "float_type": "must be a number",
    "greater_than_equal": f"must be a whole number from {-(2 ** 31)} to {2 ** 31 - 1}",
    "less_than_equal": f"must be a whole number from {-(2 ** 31)} to {2 ** 31 - 1}",
}


def shape_parse(shape: type[S], data: Any, *, what: str) -> tuple[S | None, list[str]]:
    """The entry as its shape, or None and one message per problem, each naming the key (dotted path)."""
    try:
        return shape.model_validate(data), []
    except ShapeError as error:
        return None, shape_messages(error, what=what)


def shape_messages(error: ShapeError, *, what: str) -> list[str]:
    """pydantic's findings in the file's terms: unknown and missing keys grouped per object, then each value
    of the wrong type with what it should be."""
    unknown: dict[str, list[str]] = defaultdict(list)
    missing: dict[str, list[str]] = defaultdict(list)
    lines = []
    for item in error.errors():
        location = tuple(item["loc"])
        parent, key = location_text(location[:-1]), str(location[-1]) if location else ""
        if item["type"] == "extra_forbidden":
            unknown[parent].append(key)
        elif item["type"] == "missing":
            missing[parent].append(key)
        elif not location:
            lines.append(f"each {what} must be a JSON object.")
        else:
            expected = _TYPE_NAMES.get(item["type"], str(item["msg"]).removeprefix("Value error, "))
            lines.append(f"{location_text(location)}: {expected} (got {_shown(item.get('input'))}).")
    grouped = [f"{parent + ': ' if parent else ''}{kind} keys {', '.join(sorted(keys))}."
               for kind, table in (("unknown", unknown), ("missing", missing)) for parent, keys in table.items()]
    return grouped + lines


def location_text(location: tuple[Any, ...]) -> str:
    """("capture", "captures", 0, "field") as capture.captures[0].field."""
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _shown(value: Any) -> str:
    """A wrong value as the file has it, cut short (it may be anything, and is not a secret's place)."""
    kind = {dict: "an object", list: "a list", str: "text", bool: "true or false", type(None): "null"}.get(
        type(value))
    if kind is None:
        text = repr(value)
        return text if len(text) <= 20 else text[:20] + "…"
    return kind


def text_problems(data: Any, *, path: str = "") -> list[str]:
    """Text that PostgreSQL cannot store: NUL characters, and lone surrogates (a JSON file may escape them,
    \\ud800, though they are no text). Walked without recursion: the file may nest as deep as json allows."""
    problems = []
    stack: list[tuple[str, Any]] = [(path, data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                stack.append((f"{where}.{key}" if where else str(key), item))
                problems += _text_problem(f"{where} (a key)" if where else "a key", str(key))
        elif isinstance(value, list):
            stack.extend((f"{where}[{index}]", item) for index, item in enumerate(value))
        elif isinstance(value, str):
            problems += _text_problem(where, value)
    return sorted(problems)


def _text_problem(where: str, text: str) -> list[str]:
    if "\x00" in text:
        return [f"{where}: {NUL_NOTE}."]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # only a lone surrogate cannot be encoded
        return [f"{where}: text must be valid Unicode (a lone surrogate such as \\ud800 is not)."]
    return []
