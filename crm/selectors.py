"""Reads of CRM data shared by the dispatcher and the admin."""
from crm.models import Field, Record


def records_related(*, record: Record, via_field: Field, limit: int) -> list[Record]:
    """Records of via_field's module whose lookup via_field points at record, oldest first."""
    return list(
        Record.objects.filter(module=via_field.module, **{f"values__{via_field.api_name}": record.pk})
        .select_related("owner", "module")
        .order_by("id")[:limit]
    )
