"""Channels and endpoints for the Auditor (read) and Integration admin (manage) groups."""
from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Auditor": {"channel": ["view"], "endpoint": ["view"]},
    "Integration admin": {"channel": ["change", "delete", "view"], "endpoint": ["change", "delete", "view"]},
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("dispatcher")
    app_config.models_module = True  # create_permissions skips apps it thinks have no models
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, models in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        codenames = [f"{action}_{model}" for model, actions in models.items() for action in actions]
        group.permissions.add(*Permission.objects.filter(content_type__app_label="dispatcher", codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0002_roles"),
        ("dispatcher", "0009_channels_endpoints_metrics"),
    ]
    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
