"""The retry profiles of seed 003 (Zoho) and seed 004 (Vtiger), as data admins can change."""
from django.db import migrations


def create(apps, schema_editor):
    RetryPolicy = apps.get_model("dispatcher", "RetryPolicy")
    RetryPolicy.objects.update_or_create(code="zoho", defaults={
        "name": "Zoho: one retry after 15 minutes", "delays": [900]})
    RetryPolicy.objects.update_or_create(code="vtiger", defaults={
        "name": "Vtiger: retries after 1 h, 2 h and 4 h", "delays": [3600, 7200, 14400]})


class Migration(migrations.Migration):
    dependencies = [("dispatcher", "0002_deliveries")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
