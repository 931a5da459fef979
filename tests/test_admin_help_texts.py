"""Every field an admin sees explains itself, as django-celery-beat's do, in words that read as written."""
import re

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils.safestring import SafeString

from dispatcher.models import RetryPolicy
from tests.docs.pages import page as docs_page


def test_every_field_an_admin_sees_says_what_it_is_for():
    ours = {"crm", "dispatcher", "workflows"}
    models = set()
    for model, model_admin in admin.site._registry.items():
        models.add(model)
        models.update(inline.model for inline in model_admin.inlines)
    missing = sorted(f"{model._meta.label}.{field.name}" for model in models if model._meta.app_label in ours
                     for field in model._meta.get_fields()
                     if getattr(field, "concrete", False) and not field.auto_created and not field.help_text)
    assert missing == []


def _shown_help_texts() -> dict[str, str]:
    """Every help text the admin shows: of the fields of the models it edits (and their inlines), and of the
    fields its forms declare themselves."""
    ours = {"crm", "dispatcher", "workflows"}
    texts: dict[str, str] = {}
    for model, model_admin in admin.site._registry.items():
        for owner in [model_admin, *(inline(model, admin.site) for inline in model_admin.inlines)]:
            if owner.model._meta.app_label not in ours:
                continue
            for field in owner.model._meta.get_fields():
                if getattr(field, "help_text", ""):
                    texts[f"{owner.model._meta.label}.{field.name}"] = field.help_text
            for name, field in getattr(owner.form, "declared_fields", {}).items():
                if field.help_text:
                    texts[f"{owner.form.__module__}.{owner.form.__name__}.{name}"] = field.help_text
    return texts


def test_help_texts_read_on_the_page_as_written():
    """The admin puts help texts into the page as HTML: "Bearer <token>" showed as "Bearer ." (issue 26)."""
    texts = _shown_help_texts()
    assert "crm.Record.created_at" in texts and "dispatcher.admin.webhook_forms.WebhookForm.auth_token" in texts
    marked_up = {name: str(text) for name, text in texts.items()
                 if not isinstance(text, SafeString) and re.search(r"[<>]", str(text))}
    assert marked_up == {}


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def test_the_bearer_token_help_reads_in_full(admin_client):
    page = admin_client.get(reverse("admin:dispatcher_webhook_add")).content.decode()
    assert "Sent as the header “Authorization: Bearer” followed by this token." in page


def test_the_standard_webhooks_schedule_is_described_as_long_as_it_is(admin_client):
    """The webhooks page of the docs and the retry-policy page: 8 attempts over 27.6 hours, not "about 3 days"."""
    standard = RetryPolicy.objects.get(code=RetryPolicy.STANDARD)
    hours = sum(standard.delays) / 3600
    page = admin_client.get(reverse("admin:dispatcher_retrypolicy_change", args=[standard.pk])).content.decode()
    assert f"{len(standard.delays) + 1} attempts over {hours:.1f} hours" in page
    assert "3 days" not in page
    assert f"{len(standard.delays) + 1} attempts over {hours:.1f} hours" in docs_page("use/webhooks.md")
