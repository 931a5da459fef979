"""Temporal types: dates and date/times (stored in UTC), and how a date compares with a date/time (by its local
day)."""
import datetime
import zoneinfo
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from crm import widgets
from crm.field_types.base import FieldKind, RenderContext
from crm.formats import format_date, format_datetime
from crm.models import Field, FieldType, Organization


class _Temporal(FieldKind):
    """Dates and date/times. In conditions a date (YYYY-MM-DD) compared with a date/time compares with the
    date/time's day in the organization's time zone."""

    ordered = temporal = True

    def comparable(self, value: Any, time_zone: str) -> datetime.date | None:
        try:
            text = str(value)
            return datetime.date.fromisoformat(text) if len(text) <= 10 else _moment(text, time_zone)
        except (ValueError, TypeError):
            return None

    def equal(self, stored: Any, text: str, time_zone: str) -> bool:
        left, right = aligned(self.comparable(stored, time_zone), self.comparable(text, time_zone), time_zone)
        return left is not None and left == right

    def local_date(self, value: Any, time_zone: str) -> datetime.date | None:
        moment = self.comparable(value, time_zone)
        if isinstance(moment, datetime.datetime):
            return moment.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
        return moment

    def condition_value_problem(self, field: Field, text: str) -> str | None:
        if self.comparable(text, "UTC") is None:
            return f"“{text}” is not a date (YYYY-MM-DD), as “{field.label}” needs."
        return None


class DateKind(_Temporal):
    code = FieldType.DATE
    date_only = True

    def clean(self, field: Field, raw: Any, organization: Organization) -> str:
        try:
            return (raw if isinstance(raw, datetime.date) else datetime.date.fromisoformat(str(raw))).isoformat()
        except ValueError:
            raise ValidationError("expected a date as YYYY-MM-DD.") from None

    def render(self, raw: Any, context: RenderContext) -> str:
        return format_date(datetime.date.fromisoformat(raw), context.date_format)

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        return forms.CharField(required=field.is_required, widget=widgets.DateInput())

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "format": "date"}


class DateTimeKind(_Temporal):
    """Stored in UTC; input without an offset is in the organization's time zone."""

    code = FieldType.DATETIME

    def clean(self, field: Field, raw: Any, organization: Organization) -> str:
        try:
            value = raw if isinstance(raw, datetime.datetime) else datetime.datetime.fromisoformat(str(raw))
        except ValueError:
            raise ValidationError("expected a date/time in ISO 8601, e.g. 2026-05-01T14:30:00+02:00.") from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=zoneinfo.ZoneInfo(organization.time_zone))
        try:
            return value.astimezone(datetime.UTC).isoformat()
        except OverflowError:  # 9999-12-31T23:59:59-23:59 is after the last date/time there is, in UTC
            raise ValidationError("this date/time is outside the years 1 to 9999 once converted to UTC.") from None

    def render(self, raw: Any, context: RenderContext) -> str:
        return format_datetime(datetime.datetime.fromisoformat(raw), context.datetime_format, context.time_zone)

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        return forms.CharField(required=field.is_required, widget=widgets.DateTimeInput(),
                               help_text=f"In the organization's time zone, {organization.time_zone}.")

    def form_initial(self, raw: Any, organization: Organization) -> Any:
        """The stored UTC moment in the organization's time zone, spelled as a browser sends a date/time
        input back (seconds only when there are some), so an untouched input is not a change."""
        try:
            local = datetime.datetime.fromisoformat(str(raw)).astimezone(zoneinfo.ZoneInfo(organization.time_zone))
        except (ValueError, OverflowError):
            return str(raw)
        return local.replace(tzinfo=None).isoformat(timespec="seconds" if local.second else "minutes")

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "description": "In UTC, e.g. 2026-05-01T12:30:00+00:00."}


def aligned(left: Any, right: Any, time_zone: str) -> tuple[Any, Any]:
    """A date/time compared with a date is compared by its local date."""
    if isinstance(left, datetime.datetime) and type(right) is datetime.date:
        left = left.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
    elif isinstance(right, datetime.datetime) and type(left) is datetime.date:
        right = right.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
    return left, right


def _moment(text: str, time_zone: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zoneinfo.ZoneInfo(time_zone))
