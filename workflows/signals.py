"""Signal wiring of the workflows app, in one place: record events fire rules."""
from crm.events import RecordEvent, record_changed
from workflows.engine import record_event_handle


def _on_record_changed(sender, event: RecordEvent, **kwargs) -> None:
    record_event_handle(event)


def connect() -> None:
    record_changed.connect(_on_record_changed, dispatch_uid="workflows.record_changed")
