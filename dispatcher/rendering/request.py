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
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from django.conf import settings

from config.caches import cache_register
from crm.models import Field, Record
from dispatcher.models import AuthType, Channel, ContentType, Method, Webhook
from dispatcher.rendering.encoding import as_json_value, as_text, in_json_string, xml_comment_text, xml_text
from dispatcher.rendering.merge import MergeContext, OnRelated, Schema, schema_for
from dispatcher.rendering.template import Slot, Template, template_compile
from dispatcher.transport.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_compute
from dispatcher.transport.addresses import HEADER_VALUE_FORBIDDEN_RE
from dispatcher.transport.request import RenderedRequest, secret_pattern
from dispatcher.transport.sending import OAuthClient, SendAuth, tls_context

XML_ROOT = "request"
CONTENT_TYPE_HEADERS: dict[str, str] = {
    ContentType.JSON: "application/json; charset=utf-8",
    ContentType.JSONARRAY: "application/json; charset=utf-8",
    ContentType.XML: "application/xml; charset=utf-8",
    ContentType.FORM: "application/x-www-form-urlencoded",
}


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
    # OAuth 2.0 tokens and client certificates are added at send time (dispatcher/transport/sending.py).
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


def send_auth_for(webhook: Webhook | Channel | None) -> SendAuth | None:
    """What the sender's requests need at send time: a webhook's OAuth client or TLS identity (channels
    authenticate by their signature alone)."""
    if not isinstance(webhook, Webhook):
        return None
    oauth = None
    if webhook.auth_type == AuthType.OAUTH2:
        oauth = OAuthClient(webhook.oauth_token_url, webhook.oauth_client_id, webhook.oauth_client_secret,
                            webhook.oauth_scope, webhook.oauth_client_auth)
    tls = None
    if webhook.tls_client_certificate or webhook.tls_ca_bundle:
        tls = tls_context(webhook.tls_client_certificate, webhook.tls_client_key, webhook.tls_ca_bundle)
    return SendAuth(oauth, tls) if oauth or tls else None
