"""The field types: one object per type says everything the product does differently for it.

A record value is cleaned on the way in (the API, the admin, captures), rendered into merge fields (the
webhook's date formats and time zone; the content type's encoder then spells the Python value), compared
by workflow conditions, taken from a captured response, and listed in the merge-field catalogue. Each of
those asks the field's type (``field.kind``) instead of switching on ``field_type``, so adding a type is
one class here, one ``FieldType`` choice and its tests (tests/crm/test_field_types.py checks that every
choice has its class). The admin's record form asks it too: ``form_field`` is the input a value of the
type gets, ``form_initial`` how a stored value shows in it; what the input gives is cleaned by ``clean``,
exactly as API input is. ``value_schema`` is the JSON Schema of a stored value, which channel
notifications carry as it is (the event catalogue, dispatcher/senders/event_types.py).
"""
import datetime
import json
import re
import zoneinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db.models import Q

from crm import widgets
from crm.formats import format_date, format_datetime
from crm.models import CrmUser, Field, FieldType, Organization, Record

TEXT_MAX_LENGTH = 255
TEXTAREA_MAX_LENGTH = 32_000
NUMBER_MAX_DIGITS = 18  # digits before the decimal point of a number or currency value (Zoho allows 16)
ID_MAX_DIGITS = 18  # a database id (bigint) has at most 19 digits; 18 always fits
# str(Decimal) as DecimalKind stores it: plain digits, or with an exponent when the number has one (1E+5, 0E-10).
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(E[+-][0-9]+)?$"
_SURROGATE = re.compile("[\ud800-\udfff]")
# A record or user id as lookups and user fields store it (id_of).
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 10 ** ID_MAX_DIGITS - 1}
_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}


class RenderContext(Protocol):
    """What rendering a stored value needs from the webhook being rendered (MergeContext provides it)."""

    date_format: str
    datetime_format: str
    time_zone: str

    def record_of(self, pk: Any) -> Record | None: ...

    def user_of(self, pk: Any) -> CrmUser | None: ...


class FieldKind:
    """A field type. The defaults are those of text; each subclass changes what differs for it."""

    code: FieldType
    ordered = False  # compared with <, <=, >, >=, between
    temporal = False  # before, after, today; a date trigger; dates in conditions given as YYYY-MM-DD
    date_only = False  # a day without a time: an action relative to it on its day runs at its set time
    links_records = False  # its value is another record's id: followed by merge fields, not written by captures
    joins_matches = False  # several captured matches are joined into one text

    def clean(self, field: Field, raw: Any, organization: Organization) -> Any:
        """The value to store for raw input (never None or ""); ValidationError says what is wrong."""
        raise NotImplementedError

    def render(self, raw: Any, context: RenderContext) -> Any:
        """A stored value as a merge field gives it (the content type's encoder spells it)."""
        return raw

    def comparable(self, value: Any, time_zone: str) -> Any:
        """A stored value or a condition's text in a form that compares; None when it cannot be one."""
        return str(value).casefold()

    def equal(self, stored: Any, text: str, time_zone: str) -> bool:
        """Whether a stored value is a condition's text (is, isn't, changed to)."""
        return str(stored).casefold() == text.casefold()

    def local_date(self, value: Any, time_zone: str) -> datetime.date | None:
        """The day a value falls on in the time zone (is today); None for types without one."""
        return None

    def condition_value_problem(self, field: Field, text: str) -> str | None:
        """Why text cannot be a condition's value for this field, in words; None when it can."""
        return None

    def captured(self, matches: list[Any]) -> Any:
        """What a response capture writes, from one or more matches: the first one."""
        return matches[0]

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """The record form's input for a value of this type (current: the stored value, if any). It gives
        text, as an API client may; clean() then checks it as it checks the API's."""
        return forms.CharField(required=field.is_required, strip=False,
                               widget=forms.TextInput(attrs={"class": "vTextField"}))

    def form_initial(self, raw: Any, organization: Organization) -> Any:
        """A stored value as the record form's input shows it, and sends it back untouched, so that an
        input the user did not touch changes nothing."""
        return str(raw)

    def value_schema(self, field: Field) -> dict[str, Any]:
        """The JSON Schema (draft 2020-12) of a value as clean() stores it: what a channel notification's
        data holds for the field (rendering is for merge fields only)."""
        raise NotImplementedError


class TextKind(FieldKind):
    """Text, with a length limit and, for e-mail and URL, Django's validator."""

    def __init__(self, code: FieldType, *, max_length: int = TEXT_MAX_LENGTH, validator: Any = None,
                 json_format: str | None = None, joins_matches: bool = False,
                 widget: forms.Widget | None = None) -> None:
        self.code, self.max_length, self.validator, self.joins_matches = code, max_length, validator, joins_matches
        self.json_format = json_format  # the JSON Schema format its validator checks, if any
        self.widget = widget or forms.TextInput(attrs={"class": "vTextField"})

    def clean(self, field: Field, raw: Any, organization: Organization) -> str:
        if not isinstance(raw, str):
            raise ValidationError("expected text.")
        if len(raw) > self.max_length:
            raise ValidationError(f"at most {self.max_length} characters (this has {len(raw)}).")
        if "\x00" in raw:
            raise ValidationError("must not contain the NUL character (\\u0000).")
        if _SURROGATE.search(raw):
            raise ValidationError("must be valid Unicode text (it holds a lone surrogate such as \\ud800).")
        if self.validator is not None:
            self.validator(raw)
        return raw

    def captured(self, matches: list[Any]) -> Any:
        """Several matches joined (plain and multi-line text), JSON's scalars spelled as JSON spells them
        (true, not Python's True); an e-mail, phone or URL field takes the first."""
        if not self.joins_matches:
            return matches[0]
        return ", ".join(json.dumps(m) if isinstance(m, bool) or m is None else str(m) for m in matches)

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        return forms.CharField(required=field.is_required, strip=False, widget=self.widget)

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.json_format:
            schema["format"] = self.json_format
        return schema


class _Numeric(FieldKind):
    ordered = True

    def comparable(self, value: Any, time_zone: str) -> Decimal | None:
        try:
            return Decimal(str(value))
        except (InvalidOperation, ValueError, TypeError):
            return None

    def equal(self, stored: Any, text: str, time_zone: str) -> bool:
        left = self.comparable(stored, time_zone)
        return left is not None and left == self.comparable(text, time_zone)

    def condition_value_problem(self, field: Field, text: str) -> str | None:
        if self.comparable(text, "UTC") is None:
            return f"“{text}” is not a number, as “{field.label}” needs."
        return None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """Text with a numeric keyboard, not <input type=number>: a browser sends such an input empty when it
        does not read as a number, and what was typed would be lost without a word."""
        mode = "numeric" if self.code == FieldType.NUMBER else "decimal"
        return forms.CharField(required=field.is_required, strip=False,
                               widget=forms.TextInput(attrs={"inputmode": mode, "class": "vBigIntegerField"}))


class NumberKind(_Numeric):
    code = FieldType.NUMBER

    def clean(self, field: Field, raw: Any, organization: Organization) -> int:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise ValidationError("expected a whole number.")
        try:
            number = int(raw)
        except ValueError:
            raise ValidationError("expected a whole number.") from None
        if abs(number) >= 10 ** NUMBER_MAX_DIGITS:
            raise ValidationError(f"expected a number of at most {NUMBER_MAX_DIGITS} digits.")
        return number

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "integer", "exclusiveMinimum": -10 ** NUMBER_MAX_DIGITS,
                "exclusiveMaximum": 10 ** NUMBER_MAX_DIGITS}


class DecimalKind(_Numeric):
    """Stored as text, so that 1234.50 keeps its exact digits in JSON; rendered as a number."""

    code = FieldType.DECIMAL

    def clean(self, field: Field, raw: Any, organization: Organization) -> str:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
            raise ValidationError("expected a number.")
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            raise ValidationError("expected a number.") from None
        if not number.is_finite():
            raise ValidationError("expected a finite number.")
        if abs(number.adjusted()) > NUMBER_MAX_DIGITS:
            raise ValidationError(f"expected a number of at most {NUMBER_MAX_DIGITS} digits.")
        return str(self.quantized(number))

    def quantized(self, number: Decimal) -> Decimal:
        return number

    def render(self, raw: Any, context: RenderContext) -> Decimal:
        return Decimal(raw)

    def value_schema(self, field: Field) -> dict[str, Any]:
        """Text, not a JSON number: a receiver's float would lose the exact digits."""
        return {"type": "string", "pattern": DECIMAL_PATTERN,
                "description": "A decimal number as text, with its exact digits (e.g. 1234.5 or 1E+20)."}


class CurrencyKind(DecimalKind):
    code = FieldType.CURRENCY

    def quantized(self, number: Decimal) -> Decimal:
        return number.quantize(Decimal("0.01"))

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$",
                "description": "An amount as text with two decimals (e.g. 1234.50), in the organization's currency."}


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


class BooleanKind(FieldKind):
    code = FieldType.BOOLEAN

    def clean(self, field: Field, raw: Any, organization: Organization) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValidationError("expected true or false.")

    def equal(self, stored: Any, text: str, time_zone: str) -> bool:
        return str(stored).lower() == text.strip().lower()

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """A checkbox; unticked on a new record stores nothing, as an API client that leaves it out."""
        return forms.BooleanField(required=False)

    def form_initial(self, raw: Any, organization: Organization) -> Any:
        return raw

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "boolean"}


class PicklistKind(FieldKind):
    code = FieldType.PICKLIST

    def clean(self, field: Field, raw: Any, organization: Organization) -> Any:
        if raw not in field.picklist_values:
            raise ValidationError(f"“{raw}” is not one of {', '.join(map(str, field.picklist_values))}.")
        return raw

    def condition_value_problem(self, field: Field, text: str) -> str | None:
        if text not in field.picklist_values:
            return f"“{text}” is not one of the values of “{field.label}”: {', '.join(field.picklist_values)}."
        return None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """The pick list's values; a stored value the list no longer has stays a choice, so that saving the
        record for another change does not drop it."""
        values = {str(value): value for value in field.picklist_values}
        choices = [("", "---------")] + [(text, text) for text in values]
        if current is not None and str(current) not in values:
            values[str(current)] = current
            choices.append((str(current), f"{current} (no longer in the pick list)"))
        return forms.TypedChoiceField(required=field.is_required, choices=choices,
                                      coerce=lambda text: values.get(text, text))

    def value_schema(self, field: Field) -> dict[str, Any]:
        """The list's values as examples, not an enum: a value removed from the list stays on the records
        that have it, and their notifications carry it."""
        types = sorted({_JSON_TYPES.get(type(value), "string") for value in field.picklist_values}) or ["string"]
        return {"type": types[0] if len(types) == 1 else types, "examples": list(field.picklist_values),
                "description": "One of the pick list's values (or one removed from it since it was set)."}


class LookupKind(FieldKind):
    """The id of a record of the field's lookup module; a merge field gives the record's name."""

    code = FieldType.LOOKUP
    links_records = True

    def clean(self, field: Field, raw: Any, organization: Organization) -> int:
        target = field.lookup_module
        if target is None:
            raise ValidationError("this lookup field has no module to look up.")
        if (pk := id_of(raw)) is None:
            raise ValidationError(f"expected the id of a {target.singular_label} record.")
        if not Record.objects.filter(pk=pk, module=target).exists():
            raise ValidationError(f"no {target.singular_label} record with id {pk}.")
        return pk

    def render(self, raw: Any, context: RenderContext) -> str | None:
        target = context.record_of(raw)
        return target.display_name if target else None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """A search box over the looked-up module's records, by name or id."""
        return forms.CharField(required=field.is_required, widget=widgets.RecordLookupInput(field))

    def value_schema(self, field: Field) -> dict[str, Any]:
        target = field.lookup_module
        return {**ID_SCHEMA, "description": f"The id of a record of {target.api_name if target else 'its module'}."}


class UserKind(FieldKind):
    """The id of a CRM user of the organization; a merge field gives the user's full name."""

    code = FieldType.USER

    def clean(self, field: Field, raw: Any, organization: Organization) -> int:
        if (pk := id_of(raw)) is None:
            raise ValidationError("expected the id of a CRM user.")
        if not CrmUser.objects.filter(pk=pk, organization=organization).exists():
            raise ValidationError(f"no user with id {pk} in this organization.")
        return pk

    def render(self, raw: Any, context: RenderContext) -> str | None:
        user = context.user_of(raw)
        return user.full_name if user else None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """The organization's active users, and the stored one even when no longer active."""
        users = CrmUser.objects.filter(Q(is_active=True) | Q(pk=id_of(current) or 0), organization=organization)
        return forms.TypedChoiceField(required=field.is_required, coerce=int, choices=[("", "---------")] + [
            (str(user.pk), user.full_name or user.email) for user in users])

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {**ID_SCHEMA, "description": "The id of a CRM user of the organization."}


FIELD_KINDS: dict[str, FieldKind] = {kind.code: kind for kind in [
    TextKind(FieldType.TEXT, joins_matches=True),
    TextKind(FieldType.TEXTAREA, max_length=TEXTAREA_MAX_LENGTH, joins_matches=True,
             widget=forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField"})),
    # Django's validators take internationalised domains (bücher.example), so the formats are the IDN ones.
    TextKind(FieldType.EMAIL, validator=EmailValidator(message="not a valid e-mail address."),
             json_format="idn-email", widget=forms.EmailInput(attrs={"class": "vTextField"})),
    TextKind(FieldType.PHONE, widget=widgets.TelInput(attrs={"class": "vTextField"})),
    TextKind(FieldType.URL, validator=URLValidator(message="not a valid URL."), json_format="iri",
             widget=forms.URLInput(attrs={"class": "vURLField"})),
    NumberKind(), DecimalKind(), CurrencyKind(), DateKind(), DateTimeKind(), BooleanKind(), PicklistKind(),
    LookupKind(), UserKind(),
]}


def field_kind(field_type: str) -> FieldKind:
    """The type object of a field_type; an unknown one (a row written by hand) is refused, never guessed."""
    try:
        return FIELD_KINDS[field_type]
    except KeyError:
        raise ValidationError(f"unsupported field type {field_type}.") from None


def aligned(left: Any, right: Any, time_zone: str) -> tuple[Any, Any]:
    """A date/time compared with a date is compared by its local date."""
    if isinstance(left, datetime.datetime) and type(right) is datetime.date:
        left = left.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
    elif isinstance(right, datetime.datetime) and type(left) is datetime.date:
        right = right.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
    return left, right


def id_of(raw: Any) -> int | None:
    """A record or user id given as a number or as ASCII digits ("²" is a digit to str.isdigit, not to int)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 < raw < 10 ** ID_MAX_DIGITS else None
    if isinstance(raw, str) and raw.isascii() and raw.isdecimal() and len(raw) <= ID_MAX_DIGITS:
        return int(raw) or None
    return None


def _moment(text: str, time_zone: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zoneinfo.ZoneInfo(time_zone))
