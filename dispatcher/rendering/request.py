"""Rendering the exact HTTP request of a webhook for a record: method, URL with query, headers, body.

Where parameters go (docs/use/rendering.md):
- GET: entity and custom parameters in the query string, no body.
- POST/PUT with a user-defined body: the body is the rendered template; parameters go in the query string.
- POST/PUT without one: parameters are the body, encoded as the content type says (JSON object,
  JSON array of one object, XML document, or form encoding). Dots in names nest objects; fields of
  a related module become an array with one item per related record.
"""
import base64
import datetime
import functools
import html.entities
import json
import re
import string
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings

from config.caches import cache_register
from crm.models import Field, Record
from dispatcher.models import AuthType, ContentType, Method, Webhook
from dispatcher.rendering.encoding import as_json_value, as_text, in_json_string, xml_comment_text, xml_text
from dispatcher.rendering.merge import MergeContext, OnRelated, Schema, schema_for
from dispatcher.rendering.template import Slot, Template, template_compile
from dispatcher.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_compute
from dispatcher.validators import HEADER_VALUE_FORBIDDEN_RE

MASK = "********"
XML_ROOT = "request"
CONTENT_TYPE_HEADERS: dict[str, str] = {
    ContentType.JSON: "application/json; charset=utf-8",
    ContentType.JSONARRAY: "application/json; charset=utf-8",
    ContentType.XML: "application/xml; charset=utf-8",
    ContentType.FORM: "application/x-www-form-urlencoded",
}


@dataclass(frozen=True)
class RenderedRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def masked(self, *, keep_signature: bool = False) -> "RenderedRequest":
        """The same request with its credentials and secret values replaced by a mask, for display. The
        signature is masked too unless asked for: a fresh one can be replayed for minutes, so only people who
        may change the webhook (and see its secret anyway) are shown it."""
        headers = {name: self.mask(value) for name, value in self.headers.items()}
        if "Authorization" in headers:
            headers["Authorization"] = headers["Authorization"].split(" ", 1)[0] + " " + MASK
        if not keep_signature and SIGNATURE_HEADER in headers:
            headers[SIGNATURE_HEADER] = " ".join(
                f"{part.split(',', 1)[0]},{MASK}" for part in headers[SIGNATURE_HEADER].split())
        return RenderedRequest(self.method, self.mask(self.url), headers,
                               self.mask(self.body.decode("utf-8", "replace")).encode())

    def mask(self, text: str) -> str:
        """text with this request's secrets masked, in every spelling they can take (``secret_pattern``),
        and the Basic credentials as sent (a receiver that echoes the request shows them)."""
        sent: tuple[str, ...] = ()
        if (authorization := self.headers.get("Authorization", "")).startswith("Basic "):
            sent = (authorization.split(" ", 1)[1],)
        pattern = secret_pattern(self.secrets, sent)
        return text if pattern is None else pattern.sub(MASK, text)

    def seal(self) -> str:
        """JSON of the whole request, secrets included: only ever stored encrypted."""
        return json.dumps({
            "method": self.method, "url": self.url, "headers": self.headers,
            "body": base64.b64encode(self.body).decode(), "secrets": list(self.secrets),
        })

    @classmethod
    def unseal(cls, text: str) -> "RenderedRequest":
        data = json.loads(text)
        return cls(data["method"], data["url"], data["headers"], base64.b64decode(data["body"]),
                   tuple(data["secrets"]))

    def as_text(self) -> str:
        lines = [f"{self.method} {self.url}", *(f"{name}: {value}" for name, value in self.headers.items())]
        return "\n".join(lines) + "\n\n" + self.body.decode("utf-8", "replace")


@functools.lru_cache(maxsize=1024)
def secret_pattern(secrets: tuple[str, ...], literal: tuple[str, ...] = ()) -> re.Pattern[str] | None:
    """One expression for every spelling in which the secrets come back from a receiver that echoes the
    request re-encoded, or in a log; each character may take any of its forms, so mixed spellings match too:

    - as typed, in any letter case (a receiver that upper-cases what it echoes);
    - JSON: \\u escapes in lower- or upper-case hex (surrogate pairs beyond the BMP), and \\" \\\\ \\/ \\n …;
    - HTML and XML: character references, decimal or hex, and named ones (&amp; &auml; &apos; …);
    - percent-encoded UTF-8 in either case, once or twice (%25 for the %), with + or %20 for a space;
    - base64 of the secret alone (standard and URL-safe, with or without padding);

    and the literal texts given (the Basic credentials as sent). None when there is nothing to mask. Kept per
    set of secrets: every attempt masks each response header and the body with it."""
    alternatives = [_spelled(secret) for secret in sorted(filter(None, set(secrets)), key=len, reverse=True)]
    alternatives += [re.escape(text) for text in sorted(filter(None, set(literal)), key=len, reverse=True)]
    return re.compile("|".join(alternatives), re.IGNORECASE) if alternatives else None


def _spelled(secret: str) -> str:
    spelled = "".join(_character(char) for char in secret)
    if len(upper := secret.upper()) != len(secret):  # "ß" upper-cased is "SS"
        spelled += "|" + "".join(_character(char) for char in upper)
    encoded = secret.encode("utf-8", "surrogatepass")
    for form in {base64.b64encode(encoded).decode(), base64.urlsafe_b64encode(encoded).decode()}:
        spelled += f"|{re.escape(form)}|{re.escape(form.rstrip('='))}"
    return spelled


def _character(char: str) -> str:
    """A group matching one character of a secret in each of its spellings (the longest tried first). Letters,
    digits and -_.~ are spelled as they are by every encoding (the case aside), which keeps the expression
    of a long token (a JWT) short."""
    if char in _UNRESERVED:
        return re.escape(char)
    forms = set()
    for variant in {char, char.lower(), char.upper()}:
        if len(variant) != 1:
            continue
        code = ord(variant)
        units = [code] if code <= 0xFFFF else [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)]
        forms |= {re.escape(variant), "".join(rf"\\u{unit:04x}" for unit in units), f"&#0*{code};", f"&#x0*{code:x};",
                  "".join(f"%(?:25)?{byte:02x}" for byte in variant.encode("utf-8", "surrogatepass"))}
        forms |= {re.escape(f"&{name}") for name in _ENTITY_NAMES.get(variant, ())}
        if variant in _JSON_ESCAPES:
            forms.add(re.escape(_JSON_ESCAPES[variant]))
    if char == " ":
        forms |= {r"\+", "%(?:25)?2b"}  # form encoding's space, and that + percent-encoded
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"


_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-_.~")
_JSON_ESCAPES = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                 "\t": "\\t"}


def _entity_names() -> dict[str, list[str]]:
    """Each character's named references in HTML 5 (&quot; and &QUOT;, &auml;, &apos; …)."""
    names: dict[str, list[str]] = {}
    for name, text in html.entities.html5.items():
        if name.endswith(";") and len(text) == 1:
            names.setdefault(text, []).append(name)
    return names


_ENTITY_NAMES = _entity_names()


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    template: Template
    related_via: Field | None  # set when the value comes from a related module's records
    path: tuple[str, ...] = ()  # the name split at its dots (nested objects)


def merge_context_build(*, webhook: Webhook, record: Record, schema: Schema | None = None) -> MergeContext:
    return MergeContext(
        schema=schema or schema_for(webhook.module, version=webhook.organization.schema_version),
        record=record,
        organization=webhook.organization,
        date_format=webhook.effective_date_format,
        datetime_format=webhook.effective_datetime_format,
        time_zone=webhook.effective_time_zone,
    )


def webhook_render_request(
    *, webhook: Webhook, record: Record, message_id: str, timestamp: int | None = None
) -> RenderedRequest:
    """The request exactly as it will be sent, signed for message_id (the delivery id)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return request_sign(
        webhook_render_unsigned(webhook=webhook, record=record), message_id=message_id, timestamp=timestamp,
        secrets=webhook.signing_secrets(datetime.datetime.fromtimestamp(timestamp, datetime.UTC)),
    )


def webhook_render_unsigned(*, webhook: Webhook, record: Record) -> RenderedRequest:
    """Everything but the signature headers, which are made fresh for every attempt."""
    context = merge_context_build(webhook=webhook, record=record)
    entity = [_parameter(context, p.name, p.value) for p in _parts(webhook, "entity_parameters")]
    custom = [(p.name, p.value) for p in _parts(webhook, "custom_parameters")]
    query: list[tuple[str, str]] = []
    body = ""
    if webhook.method == Method.GET or webhook.body:
        query = _flat_pairs(context, entity, custom)
        if webhook.method != Method.GET:
            body = _body_render(context, webhook.body, webhook.content_type)
    else:
        body = _parameters_encode(context, entity, custom, webhook.content_type)
    headers = {"User-Agent": settings.WEBHOOK_USER_AGENT}
    if webhook.method != Method.GET:
        headers["Content-Type"] = CONTENT_TYPE_HEADERS[webhook.content_type]
    secrets = [value for _, value in custom if value]
    for header in _parts(webhook, "headers"):
        if header.is_secret:
            headers[header.name] = header.value
            secrets.append(header.value)
        else:  # a record value with a line break must not start another header
            headers[header.name] = HEADER_VALUE_FORBIDDEN_RE.sub(" ", _render(context, template_compile(header.value)))
    if webhook.auth_type == AuthType.BASIC:
        credentials = f"{webhook.auth_username}:{webhook.auth_password}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode()
        if webhook.auth_password:
            secrets.append(webhook.auth_password)
    elif webhook.auth_type == AuthType.BEARER:
        headers["Authorization"] = f"Bearer {webhook.auth_token}"
        secrets.append(webhook.auth_token)
    # OAuth 2.0 tokens and client certificates are added at send time (dispatcher/sending.py).
    return RenderedRequest(
        method=webhook.method, url=_url_with_query(webhook.url, query), headers=headers,
        body=body.encode("utf-8", "replace"), secrets=tuple(sorted(secrets, key=len, reverse=True)),
    )


def _parts(webhook: Webhook, name: str) -> Iterable[Any]:
    """webhook.<name>.all(): the rows prefetched with the webhook when it was loaded so (the engine does),
    without a related manager and a queryset made for every render."""
    prefetched = getattr(webhook, "_prefetched_objects_cache", {})
    return prefetched[name] if name in prefetched else getattr(webhook, name).all()


def request_sign(request: RenderedRequest, *, secrets: Sequence[str], message_id: str,
                 timestamp: int | None = None) -> RenderedRequest:
    """Add the Standard Webhooks headers for this moment (a retry gets a new timestamp, the same id): one
    signature per secret (the current one, and the previous one during a rotation's grace period)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = {
        ID_HEADER: message_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: " ".join(
            signature_compute(secret=secret, message_id=message_id, timestamp=timestamp, body=request.body)
            for secret in secrets
        ),
    }
    return RenderedRequest(request.method, request.url, {**request.headers, **signed}, request.body, request.secrets)


COMPILED_KEPT = 4096  # compiled parameters a schema keeps (far more than its webhooks have); then it starts again


def _parameter(context: MergeContext, name: str, value: str) -> _Parameter:
    """The parameter compiled against the schema, once per metadata version (every render of it shares it)."""
    compiled, key = context.schema.compiled, (_Parameter, name, value)
    parameter = compiled.get(key)
    if parameter is None:
        if len(compiled) >= COMPILED_KEPT:
            compiled.clear()
        parameter = compiled[key] = _parameter_compile(context, name, value)
    return parameter


def _parameter_compile(context: MergeContext, name: str, value: str) -> _Parameter:
    template = template_compile(value)
    via = next(
        (binding.via for binding in map(context.binding, template.merge_fields) if isinstance(binding, OnRelated)),
        None,
    )
    return _Parameter(name, template, via, tuple(name.split(".")))


def _render(context: MergeContext, template: Template, related: Record | None = None) -> str:
    if (single := template.single_field) is not None:
        return as_text(context.value(single, related))
    return "".join(
        as_text(context.value(part.field, related)) if isinstance(part, Slot) else part for part in template.parts
    )


def _url_with_query(url: str, pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return url
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(pairs)]))
    return urlunsplit(parts._replace(query=query))


def _flat_pairs(context: MergeContext, entity: list[_Parameter], custom: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Name/value pairs for a query string: a related module's values are joined with commas."""
    return [(p.name, _render(context, p.template)) for p in entity] + custom


def _body_render(context: MergeContext, text: str, content_type: str) -> str:
    if content_type in (ContentType.JSON, ContentType.JSONARRAY):
        template = template_compile(text, json_context=True)
        return "".join(
            part if isinstance(part, str)
            else in_json_string(as_text(context.value(part.field))) if part.in_json_string
            else as_json_value(context.value(part.field))
            for part in template.parts
        )
    template = template_compile(text, xml_context=True)
    return "".join(
        part if isinstance(part, str)
        else (xml_comment_text if part.in_xml_comment else xml_text)(as_text(context.value(part.field)))
        for part in template.parts
    )


def _parameters_encode(
    context: MergeContext, entity: list[_Parameter], custom: list[tuple[str, str]], content_type: str
) -> str:
    if content_type == ContentType.FORM:
        return urlencode(list(_form_pairs(context, entity)) + custom)
    tree: dict[str, Any] = {}
    for parameter in entity:
        if parameter.related_via is None:
            _put(tree, parameter.path, _render(context, parameter.template))
            continue
        key, *rest = parameter.path
        records = context.related_records(parameter.related_via)
        values = [_render(context, parameter.template, related) for related in records]
        if not rest:
            tree[key] = values
            continue
        items = tree.get(key)
        if not isinstance(items, list) or len(items) != len(records):
            items = tree[key] = [{} for _ in records]
        for item, value in zip(items, values, strict=True):
            _put(item, rest, value)
    for name, value in custom:
        _put(tree, name.split("."), value)
    if content_type == ContentType.XML:
        return f'<?xml version="1.0" encoding="UTF-8"?>\n<{XML_ROOT}>{_xml_elements(tree)}</{XML_ROOT}>'
    document = [tree] if content_type == ContentType.JSONARRAY else tree
    return json.dumps(document, ensure_ascii=False)


def _form_pairs(context: MergeContext, entity: list[_Parameter]) -> Iterable[tuple[str, str]]:
    for parameter in entity:
        if parameter.related_via is None:
            yield parameter.name, _render(context, parameter.template)
            continue
        key, *rest = parameter.name.split(".")
        suffix = "".join(f"[{segment}]" for segment in rest)
        for index, related in enumerate(context.related_records(parameter.related_via)):
            yield f"{key}[{index}]{suffix}", _render(context, parameter.template, related)


def _put(tree: dict[str, Any], path: list[str] | tuple[str, ...], value: Any) -> None:
    for segment in path[:-1]:
        child = tree.get(segment)
        if not isinstance(child, dict):
            child = tree[segment] = {}
        tree = child
    tree[path[-1]] = value


def _xml_elements(tree: dict[str, Any]) -> str:
    out: list[str] = []
    for name, value in tree.items():
        for item in value if isinstance(value, list) else [value]:
            inner = _xml_elements(item) if isinstance(item, dict) else xml_text(str(item))
            out.append(f"<{name}>{inner}</{name}>")
    return "".join(out)


cache_register("secret spellings", secret_pattern.cache_clear)
