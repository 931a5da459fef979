"""Which results are retried, and when: the one visible rule of the retry policy."""
import datetime
from email.utils import parsedate_to_datetime

from dispatcher.http_client import ErrorClass, HttpResult
from dispatcher.models import RetryPolicy

RETRIED_STATUS_CODES = frozenset({408, 429})  # and every 5xx
RETRIED_ERRORS = frozenset({
    ErrorClass.CONNECTION_ERROR, ErrorClass.TIMEOUT, ErrorClass.DNS_FAILURE, ErrorClass.TLS_ERROR,
    ErrorClass.PROTOCOL_ERROR,
})


def is_retryable(result: HttpResult) -> bool:
    """Connection failures, timeouts, 408, 429 and 5xx may heal; refused URLs, 3xx and other 4xx do not."""
    if result.error_class is not None:
        return result.error_class in RETRIED_ERRORS
    code = result.status_code or 0
    return code in RETRIED_STATUS_CODES or 500 <= code < 600


def next_attempt_at(
    *, policy: RetryPolicy, attempt_number: int, result: HttpResult, now: datetime.datetime
) -> datetime.datetime | None:
    """When to try again after attempt attempt_number failed; None when the policy has no retry left."""
    if not is_retryable(result) or attempt_number > len(policy.delays):
        return None
    delay = policy.delays[attempt_number - 1]
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
    if result.status_code is not None and result.error_class is None:
        return f"not retried: {result.status_code}."
    return f"not retried: {str(result.error_class).replace('_', ' ')}."


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
