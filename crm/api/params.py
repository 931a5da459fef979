"""Parameters every router reads the same way: date/times (``created_after``, ``modified_since``, a
recover's ``since`` and ``until``).

One reading, so that no parameter can answer 500: ISO 8601, with an offset or without one (then UTC);
refused with a 400 naming the parameter when it is not a date/time, is not a possible one (30 February, an
offset of a day or more), or falls outside what Python holds once converted to UTC
(``9999-12-31T23:59:59-23:59`` is in the year 10000 in UTC, ``0001-01-01T00:00:00+23:59`` in the year 0).
What passes is given in UTC: PostgreSQL refuses offsets beyond ±15:59 that Python accepts (``+20:00``).
"""
import datetime

from django.utils.dateparse import parse_datetime

from crm.api.errors import ApiError

DATETIME_EXAMPLE = "2026-12-01T09:00:00Z"
DATETIME_DESCRIPTION = f"ISO 8601 date and time, e.g. {DATETIME_EXAMPLE}; without an offset: UTC."


def datetime_param(value: str | None, *, name: str) -> datetime.datetime | None:
    """value as an aware date/time in UTC (None stays None), or an ApiError (400 invalid_fields) that says
    what is wrong with the parameter name."""
    if value is None:
        return None
    try:
        # Python's own parser stops at a NUL ("…T09:00:00\x00junk" would pass): no control characters at all.
        moment = parse_datetime(value) if value.isprintable() else None
    except ValueError:  # the shape of a date/time, but not one that exists
        raise _invalid(name, f"“{value[:40]}” is not a date and time that exists.") from None
    if moment is None:
        raise _invalid(name, f"Give an ISO 8601 date and time, e.g. {DATETIME_EXAMPLE}.")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    try:
        return moment.astimezone(datetime.UTC)
    except OverflowError:
        raise _invalid(name, f"“{value[:40]}” is out of range in UTC: give a time from 0001-01-01T00:00:00Z to "
                             "9999-12-31T23:59:59Z.") from None


def _invalid(name: str, message: str) -> ApiError:
    return ApiError(400, "invalid_fields", f"Some values are not valid: {name}.", fields={name: [message]})
