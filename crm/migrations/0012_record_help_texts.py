# Help texts that read as written in the admin (issue 26): "${<Module>.Created Time}" lost its "<Module>" as a tag.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('crm', '0011_record_editor_role'),
    ]

    operations = [
        migrations.AlterField(
            model_name='record',
            name='created_at',
            field=models.DateTimeField(auto_now_add=True, help_text='The merge field ${Module.Created Time}, e.g. ${Deals.Created Time}.', verbose_name='created'),
        ),
        migrations.AlterField(
            model_name='record',
            name='modified_at',
            field=models.DateTimeField(auto_now=True, help_text='The merge field ${Module.Modified Time}; set on every change.', verbose_name='modified'),
        ),
    ]
