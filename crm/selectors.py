"""Reads of CRM data shared by the dispatcher and the admin."""
from collections.abc import Iterable

from crm.models import Field, FieldType, Module, Record


def module_lookup_fields(*, module: Module) -> list[Field]:
    """Usable lookup fields of a module, each pointing to the module of a to-one related record."""
    return list(module.fields.usable().filter(field_type=FieldType.LOOKUP).select_related("lookup_module"))


def module_related_fields(*, module: Module) -> list[Field]:
    """Usable lookup fields of other modules that point at this module (a Contact's Deals)."""
    return list(
        Field.objects.usable()
        .filter(field_type=FieldType.LOOKUP, lookup_module=module)
        .exclude(module=module)
        .select_related("module")
        .order_by("module__api_name", "position", "id")
    )


def records_by_ids(*, ids: Iterable[int]) -> dict[int, Record]:
    return {record.pk: record for record in Record.objects.filter(pk__in=set(ids)).select_related("module")}


def records_related(*, record: Record, via_field: Field, limit: int) -> list[Record]:
    """Records of via_field's module whose lookup via_field points at record, oldest first."""
    return list(
        Record.objects.filter(module=via_field.module, **{f"values__{via_field.api_name}": record.pk})
        .select_related("owner", "module")
        .order_by("id")[:limit]
    )
