"""Admin inline formsets that can see their siblings, for rules that span several inlines."""
from typing import TYPE_CHECKING

from django.contrib.admin import ModelAdmin
from django.forms.models import BaseInlineFormSet


class SiblingAwareFormSet(BaseInlineFormSet):
    """Registers itself in a per-request dict, so one formset's clean() can read the others' rows."""

    def __init__(self, *args, siblings: dict | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.siblings = siblings if siblings is not None else {}
        self.siblings[self.model] = self

    def kept_forms(self) -> list:
        return [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]

    def kept_rows(self) -> list[dict]:
        return [f.cleaned_data for f in self.kept_forms()]


if TYPE_CHECKING:  # a mixin for ModelAdmin: to the type checker it is one
    _ModelAdmin = ModelAdmin
else:
    _ModelAdmin = object


class SiblingFormSetsMixin(_ModelAdmin):
    """For a ModelAdmin: hands every SiblingAwareFormSet of one request the same registry."""

    def get_formset_kwargs(self, request, obj, inline, prefix) -> dict:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if issubclass(inline.formset, SiblingAwareFormSet):
            kwargs["siblings"] = request.__dict__.setdefault("_sibling_formsets", {})
        return kwargs


def formset_rows(formsets: list) -> dict:
    """The kept rows of each inline by model, in their position order, for a service that saves an object
    with its inlines (the formsets themselves are then not saved: nothing is recorded as changed by them)."""
    rows = {}
    for formset in formsets:
        if isinstance(formset, SiblingAwareFormSet):  # read-only inlines (a rule's firings) have no rows
            rows[formset.model] = sorted(formset.kept_rows(), key=lambda row: row.get("position") or 0)
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
    return rows
