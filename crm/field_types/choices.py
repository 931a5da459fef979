"""Types whose value is one of a fixed set: the checkbox and the pick list."""
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from crm.field_types.base import FieldKind
from crm.models import Field, FieldType, Organization

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object", list: "array"}


class BooleanKind(FieldKind):
    code = FieldType.BOOLEAN

    def clean(self, field: Field, raw: Any, organization: Organization) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ValidationError("expected true or false.")

    def equal(self, stored: Any, text: str, time_zone: str) -> bool:
        return str(stored).lower() == text.strip().lower()

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """A checkbox; unticked on a new record stores nothing, as an API client that leaves it out."""
        return forms.BooleanField(required=False)

    def form_initial(self, raw: Any, organization: Organization) -> Any:
        return raw

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "boolean"}


class PicklistKind(FieldKind):
    code = FieldType.PICKLIST

    def clean(self, field: Field, raw: Any, organization: Organization) -> Any:
        if raw not in field.picklist_values:
            raise ValidationError(f"“{raw}” is not one of {', '.join(map(str, field.picklist_values))}.")
        return raw

    def condition_value_problem(self, field: Field, text: str) -> str | None:
        if text not in field.picklist_values:
            return f"“{text}” is not one of the values of “{field.label}”: {', '.join(field.picklist_values)}."
        return None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """The pick list's values; a stored value the list no longer has stays a choice, so that saving the
        record for another change does not drop it."""
        values = {str(value): value for value in field.picklist_values}
        choices = [("", "---------")] + [(text, text) for text in values]
        if current is not None and str(current) not in values:
            values[str(current)] = current
            choices.append((str(current), f"{current} (no longer in the pick list)"))
        return forms.TypedChoiceField(required=field.is_required, choices=choices,
                                      coerce=lambda text: values.get(text, text))

    def value_schema(self, field: Field) -> dict[str, Any]:
        """The list's values as examples, not an enum: a value removed from the list stays on the records
        that have it, and their notifications carry it."""
        types = sorted({_JSON_TYPES.get(type(value), "string") for value in field.picklist_values}) or ["string"]
        return {"type": types[0] if len(types) == 1 else types, "examples": list(field.picklist_values),
                "description": "One of the pick list's values (or one removed from it since it was set)."}
