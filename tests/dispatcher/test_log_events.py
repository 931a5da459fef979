"""The engine's log events: every logger call in dispatcher/ (and the workflow engine) is an event declared in
dispatcher/ops/logs.py with its level and fields, a field is named as the /metrics label of the same thing, and a
real delivery writes them as JSON lines (LOG_FORMAT=json) and as key=value text (the default) without secrets."""
import ast
import datetime
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.utils import timezone

from config.logformat import NOT_FIELDS
from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import endpoint_health as health
from dispatcher.models import AuthType, Endpoint, RetryPolicy
from dispatcher.ops.logs import EVENTS, FIELDS
from dispatcher.ops.metrics import ENGINE_DECISIONS
from tests.factories import webhook_create
from tests.logformats import configured_formatter, written_log

ROOT = Path(__file__).resolve().parents[2]
SCANNED = [path for path in sorted((ROOT / "dispatcher").rglob("*.py")) if "migrations" not in path.parts] \
    + [ROOT / "workflows" / "engine.py"]
LEVELS = {"debug": "debug", "info": "info", "warning": "warning", "error": "error", "exception": "error",
          "critical": "critical"}
DECLARED = {event.name: event for event in EVENTS}
EVENT_NAME = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$")
SECRETS = ("tok-logs-secret", "pw-logs-secret", "/hook")  # a custom parameter, a password, the URL's path


@dataclass(frozen=True)
class Call:
    """One logger call found in the code; problem says why it is not an event."""

    where: str
    name: str
    level: str
    fields: tuple[str, ...]
    traceback: bool
    problem: str = ""


def _call(node: ast.Call, where: str) -> Call:
    assert isinstance(node.func, ast.Attribute)
    level = LEVELS[node.func.attr]
    keywords = {k.arg: k.value for k in node.keywords}
    exc_info = keywords.get("exc_info")
    traceback = node.func.attr == "exception" or (isinstance(exc_info, ast.Constant) and exc_info.value is True)
    first = node.args[0] if node.args else None
    if not isinstance(first, ast.Constant) or not isinstance(first.value, str):
        return Call(where, "", level, (), traceback, "its message is not a literal event name")
    if len(node.args) > 1:
        return Call(where, first.value, level, (), traceback, "%-arguments: give the values as extra= fields")
    extra = keywords.get("extra", ast.Dict(keys=[], values=[]))
    if not isinstance(extra, ast.Dict) or not all(isinstance(k, ast.Constant) for k in extra.keys):
        return Call(where, first.value, level, (), traceback, "extra= is not a dict with literal keys")
    return Call(where, first.value, level, tuple(k.value for k in extra.keys if isinstance(k, ast.Constant)),
                traceback)


def logger_calls() -> list[Call]:
    """Every call of a logger's method (logger.info(...), attempt_logger.warning(...)) in the scanned modules."""
    calls = []
    for path in SCANNED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LEVELS \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id.endswith("logger"):
                calls.append(_call(node, f"{path.relative_to(ROOT)}:{node.lineno}"))
    return calls


def counted_decisions() -> set[str]:
    """The decisions the engine counts for /metrics: the literal first argument of every counters.count()."""
    found = set()
    for path in SCANNED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "count" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "counters" \
                    and node.args and isinstance(node.args[0], ast.Constant):
                found.add(node.args[0].value)
    return found


def test_every_logger_call_is_a_declared_event_with_its_level_and_fields():
    calls = logger_calls()
    assert len(calls) >= len(EVENTS)
    wrong = []
    for call in calls:
        event = DECLARED.get(call.name)
        if call.problem or event is None:
            wrong.append(f"{call.where}: {call.problem or f'{call.name!r} is not declared in dispatcher/ops/logs.py'}")
        elif (call.level, call.fields, call.traceback) != (event.level, event.fields, event.traceback):
            wrong.append(f"{call.where}: {call.name} logged as {call.level} {call.fields} traceback={call.traceback}, "
                         f"declared as {event.level} {event.fields} traceback={event.traceback}")
    assert not wrong, "\n".join(wrong)


def test_every_declared_event_is_logged_somewhere():
    logged = {call.name for call in logger_calls()}
    assert not set(DECLARED) - logged, f"declared but never logged: {sorted(set(DECLARED) - logged)}"


def test_names_and_fields_are_of_one_shape_and_every_field_is_explained():
    assert len(DECLARED) == len(EVENTS), "an event is declared twice"
    assert not [e.name for e in EVENTS if not EVENT_NAME.match(e.name)], "names: dotted, lower-case"
    used = {field for event in EVENTS for field in event.fields}
    assert used == set(FIELDS), f"unexplained: {sorted(used - set(FIELDS))}, unused: {sorted(set(FIELDS) - used)}"
    # A LogRecord's own attributes cannot be given as extra= (logging raises), nor would the formatters show them.
    assert not used & set(NOT_FIELDS)


def test_a_field_named_as_a_metrics_label_is_that_label_and_counted_decisions_are_counted():
    labels = set(ENGINE_DECISIONS.labels)
    decisions = counted_decisions()
    for event in EVENTS:
        selector = re.fullmatch(r"webhook_engine_decisions_total\{(.*)\}", event.counted)
        if selector is None:
            continue
        given = dict(re.findall(r'(\w+)="([^"]*)"', selector[1]))
        assert set(given) <= labels and given["decision"] in decisions, event
        # Its outcome is either fixed by the event or a field of it, as the label of the counter it adds to.
        assert "outcome" in given or "outcome" in event.fields or event.name != "deliver.write_failed", event
    attempt = DECLARED["delivery.attempt"]
    assert attempt.counted == "webhook_attempts_total" and {"source", "outcome"} <= set(attempt.fields)


@pytest.fixture
def gone_hook(receiver, modules):
    """A webhook whose receiver answers 410 Gone: the attempt is logged, then its destination is disabled."""
    receiver.expect_request("/hook").respond_with_data("no such subscription", status=410)
    return webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook?authtoken=tok-logs-secret"),
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", "tok-logs-secret")],
                          auth_type=AuthType.BASIC, auth_username="books", auth_password="pw-logs-secret",
                          retry_policy=RetryPolicy.objects.create(name="No retries", code="none", delays=[]))


def _deliver_to_a_gone_receiver(hook, owner, modules, capture) -> None:
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    with capture(execute=True):  # the worker's transaction commits
        for pk, token in delivery_engine.deliveries_claim(now=timezone.now(), limit=100):
            delivery_engine.delivery_attempt(delivery_id=pk, token=token)
    health.endpoint_enable(endpoint=Endpoint.objects.get(), by="admin")


def test_a_real_delivery_writes_json_lines_with_the_declared_fields(gone_hook, owner, modules,
                                                                    django_capture_on_commit_callbacks):
    with written_log("json") as log:
        _deliver_to_a_gone_receiver(gone_hook, owner, modules, django_capture_on_commit_callbacks)
    text = log.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    events = {line["message"]: line for line in lines if line["message"] in DECLARED}
    assert {"delivery.attempt", "endpoint.disabled", "endpoint.enabled"} <= set(events), text
    for name, line in events.items():
        event = DECLARED[name]
        assert set(line) == {"time", "level", "logger", "message", *event.fields}, line
        assert line["level"] == event.level.upper()
        assert datetime.datetime.fromisoformat(line["time"]).utcoffset() == datetime.timedelta(0)
    delivery = gone_hook.deliveries.get()
    attempt = events["delivery.attempt"]
    assert attempt["logger"] == "dispatcher.attempts"
    assert attempt["delivery_id"] == delivery.message_id and attempt["webhook_id"] == gone_hook.pk
    assert attempt["organization_id"] == gone_hook.organization_id and attempt["channel_id"] is None
    assert (attempt["source"], attempt["outcome"]) == ("workflow", "failed")
    assert attempt["status_code"] == 410 and attempt["error_class"] == "http_410" and attempt["duration_ms"] >= 0
    endpoint = Endpoint.objects.get()
    assert events["endpoint.disabled"]["endpoint_id"] == endpoint.pk
    enabled = events["endpoint.enabled"]
    assert (enabled["endpoint_id"], enabled["organization_id"]) == (endpoint.pk, gone_hook.organization_id)
    assert (enabled["replayed"], enabled["by"]) == (0, "admin")
    assert not [secret for secret in SECRETS if secret in text]


def test_the_text_log_line_carries_the_same_fields(gone_hook, owner, modules, django_capture_on_commit_callbacks):
    with written_log("text") as log:
        _deliver_to_a_gone_receiver(gone_hook, owner, modules, django_capture_on_commit_callbacks)
    text = log.getvalue()
    delivery = gone_hook.deliveries.get()
    [line] = [line for line in text.splitlines() if " delivery.attempt " in line]
    assert f" INFO dispatcher.attempts delivery.attempt delivery_id={delivery.message_id} attempt=1 " in line
    assert " channel_id=null source=workflow outcome=failed status_code=410 error_class=http_410 " in line
    assert re.search(r" endpoint\.enabled endpoint_id=\d+ organization_id=\d+ replayed=0 by=admin$", text, re.MULTILINE)
    assert not [secret for secret in SECRETS if secret in text]


def test_a_text_value_with_spaces_or_quotes_is_quoted_and_a_traceback_follows_the_line():
    formatter = configured_formatter("text")
    try:
        raise ValueError("boom")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("dispatcher.test", logging.ERROR, __file__, 1, "deliver.followup_failed", None, exc_info)
    record.by = 'API key "ops" (recover)'
    record.events = ["crm.deal.created", "crm.deal.updated"]
    first, *rest = formatter.format(record).splitlines()
    assert first.endswith(' deliver.followup_failed by="API key \\"ops\\" (recover)" '
                          'events=["crm.deal.created","crm.deal.updated"]')
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"
