"""The field-type registry: every type has its object, and each says what differs for it."""
import datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from crm import services as crm_services
from crm.field_types import FIELD_KINDS, FieldKind, field_kind
from crm.models import Field, FieldType

UTC = "UTC"


def test_every_field_type_has_its_object():
    assert set(FIELD_KINDS) == set(FieldType.values)
    assert all(kind.code == code and isinstance(kind, FieldKind) for code, kind in FIELD_KINDS.items())


def test_an_unknown_field_type_is_refused_not_guessed(modules, owner):
    field = Field.objects.create(module=modules["Leads"], api_name="Odd", label="Odd", field_type="hologram")
    with pytest.raises(ValidationError, match="unsupported field type hologram"):
        crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "x", "Odd": "y"})
    assert field.pk and not modules["Leads"].records.exists()  # nothing stored


@pytest.mark.parametrize(("field_type", "raw", "stored"), [
    (FieldType.TEXT, "Zylker", "Zylker"),
    (FieldType.NUMBER, "42", 42),
    (FieldType.DECIMAL, 1.5, "1.5"),
    (FieldType.CURRENCY, "1234.5", "1234.50"),
    (FieldType.DATE, "2026-05-01", "2026-05-01"),
    (FieldType.DATETIME, "2026-05-01T14:30:00", "2026-05-01T12:30:00+00:00"),  # Europe/Amsterdam, summer
    (FieldType.BOOLEAN, "TRUE", True),
])
def test_clean_stores_one_canonical_form(organization, field_type, raw, stored):
    organization.time_zone = "Europe/Amsterdam"
    assert field_kind(field_type).clean(SimpleNamespace(picklist_values=[]), raw, organization) == stored


@pytest.mark.parametrize(("field_type", "raw", "message"), [
    (FieldType.TEXT, 5, "expected text"),
    (FieldType.TEXTAREA, "x" * 32_001, "at most 32000 characters"),
    (FieldType.EMAIL, "not-an-address", "not a valid e-mail address"),
    (FieldType.URL, "nowhere", "not a valid URL"),
    (FieldType.NUMBER, True, "expected a whole number"),
    (FieldType.NUMBER, 10 ** 18, "at most 18 digits"),
    (FieldType.DECIMAL, "NaN", "expected a finite number"),
    (FieldType.DATE, "01/05/2026", "YYYY-MM-DD"),
    (FieldType.BOOLEAN, "yes", "expected true or false"),
    (FieldType.PICKLIST, "Lost", "“Lost” is not one of Won"),
])
def test_clean_says_what_is_wrong(organization, field_type, raw, message):
    with pytest.raises(ValidationError, match=message):
        field_kind(field_type).clean(SimpleNamespace(picklist_values=["Won"]), raw, organization)


def test_render_follows_the_webhooks_formats_and_names_linked_records():
    context = SimpleNamespace(date_format="dd/MM/yyyy", datetime_format="dd/MM/yyyy HH:mm", time_zone="Asia/Kolkata",
                              record_of=lambda pk: SimpleNamespace(display_name=f"Account {pk}"),
                              user_of=lambda pk: None)
    assert field_kind(FieldType.DATE).render("2026-05-01", context) == "01/05/2026"
    assert field_kind(FieldType.DATETIME).render("2026-05-01T12:30:00+00:00", context) == "01/05/2026 18:00"
    assert field_kind(FieldType.CURRENCY).render("1234.50", context) == Decimal("1234.50")
    assert field_kind(FieldType.LOOKUP).render(7, context) == "Account 7"
    assert field_kind(FieldType.USER).render(7, context) is None  # a user deleted since
    assert field_kind(FieldType.TEXT).render("as stored", context) == "as stored"


def test_comparisons_belong_to_the_type():
    number, date, boolean, text = (field_kind(t) for t in (FieldType.NUMBER, FieldType.DATETIME, FieldType.BOOLEAN,
                                                           FieldType.TEXT))
    assert number.equal(5, "5.0", UTC) and not number.equal(5, "five", UTC)
    assert date.equal("2026-05-01T23:30:00+00:00", "2026-05-02", "Europe/Amsterdam")  # the local day
    assert date.local_date("2026-05-01T23:30:00+00:00", "Europe/Amsterdam") == datetime.date(2026, 5, 2)
    assert boolean.equal(True, " true ", UTC) and text.equal("Closed Won", "closed won", UTC)
    assert text.local_date("2026-05-01", UTC) is None  # "is today" never holds for text
    assert (number.ordered, date.temporal, text.ordered, field_kind(FieldType.DATE).date_only) == (True, True, False, True)


def test_a_capture_joins_matches_only_into_text():
    assert field_kind(FieldType.TEXT).captured(["a", True, None, 3]) == "a, true, null, 3"
    assert field_kind(FieldType.EMAIL).captured(["first@x.example", "second@x.example"]) == "first@x.example"
    assert field_kind(FieldType.NUMBER).captured([3, 4]) == 3
    assert field_kind(FieldType.LOOKUP).links_records and not field_kind(FieldType.USER).links_records
