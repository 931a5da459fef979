"""Signal wiring of the CRM app, in one place."""
from django.db.models.signals import post_delete, post_save

from crm.models import Field, Module, schema_changed


def _module_written(sender, instance: Module, **kwargs) -> None:
    schema_changed([instance.organization_id])


def _field_written(sender, instance: Field, **kwargs) -> None:
    # By module id: when a module is deleted its fields go first, and instance.module is gone by then.
    schema_changed(Module.objects.filter(pk=instance.module_id).values_list("organization_id", flat=True))


def connect() -> None:
    for signal in (post_save, post_delete):
        signal.connect(_module_written, sender=Module, dispatch_uid=f"crm.module.{signal}")
        signal.connect(_field_written, sender=Field, dispatch_uid=f"crm.field.{signal}")
