"""The delivery log over the REST API: list it (dispatcher.selectors.deliveries_list, as the admin does), read
one delivery with its attempts (masked, as auditors see it), resend one, recover after an outage
(dispatcher.delivery.deliveries_recover, as the command does), and the usage per day."""
import datetime
from typing import Any

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.utils import timezone
from ninja import Query, Router, Schema
from pydantic import ConfigDict, Field

from crm.api.auth import ApiRequest, key_auth
from crm.api.envelopes import Answer, Page
from crm.api.errors import COMMON_ERRORS, POST_ERRORS, ApiError, invalid_fields
from crm.api.idempotency import idempotent
from crm.api.lookup import owned_or_404
from crm.api.pagination import page
from crm.api.params import DATETIME_DESCRIPTION, datetime_param
from crm.models import ApiKey, ApiScope
from dispatcher import delivery as engine
from dispatcher import selectors
from dispatcher.models import Attempt, Delivery, DeliverySource, DeliveryStatus
from dispatcher.ops.usage import usage_last_days
from dispatcher.selectors import DeliveryFilters

deliveries_router = Router(tags=["deliveries"])
DELIVERIES_READ, DELIVERIES_REPLAY = key_auth(ApiScope.DELIVERIES_READ), key_auth(ApiScope.DELIVERIES_REPLAY)


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


class DeliveryQuery(Schema):
    """The list's query parameters: paging and DeliveryFilters' fields the API offers."""

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


class UsageDays(Schema):
    labels: list[str]
    totals: list[int]
    by_source: dict[str, list[int]]
    by_outcome: dict[str, list[int]]
    quota: int


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


def delivery_of(key: ApiKey, delivery_id: str) -> Delivery:
    """By its delivery id: the webhook-id header (msg_…) or the bare UUID."""
    return owned_or_404(Delivery.objects.select_related("channel"), key.organization_id,
                        public_id=delivery_id.removeprefix("msg_"), not_found=f"There is no delivery “{delivery_id}”.")


@deliveries_router.get("/deliveries/", response={200: Page[DeliveryOut], **COMMON_ERRORS}, auth=DELIVERIES_READ,
                       summary="List deliveries")
def deliveries_list(request: ApiRequest, filters: Query[DeliveryQuery]):
    """Newest first; every filter narrows the list (``status`` repeatable). Pass ``next_cursor`` back as
    ``cursor`` for the next page."""
    found = selectors.deliveries_list(organization=request.auth.organization_id, filters=DeliveryFilters(
        status=filters.status, webhook=filters.webhook, channel=filters.channel, record=filters.record,
        source=filters.source, error_class=filters.error_class,
        created_after=datetime_param(filters.created_after, name="created_after"),
        created_before=datetime_param(filters.created_before, name="created_before")))
    return page(found, cursor=filters.cursor, limit=filters.limit, serialize=delivery_data)


@deliveries_router.post("/deliveries/recover/", response={200: Answer[Recovered], **POST_ERRORS},
                        auth=DELIVERIES_REPLAY, summary="Recover after an outage")
def deliveries_recover(request: ApiRequest, body: Recover):
    """Queue again every failed delivery of one webhook or one channel created since ``since`` (and before
    ``until``), each with its delivery id, as Svix's recover does: fix the receiver, then recover."""
    key = request.auth
    filters = DeliveryFilters(webhook=body.webhook, channel=body.channel,
                              created_after=datetime_param(body.since, name="since"),
                              created_before=datetime_param(body.until, name="until") or timezone.now())
    try:  # before the Idempotency-Key is claimed: a refused request is not an answer to replay
        engine.recover_check(organization=key.organization_id, filters=filters)
    except ValidationError as error:
        raise _recover_refused(error) from None
    except ObjectDoesNotExist as error:
        raise ApiError(404, "not_found", str(error)) from None

    def recover() -> tuple[int, dict]:
        done = engine.deliveries_recover(organization=key.organization_id, filters=filters,
                                         by=f"API key {key.name} (recover)")
        return 200, {"data": {"queued": done.queued, "ids": done.ids}}

    return idempotent(request, key, recover)


def _recover_refused(error: ValidationError) -> ApiError:
    if "webhook" in error.message_dict:  # neither or both of webhook and channel
        return ApiError(400, "invalid_fields", "Some values are not valid: webhook, channel.",
                        fields=error.message_dict)
    return invalid_fields(error)


@deliveries_router.get("/deliveries/{delivery_id}/", response={200: Answer[DeliveryDetail], **COMMON_ERRORS},
                       auth=DELIVERIES_READ, summary="One delivery with its attempts")
def delivery_read(request: ApiRequest, delivery_id: str):
    """By its delivery id (the webhook-id header, msg_…, or the bare UUID); request and answers masked."""
    return {"data": delivery_detail(delivery_of(request.auth, delivery_id))}


@deliveries_router.post("/deliveries/{delivery_id}/resend/", response={200: Answer[DeliveryDetail], **POST_ERRORS},
                        auth=DELIVERIES_REPLAY, summary="Resend one delivery")
def delivery_resend(request: ApiRequest, delivery_id: str):
    """A failed, limit-reached or cancelled delivery queued again with the same delivery id and the retry policy
    from the start."""
    delivery = delivery_of(request.auth, delivery_id)

    def resend() -> tuple[int, dict]:
        if not engine.deliveries_resend(ids=[delivery.pk], by=f"API key {request.auth.name}"):
            raise ApiError(409, "not_resendable", f"This delivery is {delivery.get_status_display()}; only failed, "
                           "limit-reached and cancelled deliveries whose webhook or channel still exists are resent.")
        delivery.refresh_from_db()
        return 200, {"data": delivery_detail(delivery)}

    return idempotent(request, request.auth, resend)


@deliveries_router.get("/usage/", response={200: Answer[UsageDays], **COMMON_ERRORS}, auth=DELIVERIES_READ,
                       summary="Calls per day")
def usage(request: ApiRequest, by: str = "day"):
    """The last 7 days (``by=week``: weeks) by source and by outcome, with the quota: what the admin's usage
    chart shows."""
    if by not in ("day", "week"):
        raise ApiError(400, "invalid_fields", "Some values are not valid: by.", fields={"by": ["day or week."]})
    return {"data": usage_last_days(organization=request.auth.organization, now=timezone.now(), weekly=by == "week")}
