"""Each field type's JSON Schema (FieldKind.value_schema) accepts every value its clean() stores, and refuses
the other JSON types: channel notifications carry stored values, and the event catalogue describes them so."""
import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from crm.field_types import FIELD_KINDS, field_kind
from crm.models import FieldType

FIELD = SimpleNamespace(picklist_values=["Won", "Lost"], lookup_module=None, is_required=False)
ORGANIZATION = SimpleNamespace(time_zone="Europe/Amsterdam")


def accepts(field_type: str, value) -> bool:
    schema = field_kind(field_type).value_schema(FIELD)
    return Draft202012Validator(schema, format_checker=FormatChecker()).is_valid(value)


def test_every_field_type_has_a_valid_schema():
    assert set(FIELD_KINDS) == set(FieldType.values)
    for kind in FIELD_KINDS.values():
        Draft202012Validator.check_schema(kind.value_schema(FIELD))


@pytest.mark.parametrize(("field_type", "raw"), [
    (FieldType.TEXT, "Zylker"), (FieldType.TEXTAREA, "two\nlines"), (FieldType.EMAIL, "jan@bücher.example"),
    (FieldType.PHONE, "+31 6 1234 5678"), (FieldType.URL, "https://bücher.example/a?b=c"),
    (FieldType.NUMBER, "-42"), (FieldType.NUMBER, 10 ** 18 - 1), (FieldType.DECIMAL, "1e5"),
    (FieldType.DECIMAL, "0.0000000000"), (FieldType.DECIMAL, 1.5), (FieldType.CURRENCY, "-0"),
    (FieldType.CURRENCY, "999999999999999999.999"), (FieldType.DATE, "0001-01-01"),
    (FieldType.DATETIME, "2026-05-01T14:30:00.123456"), (FieldType.BOOLEAN, "false"), (FieldType.PICKLIST, "Won"),
])
def test_stored_values_are_valid(field_type, raw):
    assert accepts(field_type, field_kind(field_type).clean(FIELD, raw, ORGANIZATION))


@pytest.mark.parametrize(("field_type", "value"), [
    (FieldType.TEXT, 5), (FieldType.TEXT, "x" * 256), (FieldType.NUMBER, "5"), (FieldType.NUMBER, 10 ** 18),
    (FieldType.DECIMAL, 1.5), (FieldType.DECIMAL, "1,5"), (FieldType.CURRENCY, "1.5"), (FieldType.DATE, "01/05/2026"),
    (FieldType.BOOLEAN, "true"), (FieldType.LOOKUP, "7"), (FieldType.LOOKUP, 0), (FieldType.USER, True),
    (FieldType.PICKLIST, 3),
])
def test_other_values_are_not(field_type, value):
    assert not accepts(field_type, value)


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("-1e17"), max_value=Decimal("1e17"),
                   places=None) | st.integers(-10 ** 17, 10 ** 17))
def test_every_decimal_and_amount_as_stored_is_valid(number):
    for field_type in (FieldType.DECIMAL, FieldType.CURRENCY):
        try:
            stored = field_kind(field_type).clean(FIELD, str(number), ORGANIZATION)
        except ValidationError:  # a number clean() refuses is stored nowhere
            continue
        assert accepts(field_type, stored), (field_type, number, stored)


@given(st.datetimes(timezones=st.timezones()))
def test_every_date_time_as_stored_is_valid(moment: datetime.datetime):
    try:
        stored = field_kind(FieldType.DATETIME).clean(FIELD, moment.isoformat(), ORGANIZATION)
    except ValidationError:  # outside the years 1 to 9999 once in UTC: refused, stored nowhere
        return
    assert accepts(FieldType.DATETIME, stored) and stored.endswith("+00:00")
