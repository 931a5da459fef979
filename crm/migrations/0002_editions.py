"""The editions of seed 003 (Zoho) and 004 (Vtiger), as data admins can change."""
from django.db import migrations

EDITIONS = [
    # code, name, webhooks, daily limit, per licence, per rule
    ("free", "Free Edition", False, 0, 0, 0),
    ("professional", "Professional Edition", True, 10_000, 100, 6),
    ("enterprise", "Enterprise Edition", True, 20_000, 500, 6),
    ("vtiger-one-professional", "Vtiger One Professional", True, 10_000, 100, 3),
]


def create(apps, schema_editor):
    Edition = apps.get_model("crm", "Edition")
    for code, name, enabled, daily, per_licence, per_rule in EDITIONS:
        Edition.objects.update_or_create(code=code, defaults={
            "name": name, "webhooks_enabled": enabled, "daily_call_limit": daily,
            "calls_per_licence": per_licence, "webhooks_per_rule": per_rule,
        })


class Migration(migrations.Migration):
    dependencies = [("crm", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
