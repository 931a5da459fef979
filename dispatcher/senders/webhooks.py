"""A webhook saved with its rows (the admin's door, also the demo's and the workflows'), its request
previewed for a record, and sent once as a test. What makes it valid is webhook_checks'; its secrets are
webhook_secrets'; its rows as values and in bulk are webhook_rows'."""
import dataclasses
import uuid

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from crm.models import Record
from dispatcher.delivery import delivery_log_test
from dispatcher.models import (
    AuthType, Capture, CustomParameter, Delivery, DeliverySource, EntityParameter, Webhook, WebhookHeader,
)
from dispatcher.ops.usage import usage_count
from dispatcher.rendering.request import send_auth_for, webhook_render_request
from dispatcher.senders.webhook_checks import webhook_problems
from dispatcher.senders.webhook_rows import Header, Parameter
from dispatcher.transport.request import MASK, RenderedRequest
from dispatcher.transport.result import HttpResult
from dispatcher.transport.sending import send_now


@transaction.atomic
def webhook_save(
    *, webhook: Webhook, entity_parameters: list[Parameter], custom_parameters: list[Parameter],
    captures: list[Capture] | None = None, headers: list[Header] | None = None,
) -> Webhook:
    """Validate and store a webhook with its parameters, response captures and custom headers (the admin
    saves through here; the import validates with the same webhook_problems and stores in bulk).
    captures=None and headers=None leave the stored ones as they are."""
    errors = webhook_problems(webhook=webhook, entity_parameters=entity_parameters,
                              custom_parameters=custom_parameters, captures=captures, headers=headers)
    if errors:
        raise ValidationError(errors)
    webhook.save()
    if headers is not None:
        webhook.headers.all().delete()
        for position, header in enumerate(headers):
            WebhookHeader.objects.create(webhook=webhook, name=header.name, value=header.value,
                                         is_secret=header.secret, position=position)
    if captures is not None:
        webhook.captures.all().delete()
        for position, capture in enumerate(captures):
            capture.webhook, capture.position = webhook, position
        Capture.objects.bulk_create(captures)
    webhook.entity_parameters.all().delete()
    webhook.custom_parameters.all().delete()
    EntityParameter.objects.bulk_create(
        EntityParameter(webhook=webhook, name=p.name, value=p.value, position=i) for i, p in enumerate(entity_parameters)
    )
    for i, p in enumerate(custom_parameters):
        CustomParameter.objects.create(webhook=webhook, name=p.name, value=p.value, position=i)
    return webhook


def webhook_preview(*, webhook: Webhook, record: Record, show_signature: bool = False) -> RenderedRequest:
    """The request for this record with secrets masked: what admins and the CLI may see. The signature is
    shown only to people who may change the webhook (show_signature)."""
    _check_record(webhook, record)
    request = webhook_render_request(webhook=webhook, record=record, message_id=f"msg_preview_{record.pk}")
    if webhook.auth_type == AuthType.OAUTH2:  # the token is fetched at send time
        request = dataclasses.replace(request, headers={**request.headers, "Authorization": f"Bearer {MASK}"})
    return request.masked(keep_signature=show_signature)


def webhook_send_test(*, webhook: Webhook, record: Record, by: str = "") -> tuple[RenderedRequest, HttpResult, Delivery]:
    """Send the real request once through the guarded client, and log it as a delivery of source "Test";
    returns what was sent and the result, both with the secrets masked (a receiver may echo the request),
    and the logged delivery."""
    _check_record(webhook, record)
    public_id = uuid.uuid4()
    request = webhook_render_request(webhook=webhook, record=record, message_id=f"msg_{public_id.hex}")
    started = timezone.now()
    result, request = send_now(request, send_auth_for(webhook))
    logged = delivery_log_test(webhook=webhook, record=record, request=request, result=result, started_at=started,
                               by=by, public_id=public_id)
    usage_count(organization=webhook.organization, now=timezone.now(), source=DeliverySource.TEST,
                outcome=logged.status, duration_ms=result.duration_ms if result.status_code is not None else None)
    shown = dataclasses.replace(result, body=request.mask(result.body.decode("utf-8", "replace")).encode(),
                                headers={name: request.mask(value) for name, value in result.headers.items()})
    return request.masked(keep_signature=True), shown, logged


def _check_record(webhook: Webhook, record: Record) -> None:
    if record.module_id != webhook.module_id:
        raise ValidationError(
            f"Record #{record.pk} is a {record.module.api_name} record; this webhook is for {webhook.module.api_name}."
        )
