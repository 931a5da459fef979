"""CRM data in the admin: editions, organizations and their users, modules and fields, records, API keys."""
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.db.models import Q
from django.utils.html import format_html, format_html_join

from config.admin_base import CrmAdminMixin, labelled, scoped, sees_several_organizations
from crm import selectors, services
from crm.field_types import FIELD_KINDS, id_of
from crm.forms import record_form_for, value_input_name
from crm.models import (
    DEFAULT_API_SCOPES, ApiKey, ApiScope, CrmUser, Edition, Field, Module, Organization, Record,
)
from crm.widgets import record_label


@admin.register(Edition)
class EditionAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["name", "code", "webhooks_enabled", "daily_call_limit", "calls_per_licence", "webhooks_per_rule"]
    search_fields = ["name", "code"]


class CrmUserInline(CrmAdminMixin, admin.TabularInline):
    model = CrmUser
    fields = ["first_name", "last_name", "email", "mobile", "role", "is_admin", "is_active"]
    extra = 0


@admin.register(Organization)
class OrganizationAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["name", "edition", "user_licences", "time_zone", "date_format"]
    list_filter = ["edition"]
    search_fields = ["name"]
    list_select_related = ["edition"]
    inlines = [CrmUserInline]

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            services.modules_install_standard(organization=obj)


@admin.register(CrmUser)
class CrmUserAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["full_name", "email", "organization", "role", "is_admin", "is_active", "user"]
    list_filter = ["organization", "is_admin", "is_active"]
    search_fields = ["first_name", "last_name", "email", "mobile"]
    list_select_related = ["organization", "user"]
    autocomplete_fields = ["user"]


class FieldInline(CrmAdminMixin, admin.TabularInline):
    model = Field
    fk_name = "module"
    fields = [
        "label", "api_name", "field_type", "lookup_module", "picklist_values",
        "is_required", "is_system", "is_deleted", "is_disabled", "position",
    ]
    readonly_fields = ["is_system"]
    extra = 0
    show_change_link = True


@admin.register(Module)
class ModuleAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["api_name", "singular_label", "organization", "is_custom", "supports_webhooks"]
    list_filter = ["organization", "is_custom", "supports_webhooks"]
    search_fields = ["api_name", "singular_label", "aliases"]
    list_select_related = ["organization"]
    inlines = [FieldInline]


# What a field picker may ask for (its data-field-picker attribute, crm/static/crm/field_pickers.js): the
# types that fit. "lookup": a condition's "through lookup"; "date": a time-based action's date field;
# "writable": a capture's target (no system or lookup field); "any": every usable field.
PICKER_KINDS: dict[str, Q] = {
    "lookup": Q(field_type__in=[code for code, kind in FIELD_KINDS.items() if kind.links_records]),
    "date": Q(field_type__in=[code for code, kind in FIELD_KINDS.items() if kind.temporal]),
    "writable": Q(is_system=False) & ~Q(field_type__in=[code for code, kind in FIELD_KINDS.items()
                                                          if kind.links_records]),
    "any": Q(),
}


@admin.register(Field)
class FieldAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["label", "api_name", "module", "field_type", "lookup_module", "is_deleted", "is_disabled"]
    list_filter = ["module__organization", "module", "field_type", "is_deleted", "is_disabled"]
    search_fields = ["label", "api_name"]
    list_select_related = ["module", "lookup_module"]

    def get_search_results(self, request, queryset, search_term):
        """A field picker's search (rules, actions, captures) offers only what fits where it is: usable fields
        of the kind it asks for (field_kind), of the module of its rule or webhook (for_module), or of the
        module reached through the condition's lookup (through_lookup). The services check the choice again."""
        queryset, distinct = super().get_search_results(request, queryset, search_term)
        kind = PICKER_KINDS.get(request.GET.get("field_kind", ""))
        if kind is None:
            return queryset, distinct
        queryset = queryset.filter(kind, is_deleted=False, is_disabled=False)
        lookup = scoped(Field.objects.filter(PICKER_KINDS["lookup"]), request.user).filter(
            pk=id_of(request.GET.get("through_lookup")) or 0).first()
        if lookup is not None:
            return queryset.filter(module_id=lookup.lookup_module_id), distinct
        if module_id := id_of(request.GET.get("for_module")):
            queryset = queryset.filter(module_id=module_id)
        return queryset, distinct


LOOKUP_PAGE_SIZE = 20  # records per page of a lookup search, as Django's autocompletes page
LOOKUP_PAGES_MAX = 10_000  # nobody scrolls further; a larger page number is an empty page, not a huge OFFSET


@admin.register(Record)
class RecordAdmin(CrmAdminMixin, admin.ModelAdmin):
    """Records through the record services, as the API writes them: the same cleaning, and edits in the
    admin fire workflow rules like API edits. Add asks for the module first; its form has one input per
    field (crm/forms.py)."""

    list_display = ["id", "display_name", "module", "owner", "modified_at"]
    list_filter = ["module__organization", "module"]
    search_fields = ["id", "values"]
    list_select_related = ["module", "owner"]
    readonly_fields = ["module", "values_display", "created_at", "modified_at"]

    def get_urls(self):
        lookup = self.admin_site.admin_view(self.lookup_view)
        return [path("lookup/", lookup, name="crm_record_lookup"), *super().get_urls()]

    def chosen_module(self, request: HttpRequest) -> Module | None:
        """The module a new record is for, from ?module= (kept in the form's address when it is posted)."""
        module_id = id_of(request.GET.get("module"))
        return scoped(Module.objects.select_related("organization"), request.user).filter(pk=module_id).first() \
            if module_id else None

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        module = self.chosen_module(request)
        if module is None:
            return self.choose_module_view(request)
        several = sees_several_organizations(request.user)
        title = f"Add {module.singular_label}" + (f" ({module.organization})" if several else "")
        return super().add_view(request, form_url, {**(extra_context or {}), "title": title})

    def choose_module_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        several = sees_several_organizations(request.user)
        modules = scoped(Module.objects.select_related("organization").order_by("organization__name", "api_name"),
                         request.user)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "Add record",
            "modules": [(module, labelled(module, several)) for module in modules],
            "error": "Choose a module of your organization." if "module" in request.GET else "",
        }
        return TemplateResponse(request, "admin/crm/record/choose_module.html", context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        module = obj.module if obj is not None else self.chosen_module(request)
        if module is not None:
            kwargs["form"] = record_form_for(module)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request, obj=None):
        module = obj.module if obj is not None else self.chosen_module(request)
        if module is None:
            return [(None, {"fields": ["owner"]})]
        heading = f"{module.singular_label} fields"
        if obj is not None and not self.has_change_permission(request, obj):
            values = ["values_display"]  # view-only (auditors): the values as text, lookups by name
        else:
            values = [value_input_name(f.api_name) for f in selectors.module_record_fields(module=module)]
        head = ["module", "owner"] if obj is not None else ["owner"]
        history = [("History", {"fields": ["created_at", "modified_at"]})] if obj is not None else []
        return [(None, {"fields": head}), (heading, {"fields": values}), *history]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new record is owned by the login's own CRM user, when it works in the module's organization."""
        initial = super().get_changeform_initial_data(request)
        if module := self.chosen_module(request):
            own = CrmUser.objects.filter(user_id=request.user.pk or 0, organization_id=module.organization_id,
                                         is_active=True).values_list("pk", flat=True).first()
            initial.setdefault("owner", own)
        return initial

    @admin.display(description="values")
    def values_display(self, obj: Record) -> str:
        rows = selectors.record_values_shown(record=obj)
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", rows)) if rows else "-"

    def save_model(self, request, obj: Record, form, change: bool) -> None:
        """Through the record services, so that edits in the admin fire workflow rules like API edits; only
        the values the user changed are written."""
        if change:
            current = Record.objects.select_related("module").get(pk=obj.pk)
            if form.record_values or current.owner_id != obj.owner_id:
                services.record_update(record=current, values=form.record_values, owner=obj.owner)
        else:
            obj.pk = services.record_create(module=form.module, owner=obj.owner, values=form.record_values).pk
        obj.refresh_from_db()

    def response_add(self, request: HttpRequest, obj: Record, post_url_continue=None) -> HttpResponse:
        """“Save and add another” adds another record of the same module."""
        response = super().response_add(request, obj, post_url_continue)
        if "_addanother" in request.POST:
            return HttpResponseRedirect(f"{reverse('admin:crm_record_add')}?module={obj.module_id}")
        return response

    def delete_model(self, request, obj: Record) -> None:
        services.record_delete(record=obj)

    def delete_queryset(self, request, queryset) -> None:
        for record in queryset:
            services.record_delete(record=record)

    def lookup_view(self, request: HttpRequest) -> JsonResponse:
        """The records a lookup input may name, for its search box (select2's format): the looked-up module's,
        of the login's organizations, found by name or id."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        field_id = id_of(request.GET.get("field"))
        field = scoped(Field.objects.select_related("lookup_module"), request.user).filter(
            PICKER_KINDS["lookup"], pk=field_id or 0).first()
        if field is None or field.lookup_module is None:
            return JsonResponse({"error": "No lookup field with this id."}, status=404)
        term = request.GET.get("term", "").strip()
        page = id_of(request.GET.get("page")) or 1
        found = [] if page > LOOKUP_PAGES_MAX else selectors.records_found(
            module=field.lookup_module, term=term, offset=(page - 1) * LOOKUP_PAGE_SIZE, limit=LOOKUP_PAGE_SIZE + 1)
        return JsonResponse({"results": [{"id": str(r.pk), "text": record_label(r)} for r in found[:LOOKUP_PAGE_SIZE]],
                             "pagination": {"more": len(found) > LOOKUP_PAGE_SIZE}})


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple, initial=DEFAULT_API_SCOPES,
        error_messages={"required": "Choose at least one scope: a key without scopes can do nothing."},
        help_text="What the key may do; each API operation needs one (an auditor's key: deliveries:read only).")

    class Meta:
        model = ApiKey
        fields = ["user", "name", "scopes"]


@admin.register(ApiKey)
class ApiKeyAdmin(CrmAdminMixin, admin.ModelAdmin):
    form = ApiKeyForm
    list_display = ["name", "prefix", "organization", "user", "scope_list", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["organization", "revoked_at"]
    search_fields = ["name", "prefix", "user__email"]
    list_select_related = ["organization", "user"]
    readonly_fields = ["organization", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["user", "name", "scopes"] if obj is None else ["name", "scopes", *self.readonly_fields, "user"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes) or "none"

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else [*self.readonly_fields, "user"]

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key, raw = services.api_key_create(user=obj.user, name=obj.name, scopes=list(obj.scopes))
        obj.pk = key.pk
        obj.refresh_from_db()
        request.new_api_key = raw  # for response_add only: never in a message, whose cookie would carry it

    def response_add(self, request, obj: ApiKey, post_url_continue=None):
        """The new key, once, on a page of its own that is not cached."""
        response = TemplateResponse(request, "admin/crm/apikey/created.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "title": "New API key", "key": obj,
            "raw": request.new_api_key,
        })
        add_never_cache_headers(response)
        return response

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        for key in queryset:
            services.api_key_revoke(key=key)
        self.message_user(request, f"{queryset.count()} key(s) revoked; they are refused from now on.",
                          messages.SUCCESS)
