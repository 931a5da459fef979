from django.db import migrations


def update(apps, schema_editor):
    apps.get_model("crm", "Edition").objects.filter(code="vtiger-one-professional").update(instant_webhooks_per_rule=3)


class Migration(migrations.Migration):
    dependencies = [("crm", "0005_instant_webhooks")]
    operations = [migrations.RunPython(update, migrations.RunPython.noop)]
