"""A run whose delivery was made is "Delivery queued", not "Sent to the outbox": the delivery table is the
queue and the log (issue 28). Labels and help text only; the stored value stays "enqueued"."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('workflows', '0007_roles_custom_headers'),
    ]

    operations = [
        migrations.AlterField(
            model_name='actionrun',
            name='status',
            field=models.CharField(choices=[('scheduled', 'Scheduled'), ('running', 'Running'), ('enqueued', 'Delivery queued'), ('cancelled', 'Cancelled'), ('skipped', 'Skipped')], default='scheduled', help_text='Scheduled, running, delivery queued (its delivery is in the log), cancelled or skipped.', max_length=20, verbose_name='status'),
        ),
    ]
