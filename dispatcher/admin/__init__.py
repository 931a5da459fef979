"""Webhook admin: thin forms over dispatcher.senders.webhooks, a preview page and a test send; the delivery log."""
import csv
import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from config.admin_base import CrmAdminMixin, scoped
from config.formsets import SiblingAwareFormSet, SiblingFormSetsMixin, formset_rows
from crm.models import Module, Organization, Record
from dispatcher import selectors
from dispatcher.delivery import retry
from dispatcher.senders import webhooks as services
from dispatcher.admin.secrets import expire_previous_signing_secrets, rotate_signing_secrets, signing_secrets_html
from dispatcher.capture import apply as capture
from dispatcher.delivery import deliveries_resend
from dispatcher.admin.paging import CappedCountPaginator, ErrorClassFilter, ModuleFilter, TriggerFilter
from dispatcher.models import (
    Attempt, AuthType, Capture, CustomParameter, DailyUsage, Delivery, EntityParameter, OAuthClientAuth, RetryPolicy,
    Webhook, WebhookHeader,
)
from dispatcher.transport.request import MASK
from dispatcher.ops.usage import usage_last_days

RESPONSE_DISPLAY_LIMIT = 10_000  # characters of a test response shown on the page


def _secret_input(label: str, help_text: str, *, multiline: bool = False) -> forms.CharField:
    """A write-only secret. After an error the page shows back what was typed in that request (its form sets
    the initial value empty, so a stored secret never reaches the browser; admin pages are never cached)."""
    widget = (forms.Textarea(attrs={"rows": 4, "cols": 64, "autocomplete": "off", "style": "font-family: monospace"})
              if multiline else forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"}))
    return forms.CharField(label=label, required=False, strip=False, widget=widget,
                           help_text=help_text + " Stored encrypted and never shown; leave empty to keep the saved one.")


class WebhookForm(forms.ModelForm):
    """Secrets are write-only: an empty field keeps the stored value, but only for the host it was entered
    for (services.webhook_retarget_problem); fields of another authorization type are cleared."""

    auth_password = _secret_input("Password", "For Basic authentication.")
    auth_token = _secret_input("Bearer token", "Sent as the header “Authorization: Bearer” followed by this token.")
    oauth_client_secret = _secret_input("Client secret", "OAuth 2.0 client secret.")
    tls_client_key = _secret_input("Client key (PEM)", "The client certificate's private key, unencrypted PEM.",
                                   multiline=True)

    class Meta:
        model = Webhook
        fields = "__all__"
        widgets = {"body": forms.Textarea(attrs={"rows": 14, "cols": 100, "style": "font-family: monospace"}),
                   "tls_client_certificate": forms.Textarea(attrs={"rows": 4, "cols": 64,
                                                                   "style": "font-family: monospace"}),
                   "tls_ca_bundle": forms.Textarea(attrs={"rows": 4, "cols": 64, "style": "font-family: monospace"})}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "oauth_client_auth" in self.fields:  # only asked for with OAuth 2.0; the default otherwise
            self.fields["oauth_client_auth"].required = False
        for name in services.WEBHOOK_SECRETS:
            self.initial[name] = ""
            if self.instance.pk and getattr(self.instance, name):
                self.fields[name].widget.attrs["placeholder"] = MASK

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        stored = Webhook.objects.get(pk=self.instance.pk) if self.instance.pk else None
        for name in services.webhook_unused_secrets(auth_type=cleaned.get("auth_type"),
                                                   certificate=cleaned.get("tls_client_certificate", "")):
            cleaned[name] = ""
        if cleaned.get("auth_type") != AuthType.BASIC:
            cleaned["auth_username"] = ""
        if cleaned.get("auth_type") != AuthType.OAUTH2:
            cleaned["oauth_token_url"] = cleaned["oauth_client_id"] = cleaned["oauth_scope"] = ""
        cleaned["oauth_client_auth"] = cleaned.get("oauth_client_auth") or OAuthClientAuth.BASIC
        unused = services.webhook_unused_secrets(auth_type=cleaned.get("auth_type"),
                                                 certificate=cleaned.get("tls_client_certificate", ""))
        for name in services.WEBHOOK_SECRETS:
            if cleaned.get(name) or stored is None or name in unused:
                continue
            cleaned[name] = getattr(stored, name)
            if cleaned[name] and (problem := services.webhook_secret_retarget_problem(name=name, stored=stored,
                                                                                      urls=cleaned)):
                self.add_error(name, problem)
        if self.errors:
            return cleaned
        candidate = Webhook(**{k: v for k, v in cleaned.items() if k in {f.name for f in Webhook._meta.fields}})
        for key, problems in services.webhook_check_definition(webhook=candidate).items():
            self.add_error(key if key in self.fields else None, problems)
        return cleaned


class EntityParameterFormSet(SiblingAwareFormSet):
    def clean(self) -> None:
        super().clean()
        custom = self.siblings.get(CustomParameter)
        if any(self.errors) or custom is None or not custom.is_valid() or not self.instance.module_id:
            return
        problems = services.webhook_check_parameters(
            webhook=self.instance,
            entity_parameters=[services.Parameter(row["name"], row["value"]) for row in self.kept_rows()],
            custom_parameter_names=[row["name"] for row in custom.kept_rows()],
        )
        if problems:
            raise ValidationError([message for messages in problems.values() for message in messages])


class EntityParameterInline(CrmAdminMixin, admin.TabularInline):
    model = EntityParameter
    formset = EntityParameterFormSet
    fields = ["name", "value", "position"]
    extra = 1
    verbose_name_plural = "entity parameters (values from the record, with merge fields)"


class CaptureFormSet(SiblingAwareFormSet):
    def clean(self) -> None:
        super().clean()
        webhook = self.instance
        if any(self.errors) or not webhook.module_id:
            return
        captures = [Capture(webhook=webhook, **{k: row[k] for k in ("when", "expression", "field")})
                    for row in self.kept_rows()]
        if problems := capture.captures_check(webhook=webhook, captures=captures):
            raise ValidationError(problems)


class CaptureInline(CrmAdminMixin, admin.TabularInline):
    model = Capture
    formset = CaptureFormSet
    fields = ["when", "expression", "field", "position"]
    extra = 0
    autocomplete_fields = ["field"]
    verbose_name_plural = "response captures (JSONPath or XPath → record field)"

    class Media:  # the field picker offers fields of the webhook's module a capture may write
        js = ["admin/js/jquery.init.js", "admin/js/autocomplete.js", "crm/field_pickers.js"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if formfield is not None and db_field.name == "field":
            formfield.widget.attrs["data-field-picker"] = "writable"
        return formfield


class CustomParameterForm(forms.ModelForm):
    """The value is write-only like the webhook's secrets: what was typed comes back after an error, the
    stored value never."""

    value = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=True, attrs={"autocomplete": "off"}),
        help_text="Sent as is; stored encrypted and masked. Leave empty to keep the saved value.",
    )

    class Meta:
        model = CustomParameter
        fields = ["name", "value", "position"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial["value"] = ""
        if self.instance.pk:
            self.fields["value"].widget.attrs["placeholder"] = MASK

    def clean_value(self) -> str:
        value = self.cleaned_data["value"]
        self.kept_stored_value = False
        if value:
            return value
        if self.instance.pk:
            self.kept_stored_value = True
            return CustomParameter.objects.get(pk=self.instance.pk).value
        if self.has_changed():
            raise ValidationError("Enter a value for this custom parameter.")
        return value


class CustomParameterFormSet(SiblingAwareFormSet):
    def clean(self) -> None:
        """A value kept from before is not sent to a new host: it must be entered again (see WebhookForm)."""
        super().clean()
        webhook = self.instance
        if any(self.errors) or not webhook.pk:
            return
        kept = [f"the value of “{form.cleaned_data['name']}”" for form in self.kept_forms()
                if getattr(form, "kept_stored_value", False)]
        stored_url = Webhook.objects.values_list("url", flat=True).get(pk=webhook.pk)
        if problem := services.webhook_retarget_problem(stored_url=stored_url, url=webhook.url, kept=kept):
            raise ValidationError(problem)


def _masked_display(field: str, label: str):
    """A readonly admin field showing whether a secret is set, never the secret."""
    @admin.display(description=label)
    def display(self, obj: Webhook) -> str:
        return MASK if getattr(obj, field) else "-"

    return display


class SecretValuesInline(CrmAdminMixin, admin.TabularInline):
    """An inline whose values may be secrets: whoever may only look (auditors) gets view_only_fields, where
    the value is a readonly display that masks them; whoever may change gets the form's inputs only (a mask
    column beside them would show ******** on rows that hold nothing yet)."""

    view_only_fields: list[str] = []

    def get_fields(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            return self.view_only_fields
        return [name for name in super().get_fields(request, obj) if name not in self.readonly_fields]


class CustomParameterInline(SecretValuesInline):
    model = CustomParameter
    form = CustomParameterForm
    formset = CustomParameterFormSet
    extra = 1
    verbose_name_plural = "custom parameters (literal values such as tokens; masked)"
    readonly_fields = ["masked_value"]
    view_only_fields = ["name", "masked_value", "position"]

    @admin.display(description="value")
    def masked_value(self, obj: CustomParameter) -> str:
        return MASK


class WebhookHeaderForm(forms.ModelForm):
    """A secret value is never shown again: an empty field keeps it (for the same host, see the formset)."""

    value = forms.CharField(required=False, strip=False, widget=forms.TextInput(attrs={"size": 50}),
                            help_text="Text with merge fields, or a secret sent as typed (tick “secret”).")

    class Meta:
        model = WebhookHeader
        fields = ["name", "value", "is_secret", "position"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.is_secret:
            self.initial["value"] = ""  # typed in this request comes back after an error; stored, never
            self.fields["value"].widget = forms.PasswordInput(render_value=True, attrs={"placeholder": MASK,
                                                                                        "autocomplete": "off"})

    def clean_value(self) -> str:
        value = self.cleaned_data["value"]
        self.kept_stored_value = False
        if not value and self.instance.pk and self.instance.is_secret:
            self.kept_stored_value = True
            return WebhookHeader.objects.get(pk=self.instance.pk).value
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if getattr(self, "kept_stored_value", False) and not cleaned.get("is_secret"):
            # A kept secret would become a plain value nobody typed: shown unmasked, and out of the retarget rule.
            self.add_error("value", "Type the value again to make this header not secret (a secret value is "
                                    "never shown, so it cannot become a plain one unseen).")
        return cleaned


class WebhookHeaderFormSet(SiblingAwareFormSet):
    def clean(self) -> None:
        super().clean()
        webhook = self.instance
        if any(self.errors):
            return
        rows = self.kept_rows()
        problems = services.webhook_check_headers(
            webhook=webhook, headers=[services.Header(r["name"], r["value"], r["is_secret"]) for r in rows])
        kept = [f"the value of header “{form.cleaned_data['name']}”" for form in self.kept_forms()
                if getattr(form, "kept_stored_value", False) and form.cleaned_data.get("is_secret")]
        if webhook.pk and kept:
            stored_url = Webhook.objects.values_list("url", flat=True).get(pk=webhook.pk)
            if problem := services.webhook_retarget_problem(stored_url=stored_url, url=webhook.url, kept=kept):
                problems.append(problem)
        if problems:
            raise ValidationError(problems)


class WebhookHeaderInline(SecretValuesInline):
    model = WebhookHeader
    form = WebhookHeaderForm
    formset = WebhookHeaderFormSet
    extra = 0
    verbose_name_plural = "custom headers (text with merge fields, or secrets such as API keys; secrets masked)"
    readonly_fields = ["shown_value"]
    view_only_fields = ["name", "shown_value", "is_secret", "position"]

    @admin.display(description="value")
    def shown_value(self, obj: WebhookHeader) -> str:
        return MASK if obj.is_secret else obj.value


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
            masked = {name: f"{name}_masked" for name in services.WEBHOOK_SECRETS}
            masked["signing_secret_display"] = "signing_secret_masked"
            fieldsets = [(title, {**options, "fields": [masked.get(f, f) for f in options["fields"]]})
                         for title, options in fieldsets]
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), *(f"{name}_masked" for name in services.WEBHOOK_SECRETS),
                "signing_secret_masked"]

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
        services.webhook_save(
            webhook=form.instance,
            entity_parameters=[services.Parameter(r["name"], r["value"]) for r in rows.get(EntityParameter, [])],
            custom_parameters=[services.Parameter(r["name"], r["value"]) for r in rows.get(CustomParameter, [])],
            captures=[Capture(when=r["when"], expression=r["expression"], field=r["field"])
                      for r in rows[Capture]] if Capture in rows else None,
            headers=[services.Header(r["name"], r["value"], r["is_secret"])
                     for r in rows[WebhookHeader]] if WebhookHeader in rows else None,
        )
        for token, reason in services.webhook_unsupported_merge_fields(webhook=form.instance):
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
                context["rendered"] = services.webhook_preview(webhook=webhook, record=record,
                                                               show_signature=context["can_send"]).as_text()
            except ValidationError as error:
                context["error"] = " ".join(error.messages)
            else:
                context["unsupported"] = services.webhook_unsupported_merge_fields(webhook=webhook)
        context["record"] = record
        if request.method == "POST" and record is not None and "error" not in context:
            if not context["can_send"]:
                raise PermissionDenied
            sent, result, logged = services.webhook_send_test(webhook=webhook, record=record,
                                                              by=request.user.get_username())
            context["sent"] = sent.as_text()
            context["logged_url"] = reverse("admin:dispatcher_delivery_change", args=[logged.pk])
            context["result"] = result
            context["response_text"] = result.body.decode("utf-8", "replace")[:RESPONSE_DISPLAY_LIMIT]
        return TemplateResponse(request, "admin/dispatcher/webhook/preview.html", context)


@admin.register(RetryPolicy)
class RetryPolicyAdmin(CrmAdminMixin, admin.ModelAdmin):
    list_display = ["name", "code", "schedule", "max_retry_after", "failure_emails"]
    list_filter = ["failure_emails"]
    search_fields = ["name", "code"]
    fields = ["code", "name", "delays", "schedule_table", "max_retry_after", "failure_emails"]
    readonly_fields = ["schedule_table"]

    @admin.display(description="attempts (from the first)")
    def schedule(self, obj: RetryPolicy) -> str:
        return retry.schedule_text(obj)

    @admin.display(description="when each retry happens")
    def schedule_table(self, obj: RetryPolicy) -> str:
        if not obj.pk:
            return "Shown once the policy is saved."
        jitter = round(settings.WEBHOOK_RETRY_JITTER * 100)
        rows = [("first attempt", "at once", "0 s")] + [
            (f"retry {n}", f"{retry.duration_text(delay)} after the failed attempt", retry.duration_text(total))
            for n, (delay, total) in enumerate(retry.schedule(obj), start=1)]
        return format_html(
            "<table><tr><th>attempt</th><th>waits</th><th>after the first attempt</th></tr>{}</table>"
            "<p class='help'>Each delay is moved at random by up to ±{}% (WEBHOOK_RETRY_JITTER); a 429 or 503 "
            "with Retry-After waits as asked, up to the longest Retry-After honoured. 410 Gone is never retried "
            "and disables the destination.</p>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows), jitter)


class ReadOnlyAdmin(CrmAdminMixin, admin.ModelAdmin):
    """Logs are facts: nobody adds or edits them in the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


ATTEMPT_FIELDS = (
    "number", "started_at", "duration_ms", "status_code", "error_class", "meaning", "error_message", "outcome",
    "response_headers", "response_excerpt", "captured",
)


class AttemptInline(CrmAdminMixin, admin.TabularInline):
    model = Attempt
    fields = ATTEMPT_FIELDS
    readonly_fields = ATTEMPT_FIELDS
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="response")
    def response_excerpt(self, obj: Attempt) -> str:
        return format_html("<pre style='white-space: pre-wrap; max-width: 40em'>{}</pre>", obj.response_body[:2000])


class StatusClassFilter(admin.SimpleListFilter):
    title = "HTTP status"
    parameter_name = "http"

    def lookups(self, request, model_admin):
        return [("2", "2xx"), ("3", "3xx"), ("4", "4xx"), ("5", "5xx"), ("none", "no answer")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(last_status_code__isnull=True)
        if self.value() in ("2", "3", "4", "5"):
            low = int(self.value()) * 100
            return queryset.filter(last_status_code__gte=low, last_status_code__lt=low + 100)
        return queryset


CSV_COLUMNS = ["created", "delivery id", "organization", "webhook", "record", "source", "trigger", "status",
               "reason", "http status", "error", "attempts", "next attempt", "finished"]


class _Echo:
    def write(self, value: str) -> str:
        return value


# The webhook and the record once each: the object (a link) while it exists, else the name kept with the delivery.
DELIVERY_FIELDS = (
    "message_id", "organization", "webhook_shown", "channel", "endpoint", "record_shown", "source",
    "trigger", "status", "status_reason", "retry_policy", "attempt_count", "due_at", "created_at", "finished_at",
    "resent_by", "resent_at", "request",
)


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "webhook_name", "trigger", "record_ref", "source", "status",
                    "last_status_code", "last_duration_ms", "attempt_count", "due_at"]
    list_filter = ["status", "source", StatusClassFilter, ("created_at", admin.DateFieldListFilter), "webhook",
                   "channel", TriggerFilter, ModuleFilter, "organization"]
    # A log of millions of rows: no full COUNT(*) per page, capped filtered counts (see admin_paging).
    show_full_result_count = False
    paginator = CappedCountPaginator
    search_fields = ["record_ref", "webhook_name", "request_display", "trigger"]
    list_select_related = ["organization"]
    inlines = [AttemptInline]
    actions = ["resend"]
    fields = DELIVERY_FIELDS
    readonly_fields = DELIVERY_FIELDS

    def get_search_results(self, request, queryset, search_term):
        """Also find a delivery by its webhook-id header (msg_…) or its bare id."""
        results, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip().removeprefix("msg_")
        try:
            results |= queryset.filter(public_id=uuid.UUID(term))
        except ValueError:
            pass
        return results, duplicates

    @admin.display(description="delivery id (webhook-id)")
    def message_id(self, obj: Delivery) -> str:
        return obj.message_id

    @admin.display(description="webhook")
    def webhook_shown(self, obj: Delivery) -> str:
        if obj.webhook_id is not None:
            return format_html('<a href="{}">{}</a>', reverse("admin:dispatcher_webhook_change", args=[obj.webhook_id]),
                               obj.webhook_name)
        return "-" if obj.is_subscription else f"{obj.webhook_name} (deleted)"  # a channel's: the channel row

    @admin.display(description="record")
    def record_shown(self, obj: Delivery) -> str:
        if obj.record_id is not None:
            return format_html('<a href="{}">{}</a>', reverse("admin:crm_record_change", args=[obj.record_id]),
                               obj.record_ref)
        return f"{obj.record_ref} (deleted)"

    @admin.display(description="request (secrets masked)")
    def request(self, obj: Delivery) -> str:
        if not obj.request_display:
            return "Rendered on the first attempt."
        return format_html("<pre style='white-space: pre-wrap; max-width: 60em'>{}</pre>", obj.request_display)

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("dispatcher.resend_delivery")

    @admin.action(description="Resend selected deliveries (failed, limit reached or cancelled)", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset) -> None:
        # Counted before: a list filtered on status (?status__exact=failed) no longer holds what was resent.
        selected = list(queryset.values_list("pk", flat=True))
        count = deliveries_resend(ids=selected, by=request.user.get_username())
        skipped = len(selected) - count
        note = f"; {skipped} not resent (still under way, successful, or their webhook was deleted)" if skipped else ""
        self.message_user(request, f"{count} deliveries queued again with their delivery id{note}.",
                          messages.SUCCESS if count else messages.WARNING)

    def get_urls(self):
        export = self.admin_site.admin_view(self.export_csv)
        return [path("export.csv", export, name="dispatcher_delivery_export"), *super().get_urls()]

    def export_csv(self, request: HttpRequest) -> StreamingHttpResponse:
        """The log as filtered on the list page, streamed row by row (a large log is never held in memory)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        queryset = self.get_changelist_instance(request).get_queryset(request).select_related("organization")
        writer = csv.writer(_Echo())

        def rows():
            yield writer.writerow(CSV_COLUMNS)
            for d in queryset.iterator(chunk_size=2000):
                yield writer.writerow([
                    d.created_at.isoformat(), d.message_id, d.organization.name, d.webhook_name, d.record_ref,
                    d.source, d.trigger, d.get_status_display(), d.status_reason, d.last_status_code or "",
                    d.last_error_class, d.attempt_count, d.due_at.isoformat() if d.due_at else "",
                    d.finished_at.isoformat() if d.finished_at else "",
                ])

        response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="webhook-log.csv"'
        return response


ATTEMPT_LOG_FIELDS = (
    "delivery", "number", "started_at", "duration_ms", "status_code", "error_class", "meaning", "error_message",
    "outcome", "response_headers", "response_body", "response_truncated", "captured",
)


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    """Every try of every delivery, for when the question is about attempts rather than deliveries."""

    list_display = ["started_at", "delivery", "number", "status_code", "error_class", "duration_ms", "outcome"]
    list_filter = ["outcome", ErrorClassFilter, ("started_at", admin.DateFieldListFilter), "delivery__organization"]
    search_fields = ["delivery__record_ref", "delivery__webhook_name", "error_class"]
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_select_related = ["delivery"]
    fields = ATTEMPT_LOG_FIELDS
    readonly_fields = ATTEMPT_LOG_FIELDS


@admin.register(DailyUsage)
class DailyUsageAdmin(ReadOnlyAdmin):
    list_display = ["day", "organization", "calls", "limit_notified"]
    list_filter = ["organization"]
    date_hierarchy = "day"

    def get_urls(self):
        chart = self.admin_site.admin_view(self.chart_view)
        return [path("chart/", chart, name="dispatcher_usage_chart"), *super().get_urls()]

    def chart_view(self, request: HttpRequest) -> HttpResponse:
        """Seed 003's usage chart: the last 7 days (or weeks) by source and by outcome, with the quota line."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        organizations = list(scoped(Organization.objects.order_by("name"), request.user))
        chosen = next((o for o in organizations if str(o.pk) == request.GET.get("organization")),
                      organizations[0] if organizations else None)
        weekly = request.GET.get("by") == "week"
        data = usage_last_days(organization=chosen, now=timezone.now(), weekly=weekly) if chosen else None
        rows = []
        if data:
            rows = [(label, data["totals"][n], {name: values[n] for name, values in data["by_source"].items()},
                     {name: values[n] for name, values in data["by_outcome"].items()})
                    for n, label in enumerate(data["labels"])]
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Webhook usage",
                   "organizations": organizations, "organization": chosen, "weekly": weekly, "data": data,
                   "rows": rows}
        return TemplateResponse(request, "admin/dispatcher/dailyusage/chart.html", context)


from dispatcher.admin import subscriptions as admin_subscriptions  # noqa: E402,F401  (registers channels and endpoints)
