"""Reads for the webhook admin, the CLI and the API."""
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from crm.field_types import kind_of
from crm.models import Field, Module, Organization, Record
from dispatcher.senders.channels import channel_events_clean
from dispatcher.senders.event_types import EventType, event_type_pick, event_types_of
from dispatcher.models import Channel, Delivery, Endpoint, Webhook
from dispatcher.models.delivery_filters import DeliveryFilters, deliveries_filter
from dispatcher.models.endpoints import destination_of
from dispatcher.rendering.merge import ORGANIZATION_FIELDS, USER_FIELDS, schema_for


def merge_fields_available(*, module: Module) -> list[tuple[str, list[str]]]:
    """The merge fields a webhook on this module can use, grouped as the admin shows them."""
    schema = schema_for(module)
    groups = [(module.api_name, [f"${{{module.api_name}.{f.label}}}" for f in schema.fields(module) if f.is_usable])]
    seen = {module.pk}
    for lookup in schema.fields(module):
        target = lookup.lookup_module
        if kind_of(lookup).links_records and lookup.is_usable and target is not None and target.pk not in seen:
            seen.add(target.pk)
            tokens = [f"${{{target.api_name}.{f.label}}}" for f in schema.fields(target) if f.is_usable]
            groups.append((f"{target.api_name} (through “{lookup.label}”)", tokens))
    for candidate in Module.objects.filter(organization_id=module.organization_id).exclude(pk__in=seen):
        backlinks = [
            f for f in schema.fields(candidate)
            if kind_of(f).links_records and f.lookup_module_id == module.pk and f.is_usable
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


def deliveries_list(*, organization: Organization | int | None, filters: DeliveryFilters) -> QuerySet[Delivery]:
    """The delivery log as the REST API, the admin's list and its CSV export show it: the organization's
    deliveries (an Organization or its id) narrowed by filters, newest first, each with its channel.

    organization None is every organization's: the admin, whose queryset is then scoped to the login
    (config.admin_base.scoped); a superuser's organization filter is the organization given here. Which
    admin filter and which API parameter is which field of DeliveryFilters: see its docstring. The
    request columns, large, are left out until read (the request is shown on one delivery's page only)."""
    deliveries = Delivery.objects.all() if organization is None else Delivery.objects.filter(organization=organization)
    return deliveries_filter(deliveries, filters).select_related("channel").defer(
        "request_sealed", "request_display").order_by("-pk")


def channels_list(*, organization: Organization | int) -> QuerySet[Channel]:
    return Channel.objects.filter(organization=organization)


def channel_endpoint(*, channel: Channel) -> Endpoint | None:
    """The endpoint of the channel's notify URL (its health), once a notification went there."""
    return Endpoint.objects.filter(organization_id=channel.organization_id,
                                   destination=destination_of(channel.notify_url)).first()


def webhooks_list(*, organization: Organization | int) -> QuerySet[Webhook]:
    return Webhook.objects.filter(organization=organization).select_related("module", "retry_policy")


def records_for_preview(*, webhook: Webhook, limit: int = 100) -> list[Record]:
    return list(Record.objects.filter(module=webhook.module).select_related("module", "owner").order_by("-id")[:limit])


def event_types_list(*, organization: Organization, module: str | None = None) -> list[EventType]:
    """The organization's event catalogue (dispatcher/senders/event_types.py), its modules by API name; with module
    (an API name or alias, in any case, as channels take them), that module's events only."""
    modules = list(Module.objects.filter(organization=organization).order_by("api_name"))
    if module is not None:
        modules = [_subscribable_module(modules, module)]
    fields: dict[int, list[Field]] = {}
    for field in Field.objects.usable().filter(module__in=modules, is_system=False).select_related(
            "lookup_module").order_by("position", "id"):
        fields.setdefault(field.module_id, []).append(field)
    return event_types_of(modules=[(m, fields.get(m.pk, [])) for m in modules])


def event_type_find(*, organization: Organization, name: str) -> EventType:
    """One event of the catalogue by the name a channel would list (any case, aliases, update for edit);
    ValidationError says why there is none."""
    [canonical] = channel_events_clean(organization=organization, events=[name])
    return event_type_pick(event_types_list(organization=organization, module=canonical.split(".", 1)[0]), canonical)


def _subscribable_module(modules: list[Module], name: str) -> Module:
    lowered = name.lower()
    found = next((m for m in modules if lowered in {n.lower() for n in m.merge_names}), None)
    if found is None:
        raise ValidationError(f"There is no module “{name}”.")
    if not found.supports_webhooks:
        raise ValidationError(f"{found.api_name} records cannot be subscribed to.")
    return found
