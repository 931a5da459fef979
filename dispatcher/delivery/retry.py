"""Which results are retried, and when: the one visible rule of the retry policy.

Delays get WEBHOOK_RETRY_JITTER (±10 % by default) so that the deliveries a receiver's outage failed
together do not all come back in the same second when it recovers. A Retry-After is honoured as given
(never earlier), and 410 Gone is final: the receiver says the endpoint no longer exists.
"""
import datetime
import random
from email.utils import parsedate_to_datetime

from django.conf import settings

from dispatcher.transport.result import HttpResult, is_retryable
from dispatcher.models import RetryPolicy

GONE = 410


def next_attempt_at(
    *, policy: RetryPolicy, attempt_number: int, result: HttpResult, now: datetime.datetime
) -> datetime.datetime | None:
    """When to try again after attempt attempt_number failed; None when the policy has no retry left."""
    if not is_retryable(result) or attempt_number > len(policy.delays):
        return None
    delay = jittered(policy.delays[attempt_number - 1])
    if (wait := retry_after_seconds(result, now)) is not None:
        delay = max(delay, min(wait, policy.max_retry_after))
    return now + datetime.timedelta(seconds=delay)


def verdict(*, policy: RetryPolicy, attempt_number: int, result: HttpResult,
            due_at: datetime.datetime | None) -> str:
    """What happens next, in words, for the reason shown in the log and the e-mail."""
    if due_at is not None:
        return f"retry {attempt_number} of {len(policy.delays)} at {due_at:%Y-%m-%d %H:%M:%S} UTC."
    if is_retryable(result):
        return f"no retry left ({policy.name}: {len(policy.delays)} retr{'y' if len(policy.delays) == 1 else 'ies'})."
    if result.status_code == GONE and result.error_class is None:
        return "not retried: 410 Gone, the receiver says this endpoint no longer exists; the destination is disabled."
    if result.status_code is not None and result.error_class is None:
        return f"not retried: {result.status_code}."
    return f"not retried: {str(result.error_class).replace('_', ' ')}."


def jittered(delay: int) -> float:
    """The delay moved by up to ±WEBHOOK_RETRY_JITTER of itself, at random."""
    spread = settings.WEBHOOK_RETRY_JITTER
    return delay * (1 + random.uniform(-spread, spread)) if spread else float(delay)


def is_gone(result: HttpResult) -> bool:
    return result.status_code == GONE and result.error_class is None


def schedule(policy: RetryPolicy) -> list[tuple[int, int]]:
    """Each retry's delay and its time after the first attempt (without jitter or request durations)."""
    total, rows = 0, []
    for delay in policy.delays:
        total += delay
        rows.append((delay, total))
    return rows


def duration_text(seconds: float) -> str:
    """5 s, 5 min, 2 h 30 min, 2 d 18 h: the largest two units."""
    seconds = int(round(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2])


def schedule_text(policy: RetryPolicy) -> str:
    """One line for the admin: when each attempt happens, counted from the first."""
    steps = ["at once"] + [f"+{duration_text(total)}" for _, total in schedule(policy)]
    return " → ".join(steps)


def retry_after_seconds(result: HttpResult, now: datetime.datetime) -> int | None:
    """Retry-After of a 429 or 503, as seconds or an HTTP date (RFC 9110); unreadable values are ignored."""
    if result.status_code not in (429, 503):
        return None
    value = next((v for k, v in result.headers.items() if k.lower() == "retry-after"), "").strip()
    if value.isdigit():
        return int(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0, int((moment - now).total_seconds()))
