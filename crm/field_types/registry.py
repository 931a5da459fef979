"""The registry: the one object of each field type, and the lookup of a field's type (kind_of(field))."""
from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from crm import widgets
from crm.field_types.base import FieldKind
from crm.field_types.choices import BooleanKind, PicklistKind
from crm.field_types.dates import DateKind, DateTimeKind
from crm.field_types.links import LookupKind, UserKind
from crm.field_types.numbers import CurrencyKind, DecimalKind, NumberKind
from crm.field_types.text import TEXTAREA_MAX_LENGTH, TextKind
from crm.models import Field, FieldType


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


def kind_of(field: Field) -> FieldKind:
    """What a field's type does. A function here, not a property of Field: this module imports the models,
    so the models must not import it (.importlinter's crm-field-types contract)."""
    return field_kind(field.field_type)
