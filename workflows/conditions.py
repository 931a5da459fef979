"""Evaluating one condition on a record's stored values (and, for edits, its previous values)."""
import datetime
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from crm.models import Field, FieldType
from workflows.models import Operator

NUMERIC = {FieldType.NUMBER, FieldType.DECIMAL, FieldType.CURRENCY}
TEMPORAL = {FieldType.DATE, FieldType.DATETIME}


@dataclass(frozen=True)
class CompiledCondition:
    number: int
    field: Field
    lookup: Field | None  # lookup field of the rule's module, when the condition tests a looked-up record
    operator: str
    value: str
    value_to: str

    def holds(self, values: dict[str, Any], old_values: dict[str, Any] | None, time_zone: str,
              now: datetime.datetime) -> bool:
        current = values.get(self.field.api_name)
        if self.operator == Operator.CHANGED:
            return old_values is not None and old_values.get(self.field.api_name) != current
        if self.operator == Operator.CHANGED_TO:
            return (old_values is not None and old_values.get(self.field.api_name) != current
                    and _equal(self.field, current, self.value, time_zone))
        if self.operator == Operator.EMPTY:
            return current in (None, "", [])
        if self.operator == Operator.NOT_EMPTY:
            return current not in (None, "", [])
        if current in (None, ""):
            return self.operator == Operator.ISNT and self.value != ""
        if self.operator == Operator.IS:
            return _equal(self.field, current, self.value, time_zone)
        if self.operator == Operator.ISNT:
            return not _equal(self.field, current, self.value, time_zone)
        if self.operator == Operator.CONTAINS:
            return self.value.casefold() in str(current).casefold()
        if self.operator == Operator.STARTS_WITH:
            return str(current).casefold().startswith(self.value.casefold())
        if self.operator == Operator.TODAY:
            return _as_date(self.field, current, time_zone) == now.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
        left, right = _aligned(_comparable(self.field, current, time_zone),
                               _comparable(self.field, self.value, time_zone), time_zone)
        if left is None or right is None:
            return False
        if self.operator in (Operator.LT, Operator.BEFORE):
            return left < right
        if self.operator == Operator.LTE:
            return left <= right
        if self.operator in (Operator.GT, Operator.AFTER):
            return left > right
        if self.operator == Operator.GTE:
            return left >= right
        if self.operator == Operator.BETWEEN:
            left, upper = _aligned(left, _comparable(self.field, self.value_to, time_zone), time_zone)
            return upper is not None and right <= left <= upper
        return False


def condition_value_error(field: Field, operator: str, value: str, value_to: str) -> str | None:
    """Why a condition's value cannot be compared with the field, in words; None when it can."""
    if operator in (Operator.EMPTY, Operator.NOT_EMPTY, Operator.CHANGED, Operator.TODAY):
        return None
    if operator in (Operator.LT, Operator.LTE, Operator.GT, Operator.GTE, Operator.BETWEEN) and \
            field.field_type not in NUMERIC | TEMPORAL:
        return f"“{field.label}” is not a number or date, so it cannot be compared with <, > or between."
    if operator in (Operator.BEFORE, Operator.AFTER) and field.field_type not in TEMPORAL:
        return f"“{field.label}” is not a date, so it cannot be before or after."
    for text in [value] + ([value_to] if operator == Operator.BETWEEN else []):
        if field.field_type in NUMERIC | TEMPORAL and _comparable(field, text, "UTC") is None:
            kind = "a number" if field.field_type in NUMERIC else "a date (YYYY-MM-DD)"
            return f"“{text}” is not {kind}, as “{field.label}” needs."
        if field.field_type == FieldType.PICKLIST and text not in field.picklist_values:
            return f"“{text}” is not one of the values of “{field.label}”: {', '.join(field.picklist_values)}."
    return None


def _aligned(left: Any, right: Any, time_zone: str) -> tuple[Any, Any]:
    """A date/time compared with a date is compared by its local date."""
    if isinstance(left, datetime.datetime) and type(right) is datetime.date:
        left = left.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
    elif isinstance(right, datetime.datetime) and type(left) is datetime.date:
        right = right.astimezone(zoneinfo.ZoneInfo(time_zone)).date()
    return left, right


def _equal(field: Field, stored: Any, text: str, time_zone: str) -> bool:
    if field.field_type in NUMERIC | TEMPORAL:
        left, right = _aligned(_comparable(field, stored, time_zone), _comparable(field, text, time_zone), time_zone)
        return left is not None and left == right
    if field.field_type == FieldType.BOOLEAN:
        return str(stored).lower() == text.strip().lower()
    return str(stored).casefold() == text.casefold()


def _comparable(field: Field, value: Any, time_zone: str) -> Any:
    try:
        if field.field_type in NUMERIC:
            return Decimal(str(value))
        if field.field_type in TEMPORAL:
            return _as_date(field, value, time_zone) if len(str(value)) <= 10 else _as_datetime(value, time_zone)
    except (InvalidOperation, ValueError, TypeError):
        return None
    return str(value).casefold()


def _as_date(field: Field, value: Any, time_zone: str) -> datetime.date:
    text = str(value)
    if len(text) <= 10:
        return datetime.date.fromisoformat(text)
    return _as_datetime(text, time_zone).astimezone(zoneinfo.ZoneInfo(time_zone)).date()


def _as_datetime(value: Any, time_zone: str) -> datetime.datetime:
    moment = datetime.datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=zoneinfo.ZoneInfo(time_zone))
