"""Date and datetime formats an organization or a webhook can choose (CRM notation -> strftime)."""
import datetime
import zoneinfo

DATE_FORMATS: dict[str, str] = {
    "yyyy-MM-dd": "%Y-%m-%d",
    "dd/MM/yyyy": "%d/%m/%Y",
    "MM/dd/yyyy": "%m/%d/%Y",
    "dd-MM-yyyy": "%d-%m-%Y",
    "dd.MM.yyyy": "%d.%m.%Y",
    "yyyy/MM/dd": "%Y/%m/%d",
    "dd MMM yyyy": "%d %b %Y",
}

ISO_8601 = "iso8601"

DATETIME_FORMATS: dict[str, str] = {
    # ISO 8601 with the offset; strftime before Python 3.12 has no "%:z", so it is special-cased.
    "yyyy-MM-dd'T'HH:mm:ssXXX": ISO_8601,
    "yyyy-MM-dd HH:mm:ss": "%Y-%m-%d %H:%M:%S",
    "dd/MM/yyyy HH:mm": "%d/%m/%Y %H:%M",
    "MM/dd/yyyy hh:mm a": "%m/%d/%Y %I:%M %p",
    "dd-MM-yyyy HH:mm:ss": "%d-%m-%Y %H:%M:%S",
    "dd.MM.yyyy HH:mm": "%d.%m.%Y %H:%M",
}

DATE_FORMAT_CHOICES = [(key, key) for key in DATE_FORMATS]
DATETIME_FORMAT_CHOICES = [(key, key) for key in DATETIME_FORMATS]


def validate_time_zone(value: str) -> None:
    from django.core.exceptions import ValidationError

    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"“{value}” is not a known time zone; use an IANA name such as Europe/Amsterdam.")


def format_date(value: datetime.date, pattern: str) -> str:
    return value.strftime(DATE_FORMATS[pattern])


def format_datetime(value: datetime.datetime, pattern: str, time_zone: str) -> str:
    """Render an aware datetime in the given zone, the way a receiver's locale expects it."""
    local = value.astimezone(zoneinfo.ZoneInfo(time_zone))
    strftime = DATETIME_FORMATS[pattern]
    if strftime == ISO_8601:
        return local.isoformat(timespec="seconds")
    return local.strftime(strftime)
