"""The admin's record form: one labelled input per field of the module, as the field's type asks for it
(crm/field_types/), checked by the service the API uses (record_clean_values), each error beside its
field, and what was typed kept."""
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q

from crm import selectors, services
from crm.field_types import kind_of
from crm.models import CrmUser, Field, Module, Record

VALUE_PREFIX = "values__"  # form names of value inputs: values__Deal_Name, so no API name meets "owner"


def value_input_name(api_name: str) -> str:
    return VALUE_PREFIX + api_name


class RecordForm(forms.ModelForm):
    """The base form; record_form_for() makes the one of a module. Only the inputs the user changed are
    given to the service, so a record saved for one change keeps every other value exactly as stored (and
    a field another request set meanwhile is not put back)."""

    module: Module
    module_fields: list[Field] = []
    record_values: dict[str, Any]

    class Meta:
        model = Record
        fields = ["owner"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        organization = self.module.organization
        stored = self.instance.values if self.instance.pk else {}
        for field in self.module_fields:
            name, current = value_input_name(field.api_name), stored.get(field.api_name)
            formfield = kind_of(field).form_field(field, organization, current)
            formfield.label = field.label
            formfield.error_messages["required"] = f"{field.label} is required."  # the service's words
            formfield.help_text = " ".join(filter(None, [str(formfield.help_text), f"API name: {field.api_name}."]))
            # Changed means changed from what the page showed, not from the record as it is when the form comes
            # back: a value set meanwhile (by the API, a capture) is not put back.
            formfield.show_hidden_initial = self.instance.pk is not None
            self.fields[name] = formfield
            self.initial[name] = None if current is None else kind_of(field).form_initial(current, organization)
        owner = self.fields.get("owner")
        if isinstance(owner, forms.ModelChoiceField):  # the organization's active users, and the owner as is
            owner.queryset = CrmUser.objects.filter(Q(is_active=True) | Q(pk=self.instance.owner_id or 0),
                                                    organization=organization)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        given = {}
        for field in self.module_fields:
            name = value_input_name(field.api_name)
            if name in self.changed_data and name not in self.errors:
                value = cleaned.get(name)
                given[field.api_name] = None if value in ("", None) else value
        try:
            values = services.record_clean_values(module=self.module, values=given,
                                                  partial=self.instance.pk is not None)
        except ValidationError as error:
            for api_name, messages in error.message_dict.items():
                name = value_input_name(api_name)
                if name not in self.fields:
                    self.add_error(None, messages)
                elif name not in self.errors:  # "… is required." once, not from the form and the service
                    self.add_error(name, messages)
            return cleaned
        stored = self.instance.values if self.instance.pk else {}
        self.record_values = {key: value for key, value in values.items() if stored.get(key) != value}
        return cleaned


def record_form_for(module: Module) -> type[RecordForm]:
    """The record form of a module: its inputs are declared, so the admin's form factory accepts them."""
    fields = selectors.module_record_fields(module=module)
    declared: dict[str, Any] = {value_input_name(f.api_name): forms.CharField(required=False) for f in fields}
    return type(f"{module.api_name}RecordForm", (RecordForm,), {"module": module, "module_fields": fields,
                                                                "__module__": __name__, **declared})
