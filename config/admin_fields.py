"""Form fields of every model admin and inline of the project, and the admin site that serves them."""
from typing import Any

from django.contrib.admin import AdminSite
from django.contrib.admin.views.autocomplete import AutocompleteJsonView


def organization_of(obj: Any) -> Any:
    """The organization an object belongs to (itself, its module's, its record's), or None."""
    for path in ("organization", "module.organization", "record.module.organization"):
        target = obj
        for name in path.split("."):
            target = getattr(target, name, None)
        if target is not None:
            return target
    return None


def several_organizations() -> bool:
    from crm.models import Organization  # config is loaded before the apps' models

    return Organization.objects.count() > 1


def labelled(obj: Any, several: bool) -> str:
    """An object as a picker shows it: with its organization when there is more than one (two "Deals")."""
    organization = organization_of(obj) if several else None
    return f"{obj} ({organization})" if organization is not None and organization is not obj else str(obj)


class AdminFormFieldsMixin:
    """For every ModelAdmin and inline of the project.

    - No ``maxlength`` on inputs: a browser cuts pasted text to it without a word (a 210-character URL becomes
      another URL). The form's own max-length check then says what the limit is and nothing is saved.
    - Foreign-key choices name their organization when there are several, so two organizations' "Deals"
      modules or "Deals.Stage" fields are not two identical lines.
    """

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None:
            formfield.widget.attrs.pop("maxlength", None)
        return formfield

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and several_organizations():
            names = {field.name for field in formfield.queryset.model._meta.get_fields()}
            path = "module__organization" if "module" in names else "organization" if "organization" in names else None
            if path is not None:  # one query for the choices and their organizations
                formfield.queryset = formfield.queryset.select_related(path)
            formfield.label_from_instance = lambda obj: labelled(obj, True)
        return formfield


class OrganizationAutocompleteView(AutocompleteJsonView):
    """Autocomplete results labelled as the select boxes are (see AdminFormFieldsMixin)."""

    def get_context_data(self, *args, **kwargs):
        self.several = several_organizations()
        return super().get_context_data(*args, **kwargs)

    def serialize_result(self, obj: Any, to_field_name: str) -> dict[str, str]:
        return {"id": str(getattr(obj, to_field_name)), "text": labelled(obj, self.several)}


class CrmAdminSite(AdminSite):
    site_header = site_title = "CRM webhooks"
    index_title = "Configuration and delivery logs"

    def autocomplete_view(self, request):
        return OrganizationAutocompleteView.as_view(admin_site=self)(request)
