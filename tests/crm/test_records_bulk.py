"""Bulk record creation as a service (the records API's bulk create calls it): all or none, every item checked."""
import pytest

from crm import events, services
from crm.models import Record


@pytest.fixture
def announced():
    """The record events crm announced (workflow rules and channels listen to the same signal)."""
    heard: list[events.RecordEvent] = []

    def listen(sender, event, **kwargs) -> None:
        heard.append(event)

    events.record_changed.connect(listen)
    yield heard
    events.record_changed.disconnect(listen)


def test_one_invalid_item_and_nothing_is_kept(owner, modules, announced):
    with pytest.raises(services.RecordsInvalid) as invalid:
        services.records_create(module=modules["Deals"], owner=owner, items=[
            {"Deal_Name": "a"}, {"Deal_Name": "b", "Amount": "x"}, ["not", "an", "object"], {"Deal_Name": "d"}])
    assert str(invalid.value) == "2 of 4 records are not valid; none was created."
    assert invalid.value.errors == {"1": {"Amount": ["Amount: expected a number."]},
                                    "2": {"__all__": ["Send a JSON object of field values keyed by API name."]}}
    assert not Record.objects.exists()
    assert [event.record.values["Deal_Name"] for event in announced] == ["a", "d"]  # undone with the records


def test_all_valid_items_are_created_in_order_and_announced(owner, modules, announced):
    made = services.records_create(module=modules["Deals"], owner=owner,
                                   items=[{"Deal_Name": "a"}, {"Deal_Name": "b", "Amount": "5"}])
    assert [record.values for record in made] == [{"Deal_Name": "a"}, {"Deal_Name": "b", "Amount": "5.00"}]
    assert list(Record.objects.order_by("pk")) == made
    assert [(event.operation, event.record) for event in announced] == [(events.CREATE, r) for r in made]
