"""Response capture: JSONPath or XPath over a receiver's answer, written into the record.

Never a crash and never a retry by itself: a body that cannot be read, an expression with no match or
a value the field refuses is recorded on the attempt as such, and the delivery goes on as it would.
"""
import base64
import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse
from lxml import etree

from crm import services as crm_services
from crm.models import Record
from dispatcher.capture_sandbox import CaptureTimeout, sandbox
from dispatcher.cleaning import clean_json
from dispatcher.models import Capture, CaptureType, Webhook

logger = logging.getLogger(__name__)

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
        except (JsonPathParserError, JsonPathLexerError, Exception) as error:  # noqa: BLE001 - the lexer raises plain Exception
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
        elif field.is_system or not field.is_usable or field.kind.links_records:
            problems.append(f"“{field.label}” cannot be written by a capture (system, lookup, deleted or disabled).")
    if captures and not webhook.capture_response:
        problems.append("Switch on “capture the response” to use these captures, or remove them.")
    return problems


def response_capture(*, webhook: Webhook, record: Record | None, body: bytes, success: bool,
                     mask: Callable[[str], str] = str) -> dict[str, Any]:
    """Evaluate the webhook's captures for this outcome on body and write the values to the record.

    Runs after the attempt is stored. The expressions run in a child process with a time bound of their
    own (dispatcher/capture_sandbox.py). Returns what to store on the attempt: per field label the
    expression, the matches and the value written (or the reason it was not); or {"error": …} when the
    body cannot be read or the expressions took too long. Matches are masked with ``mask`` (the request's
    secrets): a receiver that echoes the request must not get its tokens written into the record, where
    auditors and API keys read them.
    """
    when = "success" if success else "failure"
    captures = [c for c in webhook.captures.all() if c.when == when]
    if not webhook.capture_response or not captures or record is None:
        return {}
    try:
        namespaces = namespaces_parse(webhook.capture_namespaces)
    except ValidationError as error:
        return {"error": " ".join(error.messages)}
    timeout = settings.WEBHOOK_CAPTURE_TIMEOUT
    try:
        answer = sandbox.run({"type": webhook.capture_type, "body": base64.b64encode(body).decode(),
                              "expressions": [c.expression for c in captures], "namespaces": namespaces},
                             timeout=timeout)
    except CaptureTimeout:
        logger.warning("capture.timeout webhook=%s seconds=%s", webhook.pk, timeout)
        return {"error": f"The capture expressions took longer than {timeout:g} s and were stopped; nothing was "
                         "captured.", "timeout": True}
    if "error" in answer:
        return {"error": answer["error"]}
    found: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for capture, matches in zip(captures, answer["matches"], strict=True):
        # A value with NUL or a lone surrogate could be stored neither in the record nor in the log.
        matches, cleaned = clean_json(matches)
        matches = [mask(m) if isinstance(m, str) else m for m in matches]
        entry: dict[str, Any] = {"expression": capture.expression, "matches": matches}
        if cleaned:
            entry["cleaned"] = "NUL bytes or invalid text replaced"
        if not matches:
            entry["written"] = NO_MATCH
        else:
            values[capture.field.api_name] = capture.field.kind.captured(matches)
            entry["written"] = values[capture.field.api_name]
        found[capture.field.label] = entry
    if values:
        _write(record, values, found, captures)
    return found


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
