"""Response capture: JSONPath or XPath over a receiver's answer, written into the record.

Never a crash and never a retry by itself: a body that cannot be read, an expression with no match or
a value the field refuses is recorded on the attempt as such, and the delivery goes on as it would.
"""
import json
import logging
from typing import Any

from django.core.exceptions import ValidationError
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse
from lxml import etree

from crm import services as crm_services
from crm.models import FieldType, Record
from dispatcher.models import Capture, CaptureType, Webhook
from dispatcher.xml import safe_parser

logger = logging.getLogger(__name__)

TEXT_TYPES = {FieldType.TEXT, FieldType.TEXTAREA}
NO_MATCH = "no match"


def namespaces_parse(text: str) -> dict[str, str]:
    """``prefix=URI`` per line; raises ValidationError naming the line that is wrong."""
    namespaces = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        prefix, sep, uri = line.partition("=")
        if not sep or not prefix.strip().isidentifier() or not uri.strip():
            raise ValidationError(f"Namespace line {number} (“{line.strip()}”) is not of the form prefix=URI.")
        namespaces[prefix.strip()] = uri.strip()
    return namespaces


def expression_error(expression: str, capture_type: str, namespaces: dict[str, str]) -> str | None:
    """The parser's own message when an expression cannot be compiled; None when it can."""
    if capture_type == CaptureType.JSONPATH:
        try:
            jsonpath_parse(expression)
        except (JsonPathParserError, JsonPathLexerError, Exception) as error:  # the lexer raises plain Exception
            return f"“{expression}” is not a valid JSONPath: {error}."
        return None
    try:
        # Evaluated once on an empty element too: undefined prefixes only show when the expression runs.
        etree.XPath(expression, namespaces=namespaces)(etree.Element("probe"))
    except etree.XPathError as error:
        return f"“{expression}” is not a valid XPath: {error}."
    return None


def captures_check(*, webhook: Webhook, captures: list[Capture]) -> list[str]:
    """Messages for the admin form and imports."""
    problems = []
    try:
        namespaces = namespaces_parse(webhook.capture_namespaces)
    except ValidationError as error:
        return error.messages
    for capture in captures:
        if problem := expression_error(capture.expression, webhook.capture_type, namespaces):
            problems.append(problem)
        field = capture.field
        if field.module_id != webhook.module_id:
            problems.append(f"“{field.label}” is not a field of {webhook.module.api_name}.")
        elif field.is_system or not field.is_usable or field.field_type == FieldType.LOOKUP:
            problems.append(f"“{field.label}” cannot be written by a capture (system, lookup, deleted or disabled).")
    if captures and not webhook.capture_response:
        problems.append("Switch on “capture the response” to use these captures, or remove them.")
    return problems


def response_capture(*, webhook: Webhook, record: Record | None, body: bytes, success: bool) -> dict[str, Any]:
    """Evaluate the webhook's captures for this outcome on body and write the values to the record.

    Returns what to store on the attempt: per field label the expression, the matches and the value
    written (or the reason it was not); or {"error": …} when the body cannot be read at all.
    """
    when = "success" if success else "failure"
    captures = [c for c in webhook.captures.all() if c.when == when]
    if not webhook.capture_response or not captures or record is None:
        return {}
    try:
        document = _document(body, webhook.capture_type)
        namespaces = namespaces_parse(webhook.capture_namespaces)
    except ValueError as error:
        return {"error": str(error)}
    except ValidationError as error:
        return {"error": " ".join(error.messages)}
    found: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for capture in captures:
        matches = _matches(document, capture, webhook.capture_type, namespaces)
        entry: dict[str, Any] = {"expression": capture.expression, "matches": matches}
        if not matches:
            entry["written"] = NO_MATCH
        else:
            values[capture.field.api_name] = _value_for(capture.field.field_type, matches)
            entry["written"] = values[capture.field.api_name]
        found[capture.field.label] = entry
    if values:
        _write(record, values, found, captures)
    return found


def _document(body: bytes, capture_type: str) -> Any:
    if capture_type == CaptureType.JSONPATH:
        try:
            return json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ValueError("The response is not JSON, so nothing was captured.") from None
    try:
        root = etree.fromstring(body, parser=safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        raise ValueError("The response is not well-formed XML, so nothing was captured.") from None
    if root is None or root.getroottree().docinfo.internalDTD is not None:
        # Entity tricks (XXE, billion laughs) live in DTDs; a response needs none.
        raise ValueError("The response declares a DTD, which is refused, so nothing was captured.")
    return root


def _matches(document: Any, capture: Capture, capture_type: str, namespaces: dict[str, str]) -> list[Any]:
    try:
        if capture_type == CaptureType.JSONPATH:
            return [_plain(m.value) for m in jsonpath_parse(capture.expression).find(document)]
        result = etree.XPath(capture.expression, namespaces=namespaces)(document)
    except Exception as error:  # an expression valid when saved can still fail on a given document
        logger.info("capture.expression_failed capture=%s error=%s", capture.pk, error)
        return []
    items = result if isinstance(result, list) else [result]
    return [str(item.xpath("string()")) if isinstance(item, etree._Element) else _plain(item) for item in items]


def _plain(value: Any) -> Any:
    """Scalars as they are (lxml's strings as plain str); objects and lists as their JSON text."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value) if isinstance(value, str) else value


def _value_for(field_type: str, matches: list[Any]) -> Any:
    """Several matches: joined for text fields; a single-value field takes the first."""
    if field_type in TEXT_TYPES:
        return ", ".join(str(m) for m in matches)
    return matches[0]


def _write(record: Record, values: dict[str, Any], found: dict[str, Any], captures: list[Capture]) -> None:
    """Through the record service, as a system change: validated, and never firing workflow rules."""
    labels = {c.field.api_name: c.field.label for c in captures}
    try:
        crm_services.record_update(record=record, values=values, system=True)
    except ValidationError as error:
        for api_name, messages in error.message_dict.items():
            found[labels[api_name]]["written"] = f"not written: {' '.join(messages)}"
        good = {k: v for k, v in values.items() if k not in error.message_dict}
        if good:
            crm_services.record_update(record=record, values=good, system=True)
