"""Inputs of the admin's record form, as the field types ask for them (crm/field_types/ ``form_field``)."""
from typing import Any

from django import forms
from django.conf import settings
from django.urls import reverse

from crm.models import Field, Record

LOOKUP_URL_NAME = "admin:crm_record_lookup"  # RecordAdmin.lookup_view: the records a lookup input may name


class DateInput(forms.TextInput):
    """The browser's date picker; its value is YYYY-MM-DD, what the API takes."""

    input_type = "date"


class DateTimeInput(forms.TextInput):
    """The browser's local date/time picker (to the second); a value without an offset is in the
    organization's time zone, as in the API."""

    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"step": "1", **(attrs or {})})


class TelInput(forms.TextInput):
    input_type = "tel"


def record_label(record: Record) -> str:
    """A record as a lookup input names it: its name and id, since two accounts may share a name."""
    name = record.display_name
    return name if name == f"#{record.pk}" else f"{name} (#{record.pk})"


class RecordLookupInput(forms.Select):
    """A search box over the records of the looked-up module (the admin's select2 autocomplete, answered by
    RecordAdmin.lookup_view, which lists only the login's organization's records): a select holding every
    account would not load. Only the chosen record is rendered as an option."""

    def __init__(self, field: Field, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        self.field_id, self.lookup_module_id = field.pk, field.lookup_module_id or 0

    def build_attrs(self, base_attrs: dict[str, Any], extra_attrs: dict[str, Any] | None = None) -> dict[str, Any]:
        attrs = super().build_attrs(base_attrs, extra_attrs)
        attrs.update({
            "class": (attrs.get("class", "") + " admin-autocomplete").strip(),
            "data-ajax--url": f"{reverse(LOOKUP_URL_NAME)}?field={self.field_id}",
            "data-ajax--cache": "true", "data-ajax--delay": 250, "data-ajax--type": "GET",
            "data-theme": "admin-autocomplete", "data-allow-clear": "true", "data-placeholder": "",
        })
        return attrs

    def optgroups(self, name: str, value: list[str], attrs: dict[str, Any] | None = None) -> list:
        ids = [int(v) for v in value if v.isascii() and v.isdecimal() and len(v) <= 18]
        found = {str(r.pk): record_label(r) for r in Record.objects.select_related("module")
                 .filter(pk__in=ids, module_id=self.lookup_module_id)}
        # What was typed stays chosen after an error, even when it names no record (the error says so).
        self.choices = [("", "")] + [(v, found.get(v, f"#{v}")) for v in value if v]
        return super().optgroups(name, value, attrs)

    @property
    def media(self) -> forms.Media:
        """Django's own autocomplete scripts (what autocomplete_fields load), so the box looks and works alike."""
        extra = "" if settings.DEBUG else ".min"
        return forms.Media(
            js=(f"admin/js/vendor/jquery/jquery{extra}.js", f"admin/js/vendor/select2/select2.full{extra}.js",
                "admin/js/jquery.init.js", "admin/js/autocomplete.js"),
            css={"screen": (f"admin/css/vendor/select2/select2{extra}.css", "admin/css/autocomplete.css")},
        )
