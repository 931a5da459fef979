"""The one builder of new deliveries: every path (a workflow action, a channel's notification, a run logged
as cancelled, a test send) makes its row here, so the columns they share are set alike: the organization, the
sender and its name, the record's reference, the trigger, the retry policy, and the edition's refusal.
A resend makes no row: it queues the same delivery again (enqueue.deliveries_resend)."""
from typing import Any

from django.core.exceptions import ValidationError

from crm.models import Record
from dispatcher.delivery import states
from dispatcher.models import Channel, Delivery, DeliverySource, DeliveryStatus, RetryPolicy, Webhook
from dispatcher.ops.quotas import webhooks_refusal

#: Sources whose deliveries are refused at once when the organization's edition does not include webhooks:
#: what a rule or a call asks to send. A channel's notification is made all the same (a record change never
#: fails for a subscriber's sake) and its attempt fails with the same words; a test send is logged once it has
#: gone out.
REFUSED_WITHOUT_WEBHOOKS = frozenset({DeliverySource.WORKFLOW, DeliverySource.REPLAY, DeliverySource.API})

_TRIGGER_MAX = Delivery._meta.get_field("trigger").max_length
_NAME_MAX = Delivery._meta.get_field("webhook_name").max_length


def record_ref_of(record: Record) -> str:
    """How a delivery or a workflow run names its record, kept once the record is deleted: "Deals #42"."""
    return f"{record.module.api_name} #{record.pk}"


def delivery_new(
    *, sender: Webhook | Channel, record: Record | None, source: str, trigger: str,
    status: str = DeliveryStatus.QUEUED, record_ref: str | None = None, **fields: Any,
) -> Delivery:
    """A new delivery of sender for record, not saved (deliveries_insert or save()). record_ref: the reference
    of a record that may be gone (record None); else it is the record's. Queued, or Cancelled (finished at
    once, states.delivery_build); a Queued one of a source in REFUSED_WITHOUT_WEBHOOKS is refused
    (ValidationError) when the organization's edition does not include webhooks."""
    if status == DeliveryStatus.QUEUED and source in REFUSED_WITHOUT_WEBHOOKS and (
            refusal := webhooks_refusal(sender.organization)):
        raise ValidationError(refusal)
    if record_ref is None:
        if record is None:
            raise ValueError("A delivery names its record: give the record or its reference.")
        record_ref = record_ref_of(record)
    return states.delivery_build(
        status=status, **_sender_columns(sender), record=record, record_ref=record_ref, source=source,
        trigger=trigger[:_TRIGGER_MAX], **fields,
    )


def _sender_columns(sender: Webhook | Channel) -> dict[str, Any]:
    """The sender, its organization (the object when loaded: callers read it after) and the name the log keeps
    once the sender is deleted; a channel's notifications follow the default retry policy."""
    owner = Webhook if isinstance(sender, Webhook) else Channel
    loaded = owner._meta.get_field("organization").is_cached(sender)
    columns: dict[str, Any] = ({"organization": sender.organization} if loaded
                               else {"organization_id": sender.organization_id})
    if isinstance(sender, Channel):
        return {**columns, "channel": sender, "webhook_name": f"Channel {sender.public_id}"[:_NAME_MAX],
                "retry_policy_id": RetryPolicy.default_id()}
    return {**columns, "webhook": sender, "webhook_name": sender.name[:_NAME_MAX],
            "retry_policy_id": sender.retry_policy_id or RetryPolicy.default_id()}
