"""Every field an admin sees explains itself, as django-celery-beat's do."""
from django.contrib import admin


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
