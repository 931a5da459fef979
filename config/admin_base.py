"""What every model admin and inline of the project shares, and the admin site that serves them.

- **Organizations**: a staff login works in the organization of its CRM user (``CrmUser.user``) and sees and
  changes only that organization's objects: lists, change pages, inlines, foreign-key choices,
  autocompletes, actions and custom views all start from ``scoped()``. Another organization's object answers
  404, like a missing one. Superusers see every organization (and filter by it); a staff login without a CRM
  user sees none. Shared data (editions, retry policies) is readable by all and changed by superusers only.
- **No browser truncation**: no ``maxlength`` on inputs, so the server says what the limit is.
- **Pickers name the organization** when the login sees several.
"""
from typing import TYPE_CHECKING, Any

from django.contrib.admin import AdminSite, AllValuesFieldListFilter, ModelAdmin, RelatedFieldListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from config.version import __version__

# Where each model's organization is, from the model (label_lower -> lookup path). A model not listed is
# shared by every organization.
ORGANIZATION_PATHS: dict[str, str] = {
    "crm.organization": "pk", "crm.crmuser": "organization", "crm.module": "organization",
    "crm.field": "module__organization", "crm.record": "module__organization", "crm.apikey": "organization",
    "dispatcher.webhook": "organization", "dispatcher.entityparameter": "webhook__organization",
    "dispatcher.customparameter": "webhook__organization", "dispatcher.capture": "webhook__organization",
    "dispatcher.webhookheader": "webhook__organization",
    "dispatcher.delivery": "organization", "dispatcher.attempt": "delivery__organization",
    "dispatcher.dailyusage": "organization", "dispatcher.usagecounter": "organization",
    "dispatcher.channel": "organization", "dispatcher.endpoint": "organization",
    "dispatcher.failuredigest": "organization",
    "workflows.workflowrule": "organization", "workflows.condition": "rule__organization",
    "workflows.action": "rule__organization", "workflows.actionrun": "rule__organization",
}
ALL = None  # what organization_ids() answers for a superuser


def organization_ids(user: Any) -> set[int] | None:
    """The organizations a login may see: None for all (superusers), else its CRM user's (or none).
    Kept on the user object for the request."""
    if user.is_superuser:
        return ALL
    if not hasattr(user, "_organization_ids"):
        from crm.models import CrmUser  # config is imported before the apps' models are ready

        found = CrmUser.objects.filter(user_id=user.pk, is_active=True).values_list("organization_id", flat=True)
        user._organization_ids = set(found)
    return user._organization_ids


def scoped(queryset: QuerySet, user: Any) -> QuerySet:
    """The part of a queryset a login may see."""
    ids = organization_ids(user)
    path = ORGANIZATION_PATHS.get(queryset.model._meta.label_lower)
    if ids is ALL or path is None:
        return queryset
    return queryset.filter(**{f"{path}__in": ids})


def is_shared(model: Any) -> bool:
    return model._meta.label_lower not in ORGANIZATION_PATHS


def organization_of(obj: Any) -> Any:
    """The organization an object belongs to (itself, its module's, its record's), or None."""
    for path in ("organization", "module.organization", "record.module.organization"):
        target = obj
        for name in path.split("."):
            target = getattr(target, name, None)
        if target is not None:
            return target
    return None


def sees_several_organizations(user: Any) -> bool:
    from crm.models import Organization

    ids = organization_ids(user)
    return (Organization.objects.count() if ids is ALL else len(ids)) > 1


def labelled(obj: Any, several: bool) -> str:
    """An object as a picker shows it: with its organization when there is more than one (two "Deals")."""
    organization = organization_of(obj) if several else None
    return f"{obj} ({organization})" if organization is not None and organization is not obj else str(obj)


if TYPE_CHECKING:  # a mixin for ModelAdmin: to the type checker it is one, so super() and self.model are checked
    _ModelAdmin = ModelAdmin
else:
    _ModelAdmin = object


class CrmAdminMixin(_ModelAdmin):
    """For every ModelAdmin and inline of the project (see the module's docstring)."""

    def get_queryset(self, request):
        return scoped(super().get_queryset(request), request.user)

    def get_list_filter(self, request):
        """Filters on a related object list only the login's own (by default a filter on "webhook" would list
        every organization's webhooks, and one on a related field's values every organization's values)."""
        return [_scoped_filter(self.model, item) for item in super().get_list_filter(request)]

    def get_object(self, request, object_id, from_field=None):
        """Another organization's object is not found, exactly like a missing one."""
        found = super().get_object(request, object_id, from_field)
        if found is None:
            raise Http404("No such object.")
        return found

    def has_add_permission(self, request, *args) -> bool:
        return super().has_add_permission(request, *args) and self._may_write(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and self._may_write(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and self._may_write(request)

    def _may_write(self, request) -> bool:
        """Shared data changes every organization's behaviour: only superusers change it."""
        return request.user.is_superuser or not is_shared(self.model)

    def get_changeform_initial_data(self, request) -> dict[str, Any]:
        initial: dict[str, Any] = dict(super().get_changeform_initial_data(request))
        ids = organization_ids(request.user)
        if ids and len(ids) == 1 and "organization" in {f.name for f in self.model._meta.fields}:
            initial.setdefault("organization", next(iter(ids)))
        return initial

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if formfield is not None:
            formfield.widget.attrs.pop("maxlength", None)
        return formfield

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is None:
            return None
        formfield.queryset = scoped(formfield.queryset, request.user)
        if sees_several_organizations(request.user):
            names = {field.name for field in formfield.queryset.model._meta.get_fields()}
            path = "module__organization" if "module" in names else "organization" if "organization" in names else None
            if path is not None:  # one query for the choices and their organizations
                formfield.queryset = formfield.queryset.select_related(path)
            formfield.label_from_instance = lambda obj: labelled(obj, True)
        return formfield


class ScopedAllValuesFieldListFilter(AllValuesFieldListFilter):
    """Values of a related field (``module__api_name``) from the login's own rows; Django's own takes them
    from the whole related table, every organization's."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (model_admin.get_queryset(request).distinct().order_by(field_path)
                               .values_list(field_path, flat=True))


class ScopedRelatedFieldListFilter(RelatedFieldListFilter):
    """Choices from the related table as the login may see it (its own webhooks, channels, organization):
    small tables, so a log of millions is never scanned for them (RelatedOnlyFieldListFilter would)."""

    def field_choices(self, field, request, model_admin):
        related = scoped(field.related_model._default_manager.all(), request.user)
        return [(obj.pk, str(obj)) for obj in related]


def _scoped_filter(model: Any, item: Any) -> Any:
    if not isinstance(item, str):
        return item
    try:
        field = get_fields_from_path(model, item)[-1]
    except Exception:  # noqa: BLE001 - a custom filter's parameter name, not a field path
        return item
    if getattr(field, "is_relation", False) and getattr(field, "many_to_one", False):
        return item, ScopedRelatedFieldListFilter
    return (item, ScopedAllValuesFieldListFilter) if "__" in item else item


class OrganizationAutocompleteView(AutocompleteJsonView):
    """Autocomplete results from the target admin's (scoped) queryset, labelled as the select boxes are."""

    def get_context_data(self, *args, **kwargs):
        self.several = sees_several_organizations(self.request.user)
        return super().get_context_data(*args, **kwargs)

    def serialize_result(self, obj: Any, to_field_name: str) -> dict[str, str]:
        return {"id": str(getattr(obj, to_field_name)), "text": labelled(obj, self.several)}


class CrmAdminSite(AdminSite):
    site_header = site_title = "CRM webhooks"
    index_title = "Configuration and delivery logs"

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        """Every admin page's footer names the version (templates/admin/base_site.html), so a report of what an
        admin saw says which release it was."""
        return {**super().each_context(request), "product_version": __version__}

    def autocomplete_view(self, request):
        return OrganizationAutocompleteView.as_view(admin_site=self)(request)
