"""REST API of the dispatcher, as django-ninja routers: event subscriptions (channels) and the catalogue of
the events they can list, the delivery log (list, one delivery with its attempts, resend, recover), usage per
day, and webhooks (read-only).

Views stay thin: dispatcher.senders.channels, dispatcher.delivery and dispatcher.selectors do the work; what an
auditor sees here is what the admin shows (requests and answers masked when they were stored).
"""
import datetime
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from ninja import Body, Query, Router, Schema
from pydantic import ConfigDict, Field

from crm.api.auth import ApiRequest, key_auth
from crm.api.errors import COMMON_ERRORS, POST_ERRORS, ApiError, invalid_fields
from crm.api.idempotency import idempotent
from crm.api.pagination import page
from crm.api.params import DATETIME_DESCRIPTION, datetime_param
from crm.api.parser import json_body
from crm.models import ApiKey, ApiScope
from dispatcher import selectors
from dispatcher.senders import channels
from dispatcher.senders import secret_rotation
from dispatcher.delivery import deliveries_resend
from dispatcher.senders.event_types import EventType
from dispatcher.models import Attempt, Channel, Delivery, DeliverySource, DeliveryStatus, Webhook
from dispatcher.models.endpoints import Endpoint, destination_of
from dispatcher.ops.usage import usage_last_days

CREATE_KEYS = {"events", "notify_url", "token", "fields", "expiry_time", "channel_id", "verify"}
UPDATE_KEYS = {"events", "notify_url", "token", "fields", "active", "verify"}
RECOVER_MAX = 10_000  # deliveries one recover call queues again

channels_router = Router(tags=["channels"])
event_types_router = Router(tags=["event types"])
deliveries_router = Router(tags=["deliveries"])
webhooks_router = Router(tags=["webhooks"])
CHANNELS = key_auth(ApiScope.CHANNELS)
DELIVERIES_READ, DELIVERIES_REPLAY = key_auth(ApiScope.DELIVERIES_READ), key_auth(ApiScope.DELIVERIES_REPLAY)
CONFIG = key_auth(ApiScope.CONFIG)


# --- channels ---------------------------------------------------------------------------------------------
class EndpointHealth(Schema):
    disabled: bool
    disabled_reason: str
    consecutive_failures: int


class ChannelOut(Schema):
    id: str
    events: list[str]
    notify_url: str
    fields: list[str]
    token_set: bool
    expiry_time: str
    status: str
    verified: bool
    endpoint: EndpointHealth
    previous_secret_expiry_time: str | None
    created_time: str
    modified_time: str


class ChannelWithSecret(ChannelOut):
    signing_secret: str = Field(description="Receivers verify signatures with it; shown only in this answer.")


class ChannelAnswer(Schema):
    data: ChannelOut


class ChannelSecretAnswer(Schema):
    data: ChannelWithSecret


class ChannelPage(Schema):
    data: list[ChannelOut]
    next_cursor: str | None


class ChannelCreate(Schema):
    """A new subscription (seed 002); unknown keys are refused."""

    events: Any = Field(None, description="Event names such as Deals.create, Deals.edit, Deals.Stage.change; "
                        "required.")
    notify_url: Any = Field(None, description="http or https URL, ports 80 and 443; required.")
    token: Any = Field(None, description="Echoed in every notification.")
    fields: Any = Field(None, description="API names; edits notify only if one of them changed.")
    expiry_time: Any = Field(None, description="ISO 8601; default CHANNEL_DEFAULT_EXPIRY_HOURS from now.")
    channel_id: Any = Field(None, description="Your own id for the channel; generated when missing.")
    verify: Any = Field(None, description="true: the notify URL must echo a signed challenge first.")


class ChannelChange(Schema):
    events: Any = None
    notify_url: Any = None
    token: Any = None
    fields: Any = None
    active: Any = None
    verify: Any = None


class ChannelRenewal(Schema):
    expiry_time: Any = Field(None, description="ISO 8601; default CHANNEL_DEFAULT_EXPIRY_HOURS from now.")


class ChannelDeleted(Schema):
    id: str
    deleted: bool


class ChannelDeletedAnswer(Schema):
    data: ChannelDeleted


class Paging(Schema):
    cursor: str | None = None
    limit: int | None = None


def channel_data(channel: Channel, *, with_secret: bool = False) -> dict[str, Any]:
    endpoint = Endpoint.objects.filter(organization_id=channel.organization_id,
                                       destination=destination_of(channel.notify_url)).first()
    data = {
        "id": channel.public_id,
        "events": channel.events,
        "notify_url": channel.notify_url,
        "fields": channel.fields,
        "token_set": bool(channel.token),
        "expiry_time": channel.expires_at.isoformat(),
        "status": channels.channel_status(channel),
        "verified": channel.verified_at is not None,
        "endpoint": {
            "disabled": bool(endpoint and endpoint.is_disabled),
            "disabled_reason": endpoint.disabled_reason if endpoint else "",
            "consecutive_failures": endpoint.consecutive_failures if endpoint else 0,
        },
        "previous_secret_expiry_time": (channel.previous_secret_expires_at.isoformat()
                                        if channel.previous_signing_secret else None),
        "created_time": channel.created_at.isoformat(),
        "modified_time": channel.modified_at.isoformat(),
    }
    if with_secret:  # shown once, when the channel is made or rotated: receivers verify signatures with it
        data["signing_secret"] = channel.signing_secret
    return data


def _body_doc(schema: type[Schema], required: bool = True) -> dict:
    """The request body of an operation that reads a JSON object itself (its keys checked by _given)."""
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": {**schema.model_json_schema(), "additionalProperties": False}}}}}


def _given(data: Any, allowed: set[str]) -> dict[str, Any]:
    """The object the client sent; unknown keys refused."""
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_body", "Send a JSON object.")
    if unknown := sorted(set(data) - allowed):
        raise ApiError(400, "unknown_keys", f"Unknown keys: {', '.join(unknown)}.", allowed=sorted(allowed))
    return data


def _channel(key: ApiKey, channel_id: str) -> Channel:
    channel = None if "\x00" in channel_id else Channel.objects.filter(organization_id=key.organization_id,
                                                                         public_id=channel_id).first()
    if channel is None:
        raise ApiError(404, "not_found", f"There is no channel “{channel_id}”.")
    return channel


@channels_router.get("/", response={200: ChannelPage, **COMMON_ERRORS}, auth=CHANNELS, summary="List channels")
def channels_list(request: ApiRequest, paging: Query[Paging]):
    return page(Channel.objects.filter(organization_id=request.auth.organization_id), cursor=paging.cursor,
                limit=paging.limit, serialize=channel_data)


@channels_router.post("/", response={201: ChannelSecretAnswer, **POST_ERRORS}, auth=CHANNELS, summary="Subscribe",
                      openapi_extra=_body_doc(ChannelCreate))
def channel_create(request: ApiRequest, body: Body[dict[str, Any]]):
    """The answer holds the channel's signing_secret, shown only here."""
    data = _given(body, CREATE_KEYS)
    if "verify" in data and not isinstance(data["verify"], bool):
        raise ApiError(400, "invalid_fields", "Some values are not valid: verify.",
                       fields={"verify": ["Give true or false."]})
    key = request.auth

    def create() -> tuple[int, dict]:
        try:
            channel = channels.channel_create(
                organization=key.organization, owner=key.user, events=data.get("events"),
                notify_url=data.get("notify_url"), token=data.get("token") or "", fields=data.get("fields"),
                expiry_time=data.get("expiry_time"), channel_id=data.get("channel_id"),
                verify=data.get("verify") or False,
            )
        except ValidationError as error:
            raise invalid_fields(error) from None
        return 201, {"data": channel_data(channel, with_secret=True)}

    return idempotent(request, key, create)


@channels_router.get("/{channel_id}/", response={200: ChannelAnswer, **COMMON_ERRORS}, auth=CHANNELS,
                     summary="Read a channel")
def channel_read(request: ApiRequest, channel_id: str):
    return {"data": channel_data(_channel(request.auth, channel_id))}


@channels_router.patch("/{channel_id}/", response={200: ChannelAnswer, **COMMON_ERRORS}, auth=CHANNELS,
                       summary="Change a channel", openapi_extra=_body_doc(ChannelChange))
def channel_update(request: ApiRequest, channel_id: str, body: Body[dict[str, Any]]):
    channel = _channel(request.auth, channel_id)
    try:
        channel = channels.channel_update(channel=channel, data=_given(body, UPDATE_KEYS))
    except ValidationError as error:
        raise invalid_fields(error) from None
    return {"data": channel_data(channel)}


@channels_router.delete("/{channel_id}/", response={200: ChannelDeletedAnswer, **COMMON_ERRORS}, auth=CHANNELS,
                        summary="Unsubscribe")
def channel_delete(request: ApiRequest, channel_id: str):
    channels.channel_delete(channel=_channel(request.auth, channel_id))
    return {"data": {"id": channel_id, "deleted": True}}


@channels_router.post("/{channel_id}/renew/", response={200: ChannelAnswer, **POST_ERRORS}, auth=CHANNELS,
                      summary="Renew a channel", openapi_extra=_body_doc(ChannelRenewal, required=False))
def channel_renew(request: ApiRequest, channel_id: str):
    """The body is optional: without expiry_time, CHANNEL_DEFAULT_EXPIRY_HOURS from now."""
    channel = _channel(request.auth, channel_id)
    data = _given(json_body(request) if request.body else {}, {"expiry_time"})

    def renew() -> tuple[int, dict]:
        try:
            renewed = channels.channel_renew(channel=channel, expiry_time=data.get("expiry_time"))
        except ValidationError as error:
            if not hasattr(error, "error_dict"):
                raise ApiError(409, "channel_expired", error.messages[0]) from None
            raise invalid_fields(error) from None
        return 200, {"data": channel_data(renewed)}

    return idempotent(request, request.auth, renew)


@channels_router.post("/{channel_id}/rotate-secret/", response={200: ChannelSecretAnswer, **POST_ERRORS}, auth=CHANNELS,
                      summary="Rotate the signing secret")
def channel_secret_rotate(request: ApiRequest, channel_id: str):
    """A new signing secret, shown once; the old one keeps signing until previous_secret_expiry_time."""
    channel = _channel(request.auth, channel_id)

    def rotate() -> tuple[int, dict]:
        secret_rotation.signing_secret_rotate(sender=channel)
        return 200, {"data": channel_data(channel, with_secret=True)}

    return idempotent(request, request.auth, rotate)


@channels_router.delete("/{channel_id}/previous-secret/", response={200: ChannelAnswer, **COMMON_ERRORS},
                        auth=CHANNELS, summary="Stop signing with the previous secret")
def channel_previous_secret(request: ApiRequest, channel_id: str):
    channel = _channel(request.auth, channel_id)
    if not secret_rotation.signing_secret_expire_previous(sender=channel):
        raise ApiError(404, "not_found", "This channel has no previous signing secret.")
    return {"data": channel_data(channel)}


# --- event types ----------------------------------------------------------------------------------------
class EventTypeOut(Schema):
    name: str = Field(description="What a channel lists in its events, e.g. Deals.edit or Deals.Stage.change.")
    module: str = Field(description="The module's API name.")
    operation: str = Field(description="create, edit, delete or all; a field-change event is an edit.")
    field: str | None = Field(description="For a field-change event, the field's API name; else null.")
    description: str = Field(description="When a channel listing this event is notified.")
    payload_schema: dict[str, Any] = Field(description="The JSON Schema (draft 2020-12) of the notification's "
                                           "JSON body.")


class EventTypesAnswer(Schema):
    data: list[EventTypeOut]


class EventTypeFilters(Schema):
    module: str | None = Field(None, description="Only this module's events: its API name or an alias, in any "
                               "case (Deals, potentials).")


class EventTypeAnswer(Schema):
    data: EventTypeOut


def event_type_data(event_type: EventType) -> dict[str, Any]:
    return {"name": event_type.name, "module": event_type.module, "operation": event_type.operation,
            "field": event_type.field, "description": event_type.description,
            "payload_schema": event_type.payload_schema}


@event_types_router.get("/", response={200: EventTypesAnswer, **COMMON_ERRORS}, auth=CHANNELS,
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


@event_types_router.get("/{event_type}/", response={200: EventTypeAnswer, **COMMON_ERRORS}, auth=CHANNELS,
                        summary="Read one event type with its payload schema")
def event_type_read(request: ApiRequest, event_type: str):
    """By the name a channel lists it by (any case, a module alias, ``update`` for ``edit``); the answer
    spells it canonically."""
    try:
        found = selectors.event_type_find(organization=request.auth.organization, name=event_type)
    except ValidationError as error:
        raise ApiError(404, "not_found", " ".join(error.messages)) from None
    return {"data": event_type_data(found)}


# --- deliveries -----------------------------------------------------------------------------------------
class AttemptOut(Schema):
    number: int
    started_time: str
    duration_ms: int | None
    status_code: int | None
    error_class: str
    error_message: str
    outcome: str
    response_headers: dict[str, Any]
    response_body: str = Field(description="Masked, at most 64 KB.")
    response_truncated: bool
    captured: dict[str, Any] | None


class DeliveryOut(Schema):
    id: str = Field(description="The delivery id, sent as the webhook-id header (msg_…).")
    webhook: int | None
    webhook_name: str
    channel: str | None
    record: int | None
    record_ref: str
    source: str
    trigger: str
    status: str
    status_reason: str
    attempt_count: int
    last_status_code: int | None
    last_error_class: str
    next_attempt_time: str | None
    created_time: str
    finished_time: str | None
    resent_by: str
    resent_time: str | None


class DeliveryDetail(DeliveryOut):
    request: str = Field(description="The request as sent, secrets masked (empty before the first attempt).")
    attempts: list[AttemptOut]


class DeliveryPage(Schema):
    data: list[DeliveryOut]
    next_cursor: str | None


class DeliveryAnswer(Schema):
    data: DeliveryDetail


class DeliveryFilters(Schema):
    cursor: str | None = None
    limit: int | None = None
    status: list[DeliveryStatus] = []
    webhook: int | None = None
    channel: str | None = None
    record: int | None = None
    source: DeliverySource | None = None
    error_class: str | None = None
    created_after: str | None = Field(None, description=DATETIME_DESCRIPTION)
    created_before: str | None = Field(None, description=DATETIME_DESCRIPTION)


class Recover(Schema):
    """Every failed delivery of one webhook or channel since a time, queued again with its delivery id."""

    webhook: int | None = None
    channel: str | None = None
    since: str = Field(description=f"Deliveries created at or after it. {DATETIME_DESCRIPTION}")
    until: str | None = Field(None, description=f"Deliveries created before it; default now. {DATETIME_DESCRIPTION}")
    model_config = ConfigDict(extra="forbid")


class Recovered(Schema):
    queued: int
    ids: list[str]


class RecoveredAnswer(Schema):
    data: Recovered


class Resent(Schema):
    data: DeliveryDetail


class UsageDays(Schema):
    labels: list[str]
    totals: list[int]
    by_source: dict[str, list[int]]
    by_outcome: dict[str, list[int]]
    quota: int


class UsageAnswer(Schema):
    data: UsageDays


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def delivery_data(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.message_id, "webhook": delivery.webhook_id, "webhook_name": delivery.webhook_name,
        "channel": delivery.channel.public_id if delivery.channel is not None else None, "record": delivery.record_id,
        "record_ref": delivery.record_ref, "source": delivery.source, "trigger": delivery.trigger,
        "status": delivery.status, "status_reason": delivery.status_reason, "attempt_count": delivery.attempt_count,
        "last_status_code": delivery.last_status_code, "last_error_class": delivery.last_error_class,
        "next_attempt_time": _iso(delivery.due_at) if delivery.status not in (DeliveryStatus.SUCCESS,
                                                                             DeliveryStatus.FAILED) else None,
        "created_time": delivery.created_at.isoformat(), "finished_time": _iso(delivery.finished_at),
        "resent_by": delivery.resent_by, "resent_time": _iso(delivery.resent_at),
    }


def attempt_data(attempt: Attempt) -> dict[str, Any]:
    return {
        "number": attempt.number, "started_time": attempt.started_at.isoformat(), "duration_ms": attempt.duration_ms,
        "status_code": attempt.status_code, "error_class": attempt.error_class,
        "error_message": attempt.error_message, "outcome": attempt.outcome,
        "response_headers": attempt.response_headers or {}, "response_body": attempt.response_body,
        "response_truncated": attempt.response_truncated, "captured": attempt.captured,
    }


def delivery_detail(delivery: Delivery) -> dict[str, Any]:
    return {**delivery_data(delivery), "request": delivery.request_display,
            "attempts": [attempt_data(a) for a in delivery.attempts.order_by("number")]}


def _delivery(key: ApiKey, delivery_id: str) -> Delivery:
    try:
        public_id = uuid.UUID(delivery_id.removeprefix("msg_"))
    except ValueError:
        public_id = None
    delivery = Delivery.objects.select_related("channel").filter(
        organization_id=key.organization_id, public_id=public_id).first() if public_id else None
    if delivery is None:
        raise ApiError(404, "not_found", f"There is no delivery “{delivery_id}”.")
    return delivery


@deliveries_router.get("/deliveries/", response={200: DeliveryPage, **COMMON_ERRORS}, auth=DELIVERIES_READ,
                       summary="List deliveries")
def deliveries_list(request: ApiRequest, filters: Query[DeliveryFilters]):
    """Newest first; every filter narrows the list (``status`` repeatable). Pass ``next_cursor`` back as
    ``cursor`` for the next page."""
    found = Delivery.objects.filter(organization_id=request.auth.organization_id).select_related("channel") \
        .defer("request_sealed", "request_display")
    if filters.status:
        found = found.filter(status__in=filters.status)
    if filters.webhook is not None:
        found = found.filter(webhook_id=filters.webhook)
    if filters.channel is not None:
        found = found.filter(channel__public_id=filters.channel.replace("\x00", ""))
    if filters.record is not None:
        found = found.filter(record_id=filters.record)
    if filters.source is not None:
        found = found.filter(source=filters.source)
    if filters.error_class is not None:
        found = found.filter(last_error_class=filters.error_class.replace("\x00", ""))
    if (after := datetime_param(filters.created_after, name="created_after")) is not None:
        found = found.filter(created_at__gte=after)
    if (before := datetime_param(filters.created_before, name="created_before")) is not None:
        found = found.filter(created_at__lt=before)
    return page(found, cursor=filters.cursor, limit=filters.limit, serialize=delivery_data)


@deliveries_router.post("/deliveries/recover/", response={200: RecoveredAnswer, **POST_ERRORS},
                        auth=DELIVERIES_REPLAY, summary="Recover after an outage")
def deliveries_recover(request: ApiRequest, body: Recover):
    """Queue again every failed delivery of one webhook or one channel created since ``since`` (and before
    ``until``), each with its delivery id, as Svix's recover does: fix the receiver, then recover."""
    key = request.auth
    if (body.webhook is None) == (body.channel is None):
        raise ApiError(400, "invalid_fields", "Some values are not valid: webhook, channel.",
                       fields={"webhook": ["Give either a webhook id or a channel id."]})
    since = datetime_param(body.since, name="since")
    until = datetime_param(body.until, name="until") or timezone.now()
    failed = Delivery.objects.filter(organization_id=key.organization_id, status=DeliveryStatus.FAILED,
                                     created_at__gte=since, created_at__lt=until)
    if body.webhook is not None:
        if not Webhook.objects.filter(pk=body.webhook, organization_id=key.organization_id).exists():
            raise ApiError(404, "not_found", f"There is no webhook with id {body.webhook}.")
        failed = failed.filter(webhook_id=body.webhook)
    elif body.channel is not None:  # exactly one of the two (checked above)
        failed = failed.filter(channel=_channel(key, body.channel))

    def recover() -> tuple[int, dict]:
        chosen = dict(failed.order_by("pk").values_list("pk", "public_id")[:RECOVER_MAX])
        queued = deliveries_resend(ids=list(chosen), by=f"API key {key.name} (recover)")
        requeued = Delivery.objects.filter(pk__in=chosen, status__in=[DeliveryStatus.QUEUED]).values_list(
            "public_id", flat=True)
        return 200, {"data": {"queued": queued, "ids": [f"msg_{public_id.hex}" for public_id in requeued]}}

    return idempotent(request, key, recover)


@deliveries_router.get("/deliveries/{delivery_id}/", response={200: DeliveryAnswer, **COMMON_ERRORS},
                       auth=DELIVERIES_READ, summary="One delivery with its attempts")
def delivery_read(request: ApiRequest, delivery_id: str):
    """By its delivery id (the webhook-id header, msg_…, or the bare UUID); request and answers masked."""
    return {"data": delivery_detail(_delivery(request.auth, delivery_id))}


@deliveries_router.post("/deliveries/{delivery_id}/resend/", response={200: Resent, **POST_ERRORS},
                        auth=DELIVERIES_REPLAY, summary="Resend one delivery")
def delivery_resend(request: ApiRequest, delivery_id: str):
    """A failed, limit-reached or cancelled delivery queued again with the same delivery id and the retry policy
    from the start."""
    delivery = _delivery(request.auth, delivery_id)

    def resend() -> tuple[int, dict]:
        if not deliveries_resend(ids=[delivery.pk], by=f"API key {request.auth.name}"):
            raise ApiError(409, "not_resendable", f"This delivery is {delivery.get_status_display()}; only failed, "
                           "limit-reached and cancelled deliveries whose webhook or channel still exists are resent.")
        delivery.refresh_from_db()
        return 200, {"data": delivery_detail(delivery)}

    return idempotent(request, request.auth, resend)


@deliveries_router.get("/usage/", response={200: UsageAnswer, **COMMON_ERRORS}, auth=DELIVERIES_READ,
                       summary="Calls per day")
def usage(request: ApiRequest, by: str = "day"):
    """The last 7 days (``by=week``: weeks) by source and by outcome, with the quota: what the admin's usage
    chart shows."""
    if by not in ("day", "week"):
        raise ApiError(400, "invalid_fields", "Some values are not valid: by.", fields={"by": ["day or week."]})
    return {"data": usage_last_days(organization=request.auth.organization, now=timezone.now(), weekly=by == "week")}


# --- webhooks (read-only) ---------------------------------------------------------------------------------
class WebhookOut(Schema):
    id: int
    name: str
    module: str
    url: str
    method: str
    content_type: str
    active: bool
    auth_type: str
    retry_policy: str | None
    created_time: str
    modified_time: str


class WebhookPage(Schema):
    data: list[WebhookOut]
    next_cursor: str | None


class WebhookAnswer(Schema):
    data: WebhookOut


def webhook_data(webhook: Webhook) -> dict[str, Any]:
    """What integrators may see of a webhook: never a secret (the URL's query is kept: it is the admin's)."""
    return {"id": webhook.pk, "name": webhook.name, "module": webhook.module.api_name, "url": webhook.url,
            "method": webhook.method, "content_type": webhook.content_type, "active": webhook.is_active,
            "auth_type": webhook.auth_type, "retry_policy": webhook.retry_policy.code if webhook.retry_policy else None,
            "created_time": webhook.created_at.isoformat(), "modified_time": webhook.modified_at.isoformat()}


def _webhooks(key: ApiKey):
    return Webhook.objects.filter(organization_id=key.organization_id).select_related("module", "retry_policy")


@webhooks_router.get("/", response={200: WebhookPage, **COMMON_ERRORS}, auth=CONFIG, summary="List webhooks")
def webhooks_list(request: ApiRequest, paging: Query[Paging]):
    return page(_webhooks(request.auth), cursor=paging.cursor, limit=paging.limit, serialize=webhook_data)


@webhooks_router.get("/{int:pk}/", response={200: WebhookAnswer, **COMMON_ERRORS}, auth=CONFIG,
                     summary="Read a webhook")
def webhook_read(request: ApiRequest, pk: int):
    webhook = _webhooks(request.auth).filter(pk=pk).first() if pk <= 2**63 - 1 else None
    if webhook is None:
        raise ApiError(404, "not_found", f"There is no webhook with id {pk}.")
    return {"data": webhook_data(webhook)}

