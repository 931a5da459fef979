"""Record events: crm announces them, other apps (workflows) listen. crm imports none of its listeners."""
from dataclasses import dataclass
from typing import Any

from django.dispatch import Signal

from crm.models import Record

CREATE, EDIT, DELETE = "create", "edit", "delete"

# Sent inside the transaction of the change, before a deleted record is gone; receivers get event=RecordEvent.
record_changed = Signal()


@dataclass(frozen=True)
class RecordEvent:
    record: Record
    operation: str  # CREATE, EDIT or DELETE
    old_values: dict[str, Any]  # empty for CREATE
    new_values: dict[str, Any]  # empty for DELETE
    system: bool = False  # changes the system makes itself (response capture) never fire workflow rules

    @property
    def changed_fields(self) -> set[str]:
        keys = set(self.old_values) | set(self.new_values)
        return {key for key in keys if self.old_values.get(key) != self.new_values.get(key)}


def announce(event: RecordEvent) -> None:
    record_changed.send(sender=Record, event=event)
