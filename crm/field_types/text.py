"""Text types: plain and multi-line text, e-mail, phone and URL (a length limit, and a validator for some)."""
import json
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from crm.field_types.base import FieldKind
from crm.models import Field, FieldType, Organization

TEXT_MAX_LENGTH = 255
TEXTAREA_MAX_LENGTH = 32_000
_SURROGATE = re.compile("[\ud800-\udfff]")


class TextKind(FieldKind):
    """Text, with a length limit and, for e-mail and URL, Django's validator."""

    def __init__(self, code: FieldType, *, max_length: int = TEXT_MAX_LENGTH, validator: Any = None,
                 json_format: str | None = None, joins_matches: bool = False,
                 widget: forms.Widget | None = None) -> None:
        self.code, self.max_length, self.validator, self.joins_matches = code, max_length, validator, joins_matches
        self.json_format = json_format  # the JSON Schema format its validator checks, if any
        self.widget = widget or forms.TextInput(attrs={"class": "vTextField"})

    def clean(self, field: Field, raw: Any, organization: Organization) -> str:
        if not isinstance(raw, str):
            raise ValidationError("expected text.")
        if len(raw) > self.max_length:
            raise ValidationError(f"at most {self.max_length} characters (this has {len(raw)}).")
        if "\x00" in raw:
            raise ValidationError("must not contain the NUL character (\\u0000).")
        if _SURROGATE.search(raw):
            raise ValidationError("must be valid Unicode text (it holds a lone surrogate such as \\ud800).")
        if self.validator is not None:
            self.validator(raw)
        return raw

    def captured(self, matches: list[Any]) -> Any:
        """Several matches joined (plain and multi-line text), JSON's scalars spelled as JSON spells them
        (true, not Python's True); an e-mail, phone or URL field takes the first."""
        if not self.joins_matches:
            return matches[0]
        return ", ".join(json.dumps(m) if isinstance(m, bool) or m is None else str(m) for m in matches)

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        return forms.CharField(required=field.is_required, strip=False, widget=self.widget)

    def value_schema(self, field: Field) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if self.json_format:
            schema["format"] = self.json_format
        return schema
