"""Structured logs: every event the engine logs, declared once, for log pipelines (docs/operate/monitoring.md).

An event is a logger call whose message is a stable dotted name and whose fields come as ``extra``:
``logger.warning("deliver.claim_lost", extra={"delivery_id": …, "organization_id": …, "attempt": …})``.
With LOG_FORMAT=json each is one JSON object (python-json-logger, config/settings.py LOGGING). EVENTS declares
them: the monitoring page lists them from it (dispatcher/ops/metrics_reference.py), and
tests/dispatcher/test_log_events.py fails on a logger call whose name, level or fields differ from its declaration.

Fields carry identifiers, classes, counts and durations only; never URLs, headers or bodies, which can carry
tokens and passwords. A field named as a /metrics label (source, outcome) holds what that label holds.
"""
import logging
from dataclasses import dataclass
from typing import Literal

from dispatcher.models import Attempt, Delivery

attempt_logger = logging.getLogger("dispatcher.attempts")

#: Every field an event may carry, with its meaning (the monitoring page's list of fields).
FIELDS: dict[str, str] = {
    "delivery_id": "The delivery's id, `msg_…`: the `webhook-id` header, the id in the API and the admin.",
    "delivery_pk": "The delivery's row id (a wake-up carries only that).",
    "attempt": "The attempt's number within its delivery.",
    "organization_id": "The organization's id (the `organization` label of /metrics holds its name).",
    "webhook_id": "The webhook's id; null for a channel's delivery.",
    "channel_id": "The channel's id, as in the API; null for a webhook's delivery.",
    "source": "As the `source` label of `webhook_attempts_total`: where the delivery came from, `replay` after a "
              "resend.",
    "outcome": "As the `outcome` label of the series it is counted in: the delivery's status after the attempt "
               "(`webhook_attempts_total`), or how far a write went (`full`, then `stripped`).",
    "status_code": "The receiver's HTTP status; null without an answer.",
    "error_class": "What went wrong, e.g. `http_503`, `timeout`, `connection_error`; null on success.",
    "duration_ms": "From sending the request to the end of the answer (or the error), in milliseconds.",
    "count": "How many (deliveries, outcomes).",
    "by": "Who asked: an admin's user name, or `API key <name>`.",
    "cutoff": "Deliveries that ended before this time (ISO 8601) were deleted.",
    "seconds": "The time limit that was reached, in seconds.",
    "endpoint_id": "The destination's id (the admin's Destinations).",
    "failures": "Deliveries in a row that failed for good at this destination.",
    "replayed": "Deliveries held for the destination, queued again.",
    "how": "Celery's kind of shutdown, e.g. `Warm` (store what ends within the grace period) or `Cold`.",
    "pool_processes": "The worker's pool processes told to stop.",
    "given_back": "Deliveries in flight given back, due again at once.",
    "stored": "Deliveries whose request ended during the grace period, stored.",
    "function": "The follow-up that failed (its function's name).",
    "task": "The Celery task's name.",
    "recipients": "How many addresses the e-mail was for.",
    "rule_id": "The workflow rule's id.",
    "record_id": "The record's id.",
    "operation": "What happened to the record: `create`, `edit` or `delete`.",
    "events": "The event types the channel subscribes to.",
}

Level = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class LogEvent:
    """One event. counted: the /metrics series the same occurrence adds to (its fields named as its labels);
    traceback: the line carries the exception (``exception`` in JSON)."""

    name: str
    level: Level
    fields: tuple[str, ...]
    when: str
    counted: str = ""
    traceback: bool = False


def _decision(decision: str, outcome: str = "") -> str:
    labels = f'decision="{decision}"' + (f', outcome="{outcome}"' if outcome else "")
    return f"webhook_engine_decisions_total{{{labels}}}"


_DELIVERY = ("delivery_id", "organization_id", "attempt")

EVENTS: tuple[LogEvent, ...] = (
    LogEvent("delivery.attempt", "info", ("delivery_id", "attempt", "organization_id", "webhook_id", "channel_id",
                                          "source", "outcome", "status_code", "error_class", "duration_ms"),
             "After every attempt, from the logger `dispatcher.attempts`.", counted="webhook_attempts_total"),
    LogEvent("deliver.claim_lost", "warning", _DELIVERY,
             "An attempt ended after another worker had taken its delivery over (its lease ran out): the attempt "
             "is recorded, the new owner sends it again.", counted=_decision("claim_lost")),
    LogEvent("deliver.lease_taken_over", "warning", ("count",),
             "Deliveries claimed from a worker that died or hung past their lease.",
             counted=_decision("lease_taken_over")),
    LogEvent("deliver.write_fallback", "error", ("count",),
             "A batch of outcomes could not be stored together; each is written on its own.",
             counted=_decision("write_fallback"), traceback=True),
    LogEvent("deliver.write_failed", "error", (*_DELIVERY, "outcome"),
             "An outcome could not be stored even on its own (`full`), then without the receiver's answer "
             "(`stripped`): see [a full disk](runbooks.md#a-full-disk).", counted=_decision("write_failed"),
             traceback=True),
    LogEvent("deliver.sign_failed", "warning", ("delivery_id", "organization_id", "webhook_id", "channel_id"),
             "The signing secret is not valid: the delivery fails; rotate the secret and resend.",
             counted=_decision("sign_failed")),
    LogEvent("deliver.render_failed", "error", ("delivery_id", "organization_id", "webhook_id"),
             "The webhook's request could not be rendered for the record: the delivery fails.",
             counted=_decision("render_failed"), traceback=True),
    LogEvent("capture.timeout", "warning", (*_DELIVERY, "seconds"),
             "A response capture ran out of time (`WEBHOOK_CAPTURE_TIMEOUT`) and was stopped.",
             counted=_decision("capture", "timeout")),
    LogEvent("capture.failed", "error", _DELIVERY,
             "A response capture failed in the product, not in its expressions (those are recorded on the "
             "attempt).", counted=_decision("capture", "error"), traceback=True),
    LogEvent("capture.worker_failed", "error", _DELIVERY, "A capture worker failed around a capture.",
             traceback=True),
    LogEvent("capture.stop_failed", "error", (), "A stopping worker process could not close its capture workers.",
             traceback=True),
    LogEvent("deliver.followup_failed", "error", ("function",),
             "A follow-up of a stored outcome (usage, endpoint health, e-mails, captures) failed; the outcome "
             "stays stored.", traceback=True),
    LogEvent("deliver_wake.failed", "warning", ("delivery_pk",),
             "The broker refused a delivery's wake-up: the pump sends it later.", traceback=True),
    LogEvent("deliver_wake.drain_failed", "warning", (),
             "The broker refused a drain wake-up: the pump sends one later.", traceback=True),
    LogEvent("deliver_wake.awake_check_failed", "warning", (),
             "Whether a drain loop is listening could not be read: the broker is asked instead.", traceback=True),
    LogEvent("drain.listener_close_failed", "warning", (),
             "A drain loop could not stop listening cleanly (its connection was broken).", traceback=True),
    LogEvent("drain.stop", "warning", ("given_back", "stored"),
             "A drain loop stopped with its worker: what was in flight after the grace period was given back."),
    LogEvent("worker.stopping", "info", ("how", "pool_processes"), "The worker is asked to stop."),
    LogEvent("endpoint.disabled", "warning", ("endpoint_id", "organization_id", "failures"),
             "A destination was disabled (failures in a row, or 410 Gone): its deliveries are held; see "
             "[an endpoint on hold](runbooks.md#an-endpoint-on-hold)."),
    LogEvent("endpoint.enabled", "info", ("endpoint_id", "organization_id", "replayed", "by"),
             "A destination was enabled again and its held deliveries queued."),
    LogEvent("deliver.resend", "info", ("count", "by"), "Ended deliveries were queued again (resend, recover)."),
    LogEvent("deliver.purge", "info", ("count", "cutoff"),
             "Ended deliveries older than `WEBHOOK_LOG_RETENTION_DAYS` were deleted."),
    LogEvent("channel.created", "info", ("channel_id", "organization_id", "events"), "An event subscription began."),
    LogEvent("channel.deleted", "info", ("channel_id", "organization_id"), "An event subscription ended."),
    LogEvent("notify.mail_failed", "error", ("recipients",), "An e-mail to the admins could not be sent.",
             traceback=True),
    LogEvent("notify.queue_failed", "warning", ("task",),
             "The broker refused an e-mail's task: it is sent at once instead.", traceback=True),
    LogEvent("notify.send_failed", "error", ("task",),
             "An e-mail's task refused by the broker failed when run at once.", traceback=True),
    LogEvent("workflow.fire", "info", ("rule_id", "record_id", "organization_id", "operation"),
             "A workflow rule matched a record's change; its actions run."),
)


def attempt_log(delivery: Delivery, attempt: Attempt, source: str) -> None:
    """source: as counted in /metrics (replay after a resend), so that log and metrics agree."""
    attempt_logger.info("delivery.attempt", extra={
        "delivery_id": delivery.message_id,
        "attempt": attempt.number,
        "organization_id": delivery.organization_id,
        "webhook_id": delivery.webhook_id,
        "channel_id": delivery.channel.public_id if delivery.channel is not None else None,
        "source": source,
        "outcome": attempt.outcome,
        "status_code": attempt.status_code,
        "error_class": attempt.error_class or None,
        "duration_ms": attempt.duration_ms,
    })
