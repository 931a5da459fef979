"""REST API for event subscriptions (channels), with the records API's keys, errors and conventions."""
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse

from crm.apis import ApiError, api_view, invalid_fields, json_body
from crm.models import ApiKey
from dispatcher import channels, secret_rotation
from dispatcher.models import Channel
from dispatcher.models.endpoints import Endpoint, destination_of

CREATE_KEYS = {"events", "notify_url", "token", "fields", "expiry_time", "channel_id", "verify"}
UPDATE_KEYS = {"events", "notify_url", "token", "fields", "active", "verify"}


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


def _object(data: Any, allowed: set[str]) -> dict[str, Any]:
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


@api_view({"GET", "POST"})
def channels_view(request: HttpRequest, key: ApiKey) -> JsonResponse:
    if request.method == "GET":
        found = Channel.objects.filter(organization_id=key.organization_id).order_by("-id")
        return JsonResponse({"data": [channel_data(c) for c in found]})
    data = _object(json_body(request), CREATE_KEYS)
    if "verify" in data and not isinstance(data["verify"], bool):
        raise ApiError(400, "invalid_fields", "Some values are not valid: verify.", fields={"verify": ["Give true or false."]})
    try:
        channel = channels.channel_create(
            organization=key.organization, owner=key.user, events=data.get("events"),
            notify_url=data.get("notify_url"), token=data.get("token", ""), fields=data.get("fields"),
            expiry_time=data.get("expiry_time"), channel_id=data.get("channel_id"), verify=data.get("verify", False),
        )
    except ValidationError as error:
        raise invalid_fields(error) from None
    return JsonResponse({"data": channel_data(channel, with_secret=True)}, status=201)


@api_view({"GET", "PATCH", "DELETE"})
def channel_detail(request: HttpRequest, key: ApiKey, channel_id: str) -> JsonResponse:
    channel = _channel(key, channel_id)
    if request.method == "GET":
        return JsonResponse({"data": channel_data(channel)})
    if request.method == "DELETE":
        channels.channel_delete(channel=channel)
        return JsonResponse({"data": {"id": channel_id, "deleted": True}})
    data = _object(json_body(request), UPDATE_KEYS)
    try:
        channel = channels.channel_update(channel=channel, data=data)
    except ValidationError as error:
        raise invalid_fields(error) from None
    return JsonResponse({"data": channel_data(channel)})


@api_view({"POST"})
def channel_renew(request: HttpRequest, key: ApiKey, channel_id: str) -> JsonResponse:
    channel = _channel(key, channel_id)
    data = _object(json_body(request) if request.body else {}, {"expiry_time"})
    try:
        channel = channels.channel_renew(channel=channel, expiry_time=data.get("expiry_time"))
    except ValidationError as error:
        if not hasattr(error, "error_dict"):
            raise ApiError(409, "channel_expired", error.messages[0]) from None
        raise invalid_fields(error) from None
    return JsonResponse({"data": channel_data(channel)})


@api_view({"POST"})
def channel_secret_rotate(request: HttpRequest, key: ApiKey, channel_id: str) -> JsonResponse:
    """A new signing secret, shown once; the old one keeps signing until previous_secret_expiry_time."""
    channel = _channel(key, channel_id)
    _object(json_body(request) if request.body else {}, set())
    secret_rotation.signing_secret_rotate(sender=channel)
    return JsonResponse({"data": channel_data(channel, with_secret=True)})


@api_view({"DELETE"})
def channel_previous_secret(request: HttpRequest, key: ApiKey, channel_id: str) -> JsonResponse:
    """Stop signing with the old secret now, once the receiver has the new one."""
    channel = _channel(key, channel_id)
    if not secret_rotation.signing_secret_expire_previous(sender=channel):
        raise ApiError(404, "not_found", "This channel has no previous signing secret.")
    return JsonResponse({"data": channel_data(channel)})
