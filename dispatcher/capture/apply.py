"""Response capture: JSONPath or XPath over a receiver's answer, written into the record.

Never a crash and never a retry by itself: a body that cannot be read, an expression with no match, a
value the field refuses or a record deleted meanwhile is recorded on the attempt as such, and the
delivery goes on as it would. Where a capture runs (beside the drain loop, fairly across organizations)
is dispatcher/delivery/followups.py's business; this module is what one capture does.
"""
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse
from lxml import etree

from crm import services as crm_services
from crm.field_types import FieldKind, kind_of
from crm.models import Record
from dispatcher.capture.sandbox import CaptureTimeout, Sandbox, text_within, values_within
from dispatcher.transport.cleaning import clean_json
from dispatcher.models import Attempt, Capture, CaptureType, Webhook

logger = logging.getLogger(__name__)

NO_MATCH = "no match"
# What an attempt shows until its capture has run (it is stored with the attempt, so a worker that dies
# before the capture ran leaves this, not an empty result).
PENDING = {"pending": "The capture runs after the attempt is stored, beside the delivery engine; if this stays, "
                      "the worker process stopped before it ran."}
RECORD_GONE = "The record was deleted before the captured values could be written; nothing was written."
# A secret cut in two by the child's cut would escape the mask (which sees whole secrets only): the child
# keeps this much more of the last value, the mask runs, and then this much is dropped from its end.
SECRET_MARGIN = 4096


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
        elif field.is_system or not field.is_usable or kind_of(field).links_records:
            problems.append(f"“{field.label}” cannot be written by a capture (system, lookup, deleted or disabled).")
    if captures and not webhook.capture_response:
        problems.append("Switch on “capture the response” to use these captures, or remove them.")
    return problems


@dataclass(frozen=True)
class FieldCapture:
    """One expression and the field it writes, as plain values: a capture worker reads no model."""

    expression: str
    label: str
    api_name: str
    kind: FieldKind


@dataclass(frozen=True)
class CaptureJob:
    """What capturing one stored attempt's answer needs, taken in the drain loop's thread."""

    delivery_id: int
    message_id: str  # the delivery's id in the API and the log (msg_…)
    attempt_number: int
    organization_id: int
    record_id: int
    capture_type: str
    namespaces: str
    captures: tuple[FieldCapture, ...]
    body: bytes
    mask: Callable[[str], str] = str


def capture_wanted(*, webhook: Webhook | None, record_id: int | None, status_code: int | None,
                   success: bool) -> list[Capture]:
    """The webhook's captures for an attempt's answer (success: 2xx): none without an answer, a record or a
    capture switched on."""
    if webhook is None or record_id is None or status_code is None or not webhook.capture_response:
        return []
    when = "success" if success else "failure"
    return [c for c in webhook.captures.all() if c.when == when]


def capture_job(*, webhook: Webhook, captures: list[Capture], delivery_id: int, message_id: str,
                attempt_number: int, record_id: int, body: bytes,
                mask: Callable[[str], str] = str) -> CaptureJob:
    return CaptureJob(
        delivery_id=delivery_id, message_id=message_id, attempt_number=attempt_number,
        organization_id=webhook.organization_id, record_id=record_id, capture_type=webhook.capture_type,
        namespaces=webhook.capture_namespaces, body=body, mask=mask,
        captures=tuple(FieldCapture(c.expression, c.field.label, c.field.api_name, kind_of(c.field)) for c in captures))


def response_capture(*, job: CaptureJob, sandbox: Sandbox) -> dict[str, Any]:
    """Evaluate the captures on the answer and write the values into the record.

    The expressions run in a child process with a time bound of their own (dispatcher/capture/sandbox.py).
    Returns what to store on the attempt: per field label the expression, the matches and the value written
    (or the reason it was not); or {"error": …} when the body cannot be read, the expressions took too
    long or the record is gone. Matches are masked with the job's mask (the request's secrets): a receiver
    that echoes the request must not get its tokens written into the record, where auditors and API keys
    read them. They are kept up to WEBHOOK_MAX_CAPTURED_BYTES per attempt, half for the matches and half
    for the values written from them, shared equally by the captures; a cut is recorded, and a capture that
    was cut writes nothing (its value would be incomplete).
    """
    try:
        namespaces = namespaces_parse(job.namespaces)
    except ValidationError as error:
        return {"error": " ".join(error.messages)}
    share = max(1, settings.WEBHOOK_MAX_CAPTURED_BYTES // (2 * len(job.captures)))
    timeout = settings.WEBHOOK_CAPTURE_TIMEOUT
    try:
        answer = sandbox.run({"type": job.capture_type, "body": base64.b64encode(job.body).decode(),
                              "expressions": [c.expression for c in job.captures], "namespaces": namespaces,
                              "max_bytes": [share + SECRET_MARGIN] * len(job.captures)}, timeout=timeout)
    except CaptureTimeout:
        logger.warning("capture.timeout", extra={"delivery_id": job.message_id, "organization_id": job.organization_id,
                                                 "attempt": job.attempt_number, "seconds": timeout})
        return {"error": f"The capture expressions took longer than {timeout:g} s and were stopped; nothing was "
                         "captured.", "timeout": True}
    if "error" in answer:
        return {"error": answer["error"]}
    found: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for capture, matches, cut in zip(job.captures, answer["matches"], answer["cut"], strict=True):
        found[capture.label] = entry = _entry(capture, matches, cut, share, job.mask)
        if "written" not in entry:
            values[capture.api_name] = entry["written"] = capture.kind.captured(entry["matches"])
    if values and (gone := _write(job, values, found)):
        found["error"] = gone
    return found


def _entry(capture: FieldCapture, matches: list[Any], cut: list[int] | None, share: int,
           mask: Callable[[str], str]) -> dict[str, Any]:
    """What the attempt keeps of one capture; without "written" when there is a value to write."""
    # A value with NUL or a lone surrogate could be stored neither in the record nor in the log.
    matches, cleaned = clean_json(matches)
    matches = [mask(m) if isinstance(m, str) else m for m in matches]
    if cut and matches and isinstance(matches[-1], str):  # cut by the child: its end may hold part of a secret
        matches[-1] = text_within(matches[-1], max(0, len(matches[-1].encode()) - SECRET_MARGIN))
        if not matches[-1]:
            matches.pop()
    selected = cut[1] if cut else len(matches)
    matches, cut_here = values_within(matches, share)
    entry: dict[str, Any] = {"expression": capture.expression, "matches": matches}
    if cleaned:
        entry["cleaned"] = "NUL bytes or invalid text replaced"
    if cut or cut_here:
        size = f"{share / 1024:.3g} KB" if share >= 1024 else f"{share} bytes"
        entry["cut"] = f"matches cut at {size}: {len(matches):,} of {selected:,} kept"
        entry["written"] = f"not written: the matches were cut at {size}, so the value would be incomplete"
    elif not matches:
        entry["written"] = NO_MATCH
    return entry


def _write(job: CaptureJob, values: dict[str, Any], found: dict[str, Any]) -> str | None:
    """Only the captured fields, into the record as it is now: the row is locked and read again, so an
    edit made while the request was in flight, and the other captures of the same record, stay. Through the
    record service, as a system change: validated, and never firing workflow rules. Returns an error when
    the record is gone (it is not made again)."""
    labels = {c.api_name: c.label for c in job.captures}
    with transaction.atomic():
        record = (Record.objects.select_for_update(no_key=True, of=("self",)).select_related("module__organization")
                  .filter(pk=job.record_id).first())
        if record is None:
            for api_name in values:
                found[labels[api_name]]["written"] = "not written: the record was deleted"
            return RECORD_GONE
        try:
            crm_services.record_update(record=record, values=values, system=True)
        except ValidationError as error:
            for api_name, messages in error.message_dict.items():
                found[labels[api_name]]["written"] = f"not written: {' '.join(messages)}"
            good = {k: v for k, v in values.items() if k not in error.message_dict}
            if good:
                crm_services.record_update(record=record, values=good, system=True)
    return None


def captured_store(*, delivery_id: int, attempt_number: int, captured: dict[str, Any]) -> None:
    """What the capture found, onto its attempt (the log the delivery's page and the API show)."""
    captured, _ = clean_json(captured)
    Attempt.objects.filter(delivery_id=delivery_id, number=attempt_number).update(captured=captured)
