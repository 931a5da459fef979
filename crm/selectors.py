"""Reads of CRM data shared by the dispatcher and the admin."""
from dataclasses import dataclass, field as dataclass_field
from typing import Any

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform

from crm.field_types import id_of, kind_of
from crm.models import CrmUser, Field, Module, Record
from crm.standard_modules import STANDARD_MODULES


def records_related(*, record: Record, via_field: Field, limit: int) -> list[Record]:
    """Records of via_field's module whose lookup via_field points at record, oldest first."""
    return list(
        Record.objects.filter(module=via_field.module, **{f"values__{via_field.api_name}": record.pk})
        .select_related("owner", "module")
        .order_by("id")[:limit]
    )


def module_record_fields(*, module: Module) -> list[Field]:
    """The fields a record form shows: the module's own, usable ones, in their order (the id, owner and
    timestamps are columns of the record, and a deleted or disabled field cannot be set)."""
    return list(Field.objects.usable().filter(module=module, is_system=False).select_related("lookup_module")
                .order_by("position", "id"))


def standard_modules_unsaved() -> list[tuple[Module, list[Field]]]:
    """The standard modules with their own fields, as every new organization gets them, as unsaved objects:
    what the generated documentation describes, without a database or an organization."""
    modules = {spec.api_name: Module(api_name=spec.api_name, singular_label=spec.singular, aliases=spec.aliases,
                                     name_field=spec.name_field, supports_webhooks=spec.supports_webhooks)
               for spec in STANDARD_MODULES}
    return [(modules[spec.api_name], [
        Field(module=modules[spec.api_name], label=f.label, api_name=f.api_name, field_type=f.field_type,
              lookup_module=modules[f.lookup] if f.lookup else None, picklist_values=list(f.picklist),
              is_required=f.required, position=position)
        for position, f in enumerate(spec.fields, start=10)]) for spec in STANDARD_MODULES]


def records_found(*, module: Module, term: str, offset: int, limit: int) -> list[Record]:
    """Records of a module whose name contains term, or whose id it is (``12`` or ``#12``), by name: what a
    lookup input's search box lists."""
    records = Record.objects.filter(module=module).select_related("module")
    order = ["id"]
    if module.name_field:
        records = records.annotate(shown_name=KeyTextTransform(module.name_field, "values"))
        order = ["shown_name", "id"]
    term = term.replace("\x00", "") if term else term  # PostgreSQL refuses NUL in a query
    if term:
        match = Q(shown_name__icontains=term) if module.name_field else Q(pk__in=[])
        if pk := id_of(term.removeprefix("#")):
            match |= Q(pk=pk)
        records = records.filter(match)
    return list(records.order_by(*order)[offset:offset + limit])


@dataclass
class _ShownValues:
    """What rendering values needs (crm.field_types.RenderContext), with the linked records and users of
    one record loaded in two queries."""

    date_format: str
    datetime_format: str
    time_zone: str
    records: dict[int, Record] = dataclass_field(default_factory=dict)
    users: dict[int, CrmUser] = dataclass_field(default_factory=dict)

    def record_of(self, pk: Any) -> Record | None:
        return self.records.get(id_of(pk) or 0)

    def user_of(self, pk: Any) -> CrmUser | None:
        return self.users.get(id_of(pk) or 0)


def record_values_shown(*, record: Record) -> list[tuple[str, str]]:
    """A record's values as a person reads them, by field label (the view-only record page): as merge
    fields give them, in the organization's formats, lookups and users by name."""
    organization = record.module.organization
    fields = module_record_fields(module=record.module)
    linked = [id_of(record.values.get(f.api_name)) or 0 for f in fields]
    context = _ShownValues(organization.date_format, organization.datetime_format, organization.time_zone,
                           Record.objects.select_related("module").filter(module__organization=organization)
                           .in_bulk(linked), CrmUser.objects.filter(organization=organization).in_bulk(linked))
    rows = []
    for field in fields:
        raw = record.values.get(field.api_name)
        shown = None if raw is None else kind_of(field).render(raw, context)
        if isinstance(shown, bool):
            shown = "yes" if shown else "no"
        elif shown is None and raw is not None:
            shown = f"#{raw} (no longer there)"
        rows.append((field.label, "-" if shown is None else str(shown)))
    return rows
