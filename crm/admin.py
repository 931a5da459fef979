from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from config.admin_base import CrmAdminMixin
from crm import services
from crm.models import DEFAULT_API_SCOPES, ApiKey, ApiScope, CrmUser, Edition, Field, Module, Organization, Record


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


@admin.register(Field)
class FieldAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["label", "api_name", "module", "field_type", "lookup_module", "is_deleted", "is_disabled"]
    list_filter = ["module__organization", "module", "field_type", "is_deleted", "is_disabled"]
    search_fields = ["label", "api_name"]
    list_select_related = ["module", "lookup_module"]


class RecordForm(forms.ModelForm):
    """Validates the values document against the module's fields, with one message per field."""

    class Meta:
        model = Record
        fields = ["module", "owner", "values"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        module, owner, values = cleaned.get("module"), cleaned.get("owner"), cleaned.get("values")
        if module and owner and owner.organization_id != module.organization_id:
            self.add_error("owner", "The owner must belong to the module's organization.")
        if module and isinstance(values, dict):
            try:
                clean_values = services.record_clean_values(module=module, values=values)
            except ValidationError as error:
                self.add_error("values", [m for messages in error.message_dict.values() for m in messages])
            else:
                cleaned["values"] = {key: value for key, value in clean_values.items() if value is not None}
        elif values is not None and not isinstance(values, dict):
            self.add_error("values", "Values must be a JSON object keyed by field API name.")
        return cleaned


@admin.register(Record)
class RecordAdmin(CrmAdminMixin, admin.ModelAdmin):
    form = RecordForm
    list_display = ["id", "display_name", "module", "owner", "modified_at"]
    list_filter = ["module__organization", "module"]
    search_fields = ["id", "values"]
    list_select_related = ["module", "owner"]
    readonly_fields = ["created_at", "modified_at"]

    def save_model(self, request, obj: Record, form, change: bool) -> None:
        """Through the record services, so that edits in the admin fire workflow rules like API edits."""
        if change:
            current = Record.objects.select_related("module").get(pk=obj.pk)
            services.record_update(record=current, values=obj.values, owner=obj.owner, replace=True)
        else:
            obj.pk = services.record_create(module=obj.module, owner=obj.owner, values=obj.values).pk
            obj.refresh_from_db()

    def delete_model(self, request, obj: Record) -> None:
        services.record_delete(record=obj)

    def delete_queryset(self, request, queryset) -> None:
        for record in queryset:
            services.record_delete(record=record)


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
