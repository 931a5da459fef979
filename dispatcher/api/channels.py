"""Event subscriptions (channels) over the REST API: subscribe, list, read, change, renew, unsubscribe,
rotate the signing secret. dispatcher.senders.channels checks and writes; a POST reads its JSON object
itself, so that unknown keys are refused by name."""
from typing import Any

from django.core.exceptions import ValidationError
from ninja import Body, Query, Router, Schema
from pydantic import Field

from crm.api.auth import ApiRequest, key_auth
from crm.api.envelopes import Answer, Page
from crm.api.errors import COMMON_ERRORS, POST_ERRORS, ApiError, invalid_fields
from crm.api.idempotency import idempotent
from crm.api.lookup import owned_or_404
from crm.api.pagination import Paging, page
from crm.api.parser import json_body
from crm.models import ApiKey, ApiScope
from dispatcher import selectors
from dispatcher.models import Channel
from dispatcher.senders import channels, secret_rotation

CREATE_KEYS = {"events", "notify_url", "token", "fields", "expiry_time", "channel_id", "verify"}
UPDATE_KEYS = {"events", "notify_url", "token", "fields", "active", "verify"}

channels_router = Router(tags=["channels"])
CHANNELS = key_auth(ApiScope.CHANNELS)


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


def channel_data(channel: Channel, *, with_secret: bool = False) -> dict[str, Any]:
    endpoint = selectors.channel_endpoint(channel=channel)
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


def channel_of(key: ApiKey, channel_id: str) -> Channel:
    return owned_or_404(Channel, key.organization_id, public_id=channel_id,
                        not_found=f"There is no channel “{channel_id}”.")


@channels_router.get("/", response={200: Page[ChannelOut], **COMMON_ERRORS}, auth=CHANNELS, summary="List channels")
def channels_list(request: ApiRequest, paging: Query[Paging]):
    return page(selectors.channels_list(organization=request.auth.organization_id), cursor=paging.cursor,
                limit=paging.limit, serialize=channel_data)


@channels_router.post("/", response={201: Answer[ChannelWithSecret], **POST_ERRORS}, auth=CHANNELS,
                      summary="Subscribe", openapi_extra=_body_doc(ChannelCreate))
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


@channels_router.get("/{channel_id}/", response={200: Answer[ChannelOut], **COMMON_ERRORS}, auth=CHANNELS,
                     summary="Read a channel")
def channel_read(request: ApiRequest, channel_id: str):
    return {"data": channel_data(channel_of(request.auth, channel_id))}


@channels_router.patch("/{channel_id}/", response={200: Answer[ChannelOut], **COMMON_ERRORS}, auth=CHANNELS,
                       summary="Change a channel", openapi_extra=_body_doc(ChannelChange))
def channel_update(request: ApiRequest, channel_id: str, body: Body[dict[str, Any]]):
    channel = channel_of(request.auth, channel_id)
    try:
        channel = channels.channel_update(channel=channel, data=_given(body, UPDATE_KEYS))
    except ValidationError as error:
        raise invalid_fields(error) from None
    return {"data": channel_data(channel)}


@channels_router.delete("/{channel_id}/", response={200: Answer[ChannelDeleted], **COMMON_ERRORS}, auth=CHANNELS,
                        summary="Unsubscribe")
def channel_delete(request: ApiRequest, channel_id: str):
    channels.channel_delete(channel=channel_of(request.auth, channel_id))
    return {"data": {"id": channel_id, "deleted": True}}


@channels_router.post("/{channel_id}/renew/", response={200: Answer[ChannelOut], **POST_ERRORS}, auth=CHANNELS,
                      summary="Renew a channel", openapi_extra=_body_doc(ChannelRenewal, required=False))
def channel_renew(request: ApiRequest, channel_id: str):
    """The body is optional: without expiry_time, CHANNEL_DEFAULT_EXPIRY_HOURS from now."""
    channel = channel_of(request.auth, channel_id)
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


@channels_router.post("/{channel_id}/rotate-secret/", response={200: Answer[ChannelWithSecret], **POST_ERRORS},
                      auth=CHANNELS, summary="Rotate the signing secret")
def channel_secret_rotate(request: ApiRequest, channel_id: str):
    """A new signing secret, shown once; the old one keeps signing until previous_secret_expiry_time."""
    channel = channel_of(request.auth, channel_id)

    def rotate() -> tuple[int, dict]:
        secret_rotation.signing_secret_rotate(sender=channel)
        return 200, {"data": channel_data(channel, with_secret=True)}

    return idempotent(request, request.auth, rotate)


@channels_router.delete("/{channel_id}/previous-secret/", response={200: Answer[ChannelOut], **COMMON_ERRORS},
                        auth=CHANNELS, summary="Stop signing with the previous secret")
def channel_previous_secret(request: ApiRequest, channel_id: str):
    channel = channel_of(request.auth, channel_id)
    if not secret_rotation.signing_secret_expire_previous(sender=channel):
        raise ApiError(404, "not_found", "This channel has no previous signing secret.")
    return {"data": channel_data(channel)}
