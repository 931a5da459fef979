"""What every field type answers (FieldKind, with the defaults of text) and what rendering a value needs from
the webhook being rendered (RenderContext)."""
import datetime
from typing import Any, Protocol

from django import forms

from crm.models import CrmUser, Field, FieldType, Organization, Record


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
