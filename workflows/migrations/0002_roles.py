"""The Auditor and Integration admin groups (seed 004's roles): permissions are data, editable later."""
from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = ["view"]
ALL = ["add", "change", "delete", "view"]
AUDITOR = {
    "crm": {"edition": READ, "organization": READ, "crmuser": READ, "module": READ, "field": READ, "record": READ},
    "dispatcher": {"webhook": READ, "entityparameter": READ, "customparameter": READ, "capture": READ,
                   "retrypolicy": READ, "delivery": READ, "attempt": READ, "dailyusage": READ},
    "workflows": {"workflowrule": READ, "condition": READ, "action": READ, "actionrun": READ},
}
INTEGRATION_ADMIN = {
    "crm": {"edition": READ, "organization": READ, "crmuser": READ, "module": READ, "field": READ, "record": READ},
    "dispatcher": {"webhook": ALL, "entityparameter": ALL, "customparameter": ALL, "capture": ALL,
                   "retrypolicy": ALL, "delivery": READ + ["resend"], "attempt": READ, "dailyusage": READ},
    "workflows": {"workflowrule": ALL, "condition": ALL, "action": ALL, "actionrun": READ},
}


def create(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True  # create_permissions skips apps it thinks have no models
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, grants in (("Auditor", AUDITOR), ("Integration admin", INTEGRATION_ADMIN)):
        group, _ = Group.objects.get_or_create(name=name)
        for app_label, models in grants.items():
            for model, actions in models.items():
                codenames = [f"{action}_{model}" if action != "resend" else "resend_delivery" for action in actions]
                group.permissions.add(*Permission.objects.filter(content_type__app_label=app_label,
                                                                 codename__in=codenames))


class Migration(migrations.Migration):
    dependencies = [
        ("workflows", "0001_initial"),
        ("dispatcher", "0006_resend_permission"),
        ("crm", "0006_vtiger_instant"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
