"""Reads for the webhook admin and CLI."""
from crm.models import Module, Record
from dispatcher.models import Webhook
from dispatcher.rendering.merge import ORGANIZATION_FIELDS, USER_FIELDS, schema_for


def merge_fields_available(*, module: Module) -> list[tuple[str, list[str]]]:
    """The merge fields a webhook on this module can use, grouped as the admin shows them."""
    schema = schema_for(module)
    groups = [(module.api_name, [f"${{{module.api_name}.{f.label}}}" for f in schema.fields(module) if f.is_usable])]
    seen = {module.pk}
    for lookup in schema.fields(module):
        target = lookup.lookup_module
        if lookup.kind.links_records and lookup.is_usable and target is not None and target.pk not in seen:
            seen.add(target.pk)
            tokens = [f"${{{target.api_name}.{f.label}}}" for f in schema.fields(target) if f.is_usable]
            groups.append((f"{target.api_name} (through “{lookup.label}”)", tokens))
    for candidate in Module.objects.filter(organization_id=module.organization_id).exclude(pk__in=seen):
        backlinks = [
            f for f in schema.fields(candidate)
            if f.kind.links_records and f.lookup_module_id == module.pk and f.is_usable
        ]
        if backlinks:
            tokens = [f"${{{candidate.api_name}.{f.label}}}" for f in schema.fields(candidate) if f.is_usable]
            groups.append((f"{candidate.api_name} (related records, as an array)", tokens))
    groups.append(("User (record owner)", [f"${{User.{label}}}" for label in USER_FIELDS]))
    groups.append(("Organization", [f"${{Organization.{label}}}" for label in ORGANIZATION_FIELDS]))
    return groups


def webhook_find(*, reference: str) -> Webhook:
    """A webhook by id or by name (names are unique per organization, so a name may be ambiguous)."""
    queryset = Webhook.objects.select_related("organization", "module")
    if reference.isdigit():
        if (webhook := queryset.filter(pk=int(reference)).first()) is None:
            raise Webhook.DoesNotExist(f"No webhook with id {reference}.")
        return webhook
    matches = list(queryset.filter(name=reference)[:2])
    if len(matches) != 1:
        raise Webhook.DoesNotExist(
            f"No webhook named “{reference}”." if not matches else f"Several webhooks are named “{reference}”; use the id."
        )
    return matches[0]


def records_for_preview(*, webhook: Webhook, limit: int = 100) -> list[Record]:
    return list(Record.objects.filter(module=webhook.module).select_related("module", "owner").order_by("-id")[:limit])
