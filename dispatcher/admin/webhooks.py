"""Webhooks in the admin: thin over dispatcher.senders.webhooks (saved through webhook_save, as the config
import saves them), a preview page and a test send."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config.admin_base import CrmAdminMixin
from config.formsets import SiblingFormSetsMixin, formset_rows
from crm.models import Module, Record
from dispatcher import selectors
from dispatcher.admin.secrets import expire_previous_signing_secrets, rotate_signing_secrets, signing_secrets_html
from dispatcher.admin.webhook_forms import (
    CaptureInline, CustomParameterInline, EntityParameterInline, WebhookForm, WebhookHeaderInline,
)
from dispatcher.models import Capture, CustomParameter, EntityParameter, Webhook, WebhookHeader
from dispatcher.senders import webhook_checks, webhook_rows, webhook_secrets, webhooks
from dispatcher.transport.request import MASK

RESPONSE_DISPLAY_LIMIT = 10_000  # characters of a test response shown on the page


def _masked_display(field: str, label: str):
    """A readonly admin field showing whether a secret is set, never the secret."""
    @admin.display(description=label)
    def display(self, obj: Webhook) -> str:
        return MASK if getattr(obj, field) else "-"

    return display


@admin.register(Webhook)
class WebhookAdmin(CrmAdminMixin, SiblingFormSetsMixin, admin.ModelAdmin):
    form = WebhookForm
    inlines = [EntityParameterInline, CustomParameterInline, WebhookHeaderInline, CaptureInline]
    list_display = ["name", "organization", "module", "method", "content_type", "url", "is_active", "preview_link",
                    "log_link"]
    list_filter = ["is_active", "method", "content_type", "module__api_name", "organization"]
    search_fields = ["name", "description", "url"]
    list_select_related = ["organization", "module"]
    readonly_fields = ["signing_secret_display", "merge_fields_display", "created_at", "modified_at"]
    actions = ["activate", "deactivate", "rotate_signing_secret", "expire_previous_signing_secret", "send_test"]
    fieldsets = [
        (None, {"fields": ["organization", "module", "name", "description", "is_active"]}),
        ("Request", {"fields": ["url", "method", "content_type", "body", "retry_policy"]}),
        ("Authorization", {"fields": ["auth_type", "auth_username", "auth_password", "auth_token"],
                           "description": "Custom headers (e.g. an API key) are set below."}),
        ("OAuth 2.0 client credentials", {"fields": ["oauth_token_url", "oauth_client_id", "oauth_client_secret",
                                                     "oauth_scope", "oauth_client_auth"], "classes": ["collapse"]}),
        ("Mutual TLS", {"fields": ["tls_client_certificate", "tls_client_key", "tls_ca_bundle"],
                        "classes": ["collapse"]}),
        ("Dates and times", {"fields": ["date_format", "datetime_format", "time_zone"]}),
        ("Response capture", {"fields": ["capture_response", "capture_type", "capture_namespaces"]}),
        ("Signing", {"fields": ["signing_secret_display"]}),
        ("Available merge fields", {"fields": ["merge_fields_display"], "classes": ["collapse"]}),
        ("History", {"fields": ["created_at", "modified_at"]}),
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "module":  # Call logs and Notes cannot have webhooks (seed 003)
            kwargs["queryset"] = Module.objects.webhook_capable()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_fieldsets(self, request, obj=None):
        """View-only users (auditors) get the password as a mask, not a readonly copy of the real thing."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            masked = {name: f"{name}_masked" for name in webhook_secrets.WEBHOOK_SECRETS}
            masked["signing_secret_display"] = "signing_secret_masked"
            fieldsets = [(title, {**options, "fields": [masked.get(f, f) for f in options["fields"]]})
                         for title, options in fieldsets]
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj),
                *(f"{name}_masked" for name in webhook_secrets.WEBHOOK_SECRETS), "signing_secret_masked"]

    auth_password_masked = _masked_display("auth_password", "password")
    auth_token_masked = _masked_display("auth_token", "bearer token")
    oauth_client_secret_masked = _masked_display("oauth_client_secret", "client secret")
    tls_client_key_masked = _masked_display("tls_client_key", "client key")

    @admin.display(description="signing secret")
    def signing_secret_masked(self, obj: Webhook) -> str:
        return f"{MASK} (shown to those who may change the webhook)"

    @admin.display(description="signing secret")
    def signing_secret_display(self, obj: Webhook) -> str:
        if not obj.pk:
            return "Generated when the webhook is saved."
        return signing_secrets_html(obj)

    @admin.display(description="merge fields")
    def merge_fields_display(self, obj: Webhook) -> str:
        if not obj.pk:
            return "Shown once the webhook is saved with its module."
        groups = selectors.merge_fields_available(module=obj.module)
        return format_html_join(
            "", "<p><strong>{}</strong><br><code>{}</code></p>",
            ((title, "  ".join(tokens)) for title, tokens in groups),
        )

    @admin.display(description="webhook log")
    def log_link(self, obj: Webhook) -> str:
        url = reverse("admin:dispatcher_delivery_changelist") + f"?webhook__id__exact={obj.pk}"
        return format_html('<a href="{}">View webhook log</a>', url)

    @admin.display(description="preview")
    def preview_link(self, obj: Webhook) -> str:
        return format_html('<a href="{}">Preview</a>', reverse("admin:dispatcher_webhook_preview", args=[obj.pk]))

    def save_model(self, request, obj, form, change) -> None:
        """Nothing yet: the webhook is stored with its inlines by webhook_save, in save_related."""

    def save_related(self, request, form, formsets, change) -> None:
        """Through webhook_save, the service import_config uses, so that its checks apply to both."""
        rows = formset_rows(formsets)
        webhooks.webhook_save(
            webhook=form.instance,
            entity_parameters=[webhook_rows.Parameter(r["name"], r["value"]) for r in rows.get(EntityParameter, [])],
            custom_parameters=[webhook_rows.Parameter(r["name"], r["value"]) for r in rows.get(CustomParameter, [])],
            captures=[Capture(when=r["when"], expression=r["expression"], field=r["field"])
                      for r in rows[Capture]] if Capture in rows else None,
            headers=[webhook_rows.Header(r["name"], r["value"], r["is_secret"])
                     for r in rows[WebhookHeader]] if WebhookHeader in rows else None,
        )
        for token, reason in webhook_checks.webhook_unsupported_merge_fields(webhook=form.instance):
            self.message_user(
                request, f"{token} will be sent as ${{Unsupported_Field}}: {reason}.", level=messages.WARNING
            )

    @admin.action(description="Activate selected webhooks", permissions=["change"])
    def activate(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(is_active=True, modified_at=timezone.now())  # modified: workers reload it
        self.message_user(request, f"{count} webhook(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected webhooks", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(is_active=False, modified_at=timezone.now())  # modified: workers reload it
        self.message_user(request, f"{count} webhook(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Rotate signing secret (the old one keeps signing for a grace period)",
                  permissions=["change"])
    def rotate_signing_secret(self, request: HttpRequest, queryset) -> None:
        rotate_signing_secrets(self, request, queryset, "webhook")

    @admin.action(description="Expire the old signing secret now", permissions=["change"])
    def expire_previous_signing_secret(self, request: HttpRequest, queryset) -> None:
        expire_previous_signing_secrets(self, request, queryset, "webhook")

    @admin.action(description="Preview and send a test request", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one webhook to test.", messages.ERROR)
            return None
        return HttpResponseRedirect(reverse("admin:dispatcher_webhook_preview", args=[queryset.get().pk]))

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        return [path("<int:pk>/preview/", preview, name="dispatcher_webhook_preview"), *super().get_urls()]

    def preview_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """The rendered request for a chosen record (GET) and a test send through the guarded client (POST)."""
        webhook = get_object_or_404(self.get_queryset(request).select_related("organization", "module"), pk=pk)
        if not self.has_view_permission(request, webhook):
            raise PermissionDenied
        records = selectors.records_for_preview(webhook=webhook)
        record_id = request.POST.get("record") or request.GET.get("record")
        record = None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts, "title": f"Preview of {webhook.name}", "webhook": webhook, "records": records,
            "can_send": self.has_change_permission(request, webhook),
        }
        if record_id:
            record = Record.objects.select_related("module", "owner").filter(pk=record_id, module=webhook.module) \
                .first() if str(record_id).isdecimal() and str(record_id).isascii() else None
            if record is None:
                context["error"] = f"There is no record with id {record_id}."
        elif records:
            record = records[0]
        if record is not None:
            try:
                context["rendered"] = webhooks.webhook_preview(webhook=webhook, record=record,
                                                               show_signature=context["can_send"]).as_text()
            except ValidationError as error:
                context["error"] = " ".join(error.messages)
            else:
                context["unsupported"] = webhook_checks.webhook_unsupported_merge_fields(webhook=webhook)
        context["record"] = record
        if request.method == "POST" and record is not None and "error" not in context:
            if not context["can_send"]:
                raise PermissionDenied
            sent, result, logged = webhooks.webhook_send_test(webhook=webhook, record=record,
                                                              by=request.user.get_username())
            context["sent"] = sent.as_text()
            context["logged_url"] = reverse("admin:dispatcher_delivery_change", args=[logged.pk])
            context["result"] = result
            context["response_text"] = result.body.decode("utf-8", "replace")[:RESPONSE_DISPLAY_LIMIT]
        return TemplateResponse(request, "admin/dispatcher/webhook/preview.html", context)
