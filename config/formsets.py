"""Admin inline formsets that can see their siblings, for rules that span several inlines."""
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


class SiblingFormSetsMixin:
    """For a ModelAdmin: hands every SiblingAwareFormSet of one request the same registry."""

    def get_formset_kwargs(self, request, obj, inline, prefix) -> dict:
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if issubclass(inline.formset, SiblingAwareFormSet):
            kwargs["siblings"] = request.__dict__.setdefault("_sibling_formsets", {})
        return kwargs
