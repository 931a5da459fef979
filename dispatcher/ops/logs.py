"""Structured logs: one JSON line per delivery attempt, for log pipelines (docs/operate/monitoring.md).

Only identifiers, outcomes and timings are logged; never URLs, headers or bodies, which can carry
tokens and passwords.
"""
import logging

from dispatcher.models import Attempt, Delivery

attempt_logger = logging.getLogger("dispatcher.attempts")


def attempt_log(delivery: Delivery, attempt: Attempt) -> None:
    attempt_logger.info("delivery.attempt", extra={
        "delivery_id": delivery.message_id,
        "attempt": attempt.number,
        "organization": delivery.organization_id,
        "webhook": delivery.webhook_id,
        "channel": delivery.channel.public_id if delivery.channel is not None else None,
        "source": delivery.source,
        "outcome": attempt.outcome,
        "status_code": attempt.status_code,
        "error_class": attempt.error_class or None,
        "duration_ms": attempt.duration_ms,
    })
