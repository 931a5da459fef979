"""The webhook page's form and inlines: secrets write-only, parameters, headers and captures checked by
dispatcher.senders.webhook_checks and dispatcher.capture, so the admin applies the same rules as the config import."""
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from config.admin_base import CrmAdminMixin
from config.formsets import SiblingAwareFormSet
from dispatcher.capture import apply as capture
from dispatcher.models import (
    AuthType, Capture, CustomParameter, EntityParameter, OAuthClientAuth, Webhook, WebhookHeader,
)
from dispatcher.senders import webhook_checks, webhook_rows, webhook_secrets
from dispatcher.transport.request import MASK


def _secret_input(label: str, help_text: str, *, multiline: bool = False) -> forms.CharField:
    """A write-only secret. After an error the page shows back what was typed in that request (its form sets
    the initial value empty, so a stored secret never reaches the browser; admin pages are never cached)."""
    widget = (forms.Textarea(attrs={"rows": 4, "cols": 64, "autocomplete": "off", "style": "font-family: monospace"})
              if multiline else forms.PasswordInput(render_value=True, attrs={"autocomplete": "new-password"}))
    return forms.CharField(label=label, required=False, strip=False, widget=widget,
                           help_text=help_text + " Stored encrypted and never shown; leave empty to keep the saved one.")


class WebhookForm(forms.ModelForm):
    """Secrets are write-only: an empty field keeps the stored value, but only for the host it was entered
    for (webhook_secrets.webhook_retarget_problem); fields of another authorization type are cleared."""

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
        for name in webhook_secrets.WEBHOOK_SECRETS:
            self.initial[name] = ""
            if self.instance.pk and getattr(self.instance, name):
                self.fields[name].widget.attrs["placeholder"] = MASK

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        stored = Webhook.objects.get(pk=self.instance.pk) if self.instance.pk else None
        for name in webhook_secrets.webhook_unused_secrets(auth_type=cleaned.get("auth_type"),
                                                          certificate=cleaned.get("tls_client_certificate", "")):
            cleaned[name] = ""
        if cleaned.get("auth_type") != AuthType.BASIC:
            cleaned["auth_username"] = ""
        if cleaned.get("auth_type") != AuthType.OAUTH2:
            cleaned["oauth_token_url"] = cleaned["oauth_client_id"] = cleaned["oauth_scope"] = ""
        cleaned["oauth_client_auth"] = cleaned.get("oauth_client_auth") or OAuthClientAuth.BASIC
        unused = webhook_secrets.webhook_unused_secrets(auth_type=cleaned.get("auth_type"),
                                                        certificate=cleaned.get("tls_client_certificate", ""))
        for name in webhook_secrets.WEBHOOK_SECRETS:
            if cleaned.get(name) or stored is None or name in unused:
                continue
            cleaned[name] = getattr(stored, name)
            if cleaned[name] and (problem := webhook_secrets.webhook_secret_retarget_problem(
                    name=name, stored=stored, urls=cleaned)):
                self.add_error(name, problem)
        if self.errors:
            return cleaned
        candidate = Webhook(**{k: v for k, v in cleaned.items() if k in {f.name for f in Webhook._meta.fields}})
        for key, problems in webhook_checks.webhook_check_definition(webhook=candidate).items():
            self.add_error(key if key in self.fields else None, problems)
        return cleaned


class EntityParameterFormSet(SiblingAwareFormSet):
    def clean(self) -> None:
        super().clean()
        custom = self.siblings.get(CustomParameter)
        if any(self.errors) or custom is None or not custom.is_valid() or not self.instance.module_id:
            return
        problems = webhook_checks.webhook_check_parameters(
            webhook=self.instance,
            entity_parameters=[webhook_rows.Parameter(row["name"], row["value"]) for row in self.kept_rows()],
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
        if problem := webhook_secrets.webhook_retarget_problem(stored_url=stored_url, url=webhook.url, kept=kept):
            raise ValidationError(problem)


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
        problems = webhook_checks.webhook_check_headers(
            webhook=webhook, headers=[webhook_rows.Header(r["name"], r["value"], r["is_secret"]) for r in rows])
        kept = [f"the value of header “{form.cleaned_data['name']}”" for form in self.kept_forms()
                if getattr(form, "kept_stored_value", False) and form.cleaned_data.get("is_secret")]
        if webhook.pk and kept:
            stored_url = Webhook.objects.values_list("url", flat=True).get(pk=webhook.pk)
            if problem := webhook_secrets.webhook_retarget_problem(stored_url=stored_url, url=webhook.url, kept=kept):
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
