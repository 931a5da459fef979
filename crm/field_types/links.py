"""Types whose value is the id of another row: a lookup (a record of the looked-up module) and a user (a CRM
user of the organization); how such an id is read from input (id_of)."""
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from crm import widgets
from crm.field_types.base import FieldKind, RenderContext
from crm.models import CrmUser, Field, FieldType, Organization, Record

ID_MAX_DIGITS = 18  # a database id (bigint) has at most 19 digits; 18 always fits
# A record or user id as lookups and user fields store it (id_of).
ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": 10 ** ID_MAX_DIGITS - 1}


class LookupKind(FieldKind):
    """The id of a record of the field's lookup module; a merge field gives the record's name."""

    code = FieldType.LOOKUP
    links_records = True

    def clean(self, field: Field, raw: Any, organization: Organization) -> int:
        target = field.lookup_module
        if target is None:
            raise ValidationError("this lookup field has no module to look up.")
        if (pk := id_of(raw)) is None:
            raise ValidationError(f"expected the id of a {target.singular_label} record.")
        if not Record.objects.filter(pk=pk, module=target).exists():
            raise ValidationError(f"no {target.singular_label} record with id {pk}.")
        return pk

    def render(self, raw: Any, context: RenderContext) -> str | None:
        target = context.record_of(raw)
        return target.display_name if target else None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """A search box over the looked-up module's records, by name or id."""
        return forms.CharField(required=field.is_required, widget=widgets.RecordLookupInput(field))

    def value_schema(self, field: Field) -> dict[str, Any]:
        target = field.lookup_module
        return {**ID_SCHEMA, "description": f"The id of a record of {target.api_name if target else 'its module'}."}


class UserKind(FieldKind):
    """The id of a CRM user of the organization; a merge field gives the user's full name."""

    code = FieldType.USER

    def clean(self, field: Field, raw: Any, organization: Organization) -> int:
        if (pk := id_of(raw)) is None:
            raise ValidationError("expected the id of a CRM user.")
        if not CrmUser.objects.filter(pk=pk, organization=organization).exists():
            raise ValidationError(f"no user with id {pk} in this organization.")
        return pk

    def render(self, raw: Any, context: RenderContext) -> str | None:
        user = context.user_of(raw)
        return user.full_name if user else None

    def form_field(self, field: Field, organization: Organization, current: Any = None) -> forms.Field:
        """The organization's active users, and the stored one even when no longer active."""
        users = CrmUser.objects.filter(Q(is_active=True) | Q(pk=id_of(current) or 0), organization=organization)
        return forms.TypedChoiceField(required=field.is_required, coerce=int, choices=[("", "---------")] + [
            (str(user.pk), user.full_name or user.email) for user in users])

    def value_schema(self, field: Field) -> dict[str, Any]:
        return {**ID_SCHEMA, "description": "The id of a CRM user of the organization."}


def id_of(raw: Any) -> int | None:
    """A record or user id given as a number or as ASCII digits ("²" is a digit to str.isdigit, not to int)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 < raw < 10 ** ID_MAX_DIGITS else None
    if isinstance(raw, str) and raw.isascii() and raw.isdecimal() and len(raw) <= ID_MAX_DIGITS:
        return int(raw) or None
    return None
