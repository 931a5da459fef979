"""Custom headers (issue 26) for the roles: Integration admins manage them, Auditors view them (a secret
header's value is shown masked). Without them the "Custom headers" inline was absent for both roles."""
from django.contrib.auth.management import create_permissions
from django.db import migrations

GRANTS = {
    "Auditor": ["view"],
    "Integration admin": ["add", "change", "delete", "view"],
}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("dispatcher")
    app_config.models_module = True  # create_permissions skips apps it thinks have no models
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, actions in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(
            content_type__app_label="dispatcher", codename__in=[f"{action}_webhookheader" for action in actions]))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    headers = Permission.objects.filter(content_type__app_label="dispatcher", codename__endswith="_webhookheader")
    for group in Group.objects.filter(name__in=GRANTS):
        group.permissions.remove(*headers)


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0006_config_import_jobs"),
        ("dispatcher", "0012_receiver_auth_rotation"),
    ]
    operations = [migrations.RunPython(grant, revoke)]
