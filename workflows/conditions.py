"""Evaluating one condition on a record's stored values (and, for edits, its previous values).

The operators are the workflow's; what a value of a field type is under them (how it compares, what
equals it, which day it falls on) is the field type's (crm/field_types/, ``kind_of(field)``).
"""
import datetime
import operator as op
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

from crm.models import Field
from crm.field_types import FieldKind, kind_of
from crm.field_types import aligned as values_aligned
from workflows.models import Operator

ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    Operator.LT: op.lt, Operator.BEFORE: op.lt, Operator.LTE: op.le,
    Operator.GT: op.gt, Operator.AFTER: op.gt, Operator.GTE: op.ge,
}
NEEDS_ORDER = {Operator.LT, Operator.LTE, Operator.GT, Operator.GTE, Operator.BETWEEN}
NEEDS_TIME = {Operator.BEFORE, Operator.AFTER}
WITHOUT_VALUE = {Operator.EMPTY, Operator.NOT_EMPTY, Operator.CHANGED, Operator.TODAY}


def _empty(value: Any) -> bool:
    return value in (None, "", [])


@dataclass(frozen=True)
class CompiledCondition:
    number: int
    field: Field
    lookup: Field | None  # lookup field of the rule's module, when the condition tests a looked-up record
    operator: str
    value: str
    value_to: str
    kind: FieldKind = dataclass_field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", kind_of(self.field))  # resolved once: conditions run for every record event

    def holds(self, values: dict[str, Any], old_values: dict[str, Any] | None, time_zone: str,
              now: datetime.datetime) -> bool:
        current = values.get(self.field.api_name)
        if self.operator in (Operator.CHANGED, Operator.CHANGED_TO):
            changed = old_values is not None and old_values.get(self.field.api_name) != current
            return changed and (self.operator == Operator.CHANGED or self.kind.equal(current, self.value,
                                                                                            time_zone))
        if self.operator in (Operator.EMPTY, Operator.NOT_EMPTY):
            return _empty(current) == (self.operator == Operator.EMPTY)
        if current in (None, ""):
            return self.operator == Operator.ISNT and self.value != ""
        return self._holds_for(current, time_zone, now)

    def _holds_for(self, current: Any, time_zone: str, now: datetime.datetime) -> bool:
        """The operators that test a value that is there."""
        kind = self.kind
        if self.operator in (Operator.IS, Operator.ISNT):
            return kind.equal(current, self.value, time_zone) == (self.operator == Operator.IS)
        if self.operator == Operator.CONTAINS:
            return self.value.casefold() in str(current).casefold()
        if self.operator == Operator.STARTS_WITH:
            return str(current).casefold().startswith(self.value.casefold())
        if self.operator == Operator.TODAY:
            day = kind.local_date(current, time_zone)
            return day is not None and day == now.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
        left, right = values_aligned(kind.comparable(current, time_zone), kind.comparable(self.value, time_zone),
                                     time_zone)
        if left is None or right is None:
            return False
        if self.operator == Operator.BETWEEN:
            left, upper = values_aligned(left, kind.comparable(self.value_to, time_zone), time_zone)
            return upper is not None and right <= left <= upper
        compare = ORDERING.get(self.operator)
        return compare is not None and compare(left, right)


def condition_value_error(field: Field, operator: str, value: str, value_to: str) -> str | None:
    """Why a condition's value cannot be compared with the field, in words; None when it can."""
    if operator in WITHOUT_VALUE:
        return None
    kind = kind_of(field)
    if operator in NEEDS_ORDER and not kind.ordered:
        return f"“{field.label}” is not a number or date, so it cannot be compared with <, > or between."
    if operator in NEEDS_TIME and not kind.temporal:
        return f"“{field.label}” is not a date, so it cannot be before or after."
    for text in [value] + ([value_to] if operator == Operator.BETWEEN else []):
        if problem := kind.condition_value_problem(field, text):
            return problem
    return None
