"""The Record editor group: adds and changes CRM records in the admin (a rule's test is adding a deal, seed
003), with the record form; deleting records stays with superusers. Permissions are data, editable later.
Integration admins and auditors are unchanged: configuring webhooks and rules does not include changing
the organization's data, and "Run on existing records" still refuses a rule whose captures would write
records for someone who may not (workflows.admin)."""
from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP = "Record editor"
GRANTS = {"record": ["add", "change", "view"], "module": ["view"], "field": ["view"]}


def grant(apps, schema_editor):
    app_config = apps.get_app_config("crm")
    app_config.models_module = True  # create_permissions skips apps it thinks have no models
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=GROUP)
    codenames = [f"{action}_{model}" for model, actions in GRANTS.items() for action in actions]
    group.permissions.add(*Permission.objects.filter(content_type__app_label="crm", codename__in=codenames))


def remove(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("crm", "0010_api_throttle_windows"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(grant, remove)]
