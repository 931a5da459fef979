import pytest
from django.core.exceptions import ValidationError

from crm import services
from crm.models import Field, Record


def test_new_organization_gets_the_standard_modules_with_system_fields(organization, modules):
    assert {"Leads", "Contacts", "Accounts", "Deals", "Events", "Tasks", "Calls", "Notes"} <= set(modules)
    labels = set(modules["Deals"].fields.values_list("label", flat=True))
    assert {"Deal Id", "Deal Owner", "Deal Name", "Amount", "Closing Date", "Account Name", "Created Time"} <= labels
    assert not modules["Notes"].supports_webhooks and not modules["Calls"].supports_webhooks
    assert "Potentials" in modules["Deals"].merge_names


def test_installing_standard_modules_twice_changes_nothing(organization):
    before = Field.objects.filter(module__organization=organization).count()
    services.modules_install_standard(organization=organization)
    assert Field.objects.filter(module__organization=organization).count() == before


def test_record_values_are_stored_in_their_canonical_form(organization, owner, modules):
    account = services.record_create(module=modules["Accounts"], owner=owner, values={"Account_Name": "Zylker"})
    deal = services.record_create(module=modules["Deals"], owner=owner, values={
        "Deal_Name": "Big one", "Amount": 1234.5, "Closing_Date": "2026-05-01", "Account_Name": str(account.pk),
        "Probability": "60", "Stage": "Closed Won",
    })
    deal.refresh_from_db()
    assert deal.values == {
        "Deal_Name": "Big one", "Amount": "1234.50", "Closing_Date": "2026-05-01", "Account_Name": account.pk,
        "Probability": 60, "Stage": "Closed Won",
    }
    assert str(deal) == f"Deal Big one (#{deal.pk})"


def test_naive_datetimes_are_read_in_the_organization_time_zone(organization, owner, modules):
    event = services.record_create(module=modules["Events"], owner=owner, values={
        "Event_Title": "Demo", "Start_DateTime": "2026-07-01T10:00:00",
    })
    assert event.values["Start_DateTime"] == "2026-07-01T08:00:00+00:00"  # Amsterdam is UTC+2 in summer


@pytest.mark.parametrize(("values", "field", "message"), [
    ({"Deal_Name": "x", "Amount": "lots"}, "Amount", "Amount: expected a number."),
    ({"Deal_Name": "x", "Closing_Date": "01/05/2026"}, "Closing_Date", "Closing Date: expected a date as YYYY-MM-DD."),
    ({"Deal_Name": "x", "Stage": "Won-ish"}, "Stage", "Stage: “Won-ish” is not one of"),
    ({"Deal_Name": "x", "Account_Name": 999999}, "Account_Name", "Account Name: no Account record with id 999999."),
    ({"Deal_Name": "x", "Colour": "red"}, "Colour", "Deals has no field with API name “Colour”."),
    ({"Amount": "10"}, "Deal_Name", "Deal Name is required."),
    ({"Deal_Name": "nul\x00byte"}, "Deal_Name", "Deal Name: must not contain the NUL character (\\u0000)."),
    ({"Deal_Name": "x" * 256}, "Deal_Name", "Deal Name: at most 255 characters (this has 256)."),
])
def test_invalid_values_are_refused_with_a_message_per_field(organization, owner, modules, values, field, message):
    with pytest.raises(ValidationError) as caught:
        services.record_create(module=modules["Deals"], owner=owner, values=values)
    assert any(m.startswith(message) for m in caught.value.message_dict[field])
    assert not Record.objects.filter(module=modules["Deals"]).exists()


def test_a_deleted_field_cannot_be_written(organization, owner, modules):
    Field.objects.filter(module=modules["Deals"], api_name="Type").update(is_deleted=True)
    with pytest.raises(ValidationError) as caught:
        services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "x", "Type": "New Business"})
    assert caught.value.message_dict["Type"] == ["The field “Type” is deleted or disabled and cannot be set."]


def test_update_keeps_other_values_and_cannot_clear_a_required_field(organization, owner, modules):
    lead = services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "Jansen", "Company": "B"})
    services.record_update(record=lead, values={"Company": None, "Email": "jan@example.com"})
    assert lead.values == {"Last_Name": "Jansen", "Email": "jan@example.com"}
    with pytest.raises(ValidationError) as caught:
        services.record_update(record=lead, values={"Last_Name": ""})
    assert caught.value.message_dict["Last_Name"] == ["Last Name is required."]


def test_an_update_from_a_stale_copy_keeps_what_was_written_meanwhile(organization, owner, modules):
    """An API call or form loaded the record, a capture (or another user) wrote a field, then the first
    change is saved: only the fields it names change; what was written meanwhile stays (issue 26)."""
    deal = services.record_create(module=modules["Deals"], owner=owner,
                                  values={"Deal_Name": "Website", "Stage": "Qualification"})
    stale = Record.objects.get(pk=deal.pk)
    services.record_update(record=Record.objects.get(pk=deal.pk), values={"Amount": "4200"}, system=True)
    services.record_update(record=stale, values={"Stage": "Closed Won"})
    deal.refresh_from_db()
    assert deal.values["Stage"] == "Closed Won" and float(deal.values["Amount"]) == 4200
    with pytest.raises(Record.DoesNotExist):  # deleted meanwhile: nothing is recreated
        Record.objects.filter(pk=deal.pk).delete()
        services.record_update(record=stale, values={"Stage": "Closed Lost"})
    assert not Record.objects.filter(pk=deal.pk).exists()
