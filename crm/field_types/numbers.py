"""Numeric types: whole numbers, decimals and currency amounts (ordered; compared as numbers)."""
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from crm.field_types.base import FieldKind, RenderContext
from crm.models import Field, FieldType, Organization

NUMBER_MAX_DIGITS = 18  # digits before the decimal point of a number or currency value (Zoho allows 16)
# str(Decimal) as DecimalKind stores it: plain digits, or with an exponent when the number has one (1E+5, 0E-10).
DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(E[+-][0-9]+)?$"


class _Numeric(FieldKind):
    ordered = True

    def comparable(self, value: Any, time_zone: str) -> Decimal | None:
        try:
            return Decimal(str(value))
        except (InvalidOperation, ValueError, TypeError):
            return None

    def equal(self, stored: Any, text: str, time_zone: str) -> bool:
        left = self.comparable(stored, time_zone)
        return left is not None and left == self.comparable(text, time_zone)

    def condition_value_problem(self, field: Field, text: str) -> str | None:
        if self.comparable(text, "UTC") is None:
            return f"“{text}” is not a number, as “{field.label}” needs."
        return None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """Text with a numeric keyboard, not <input type=number>: a browser sends such an input empty when it
        does not read as a number, and what was typed would be lost without a word."""
        mode = "numeric" if self.code == FieldType.NUMBER else "decimal"
        return forms.CharField(required=field.is_required, strip=False,
                               widget=forms.TextInput(attrs={"inputmode": mode, "class": "vBigIntegerField"}))


class NumberKind(_Numeric):
    code = FieldType.NUMBER

    def clean(self, field: Field, raw: Any, organization: Organization) -> int:
        if isinstance(raw, bool) or not isinstance(raw, (int, str)):
            raise ValidationError("expected a whole number.")
        try:
            number = int(raw)
        except ValueError:
            raise ValidationError("expected a whole number.") from None
        if abs(number) >= 10 ** NUMBER_MAX_DIGITS:
            raise ValidationError(f"expected a number of at most {NUMBER_MAX_DIGITS} digits.")
        return number

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "integer", "exclusiveMinimum": -10 ** NUMBER_MAX_DIGITS,
                "exclusiveMaximum": 10 ** NUMBER_MAX_DIGITS}


class DecimalKind(_Numeric):
    """Stored as text, so that 1234.50 keeps its exact digits in JSON; rendered as a number."""

    code = FieldType.DECIMAL

    def clean(self, field: Field, raw: Any, organization: Organization) -> str:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str, Decimal)):
            raise ValidationError("expected a number.")
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            raise ValidationError("expected a number.") from None
        if not number.is_finite():
            raise ValidationError("expected a finite number.")
        if abs(number.adjusted()) > NUMBER_MAX_DIGITS:
            raise ValidationError(f"expected a number of at most {NUMBER_MAX_DIGITS} digits.")
        return str(self.quantized(number))

    def quantized(self, number: Decimal) -> Decimal:
        return number

    def render(self, raw: Any, context: RenderContext) -> Decimal:
        return Decimal(raw)

    def value_schema(self, field: Field) -> dict[str, Any]:
        """Text, not a JSON number: a receiver's float would lose the exact digits."""
        return {"type": "string", "pattern": DECIMAL_PATTERN,
                "description": "A decimal number as text, with its exact digits (e.g. 1234.5 or 1E+20)."}


class CurrencyKind(DecimalKind):
    code = FieldType.CURRENCY

    def quantized(self, number: Decimal) -> Decimal:
        return number.quantize(Decimal("0.01"))

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {"type": "string", "pattern": r"^-?[0-9]+\.[0-9]{2}$",
                "description": "An amount as text with two decimals (e.g. 1234.50), in the organization's currency."}
