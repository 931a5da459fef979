"""The catalogue of events a channel can subscribe to, each with the JSON Schema of its notification
(dispatcher.selectors reads it from the organization's modules and fields)."""
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Query, Router, Schema
from pydantic import Field

from crm.api.auth import ApiRequest, key_auth
from crm.api.envelopes import Answer
from crm.api.errors import COMMON_ERRORS, ApiError
from crm.models import ApiScope
from dispatcher import selectors
from dispatcher.senders.event_types import EventType

event_types_router = Router(tags=["event types"])
CHANNELS = key_auth(ApiScope.CHANNELS)


class EventTypeOut(Schema):
    name: str = Field(description="What a channel lists in its events, e.g. Deals.edit or Deals.Stage.change.")
    module: str = Field(description="The module's API name.")
    operation: str = Field(description="create, edit, delete or all; a field-change event is an edit.")
    field: str | None = Field(description="For a field-change event, the field's API name; else null.")
    description: str = Field(description="When a channel listing this event is notified.")
    payload_schema: dict[str, Any] = Field(description="The JSON Schema (draft 2020-12) of the notification's "
                                           "JSON body.")


class EventTypeFilters(Schema):
    module: str | None = Field(None, description="Only this module's events: its API name or an alias, in any "
                               "case (Deals, potentials).")


def event_type_data(event_type: EventType) -> dict[str, Any]:
    return {"name": event_type.name, "module": event_type.module, "operation": event_type.operation,
            "field": event_type.field, "description": event_type.description,
            "payload_schema": event_type.payload_schema}


@event_types_router.get("/", response={200: Answer[list[EventTypeOut]], **COMMON_ERRORS}, auth=CHANNELS,
                        summary="List the events channels can subscribe to")
def event_types_list(request: ApiRequest, filters: Query[EventTypeFilters]):
    """Every event of the organization's modules (create, edit, delete, all, and a change event per field),
    each with the JSON Schema of the notification a channel receives for it; ``module`` (an API name or
    alias) narrows the list to one module. Not paged: the catalogue follows the modules' fields."""
    try:
        found = selectors.event_types_list(organization=request.auth.organization, module=filters.module)
    except ValidationError as error:
        raise ApiError(400, "invalid_fields", "Some values are not valid: module.",
                       fields={"module": error.messages}) from None
    return {"data": [event_type_data(event_type) for event_type in found]}


@event_types_router.get("/{event_type}/", response={200: Answer[EventTypeOut], **COMMON_ERRORS}, auth=CHANNELS,
                        summary="Read one event type with its payload schema")
def event_type_read(request: ApiRequest, event_type: str):
    """By the name a channel lists it by (any case, a module alias, ``update`` for ``edit``); the answer
    spells it canonically."""
    try:
        found = selectors.event_type_find(organization=request.auth.organization, name=event_type)
    except ValidationError as error:
        raise ApiError(404, "not_found", " ".join(error.messages)) from None
    return {"data": event_type_data(found)}
