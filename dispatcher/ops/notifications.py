"""E-mails to people: deliveries failed for good (as the retry policy says: none, each, or an hourly digest),
the daily limit was reached (admins, once a day), a destination was disabled, a subscription expires.

The e-mails that follow an outcome are tasks of their own, defined here beside what they send and queued when
the transaction that stored the outcome commits (notify_later): a worker never mails about a change it cannot
read yet, a rollback mails nobody, and a slow mail server (EMAIL_TIMEOUT) delays an e-mail, never a delivery.
They live here rather than in dispatcher/tasks.py because that module imports the engine that queues them.
"""
import datetime
import functools
from collections.abc import Iterable
import logging
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm.models import CrmUser, Organization
from dispatcher.transport import errors
from dispatcher.ops import quotas
from dispatcher.models import (
    Channel, Delivery, DeliveryStatus, Endpoint, FailureDigest, FailureEmails, Webhook,
)
from dispatcher.ops.links import admin_link, api_link
from dispatcher.models.endpoints import destination_of

logger = logging.getLogger(__name__)


def _admins(organization: Organization) -> list[str]:
    return list(CrmUser.objects.filter(organization=organization, is_admin=True, is_active=True)
                .order_by("email").values_list("email", flat=True))


def _send(subject: str, body: str, recipients: Iterable[str | None]) -> None:
    """To each address once; an owner without one is left out."""
    to = list(dict.fromkeys(r for r in recipients if r))
    if not to:
        return
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # a broken mail server must not break delivery processing
        logger.exception("notify.mail_failed", extra={"recipients": len(to)})


def notify_later(task: Any, *args: Any) -> None:
    """Queue one of the e-mail tasks below once the caller's transaction commits (at once outside one), so
    the worker that sends it reads what caused it; a transaction rolled back (or a savepoint) queues nothing.
    Not Celery's apply_async_on_commit: that one loses the e-mail when the broker cannot take it."""
    transaction.on_commit(functools.partial(_queue, task, args))


def _queue(task: Any, args: tuple) -> None:
    """If the broker cannot take the task, send the e-mail here rather than lose it. Never raises (but a
    task's time limit): an on-commit callback that raised would drop the transaction's other callbacks."""
    try:
        task.apply_async(args=args)
        return
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.warning("notify.queue_failed", extra={"task": task.name}, exc_info=True)
    try:
        task.run(*args)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.exception("notify.send_failed", extra={"task": task.name})


# The e-mail tasks take ids, as any task: they read the rows as committed, after notify_later queued them.
NOTIFY_OPTIONS = {"soft_time_limit": 60, "time_limit": 90, "acks_late": True, "ignore_result": True}


@shared_task(name="dispatcher.notify_delivery_failed", **NOTIFY_OPTIONS)
def notify_delivery_failed(delivery_id: int) -> None:
    found = Delivery.objects.select_related("organization", "record__owner", "channel__owner", "webhook") \
        .filter(pk=delivery_id).first()
    if found is not None:
        delivery_failed(delivery=found)


@shared_task(name="dispatcher.notify_limit_reached", **NOTIFY_OPTIONS)
def notify_limit_reached(organization_id: int, at: str) -> None:
    organization = Organization.objects.select_related("edition").get(pk=organization_id)
    limit_reached(organization=organization, now=datetime.datetime.fromisoformat(at))


@shared_task(name="dispatcher.notify_endpoint_disabled", **NOTIFY_OPTIONS)
def notify_endpoint_disabled(endpoint_id: int) -> None:
    if (endpoint := Endpoint.objects.select_related("organization").filter(pk=endpoint_id).first()) is not None:
        endpoint_disabled(endpoint=endpoint)


def _owner(delivery: Delivery) -> str | None:
    """Who is told besides the admins: the record's owner, or for a subscription the channel's."""
    if delivery.is_subscription:
        owner = delivery.channel.owner if delivery.channel is not None else None
    else:
        owner = delivery.record.owner if delivery.record is not None else None
    return owner.email if owner is not None and owner.is_active else None


def _target(delivery: Delivery) -> str:
    url = delivery.sender.destination_url if delivery.sender is not None else ""
    return urlunsplit(urlsplit(url)._replace(query="")) if url else "(deleted webhook or channel)"


def delivery_failed_notify(delivery: Delivery, error_class: str) -> None:
    """After a delivery failed for good: an e-mail now if its retry policy says "each"; "digest" is sent by
    the hourly ``failure_digests_send``. "none" (Zoho's) is silent about problems at the third party, but not
    about ours: a webhook that cannot be prepared or signed here is told at once, whatever the policy."""
    policy = delivery.retry_policy.failure_emails
    if policy == FailureEmails.EACH or (policy == FailureEmails.NONE and error_class == errors.INTERNAL_ERROR):
        notify_later(notify_delivery_failed, delivery.pk)


def delivery_failed(*, delivery: Delivery) -> None:
    """Seed 004: the record owner and all active admins are told when a webhook fails."""
    target = _target(delivery)
    link = admin_link("admin:dispatcher_delivery_change", delivery.pk)
    body = "\n".join([
        f"The webhook “{delivery.webhook_name}” could not be delivered for {delivery.record_ref}.",
        "",
        f"Destination: {target}",
        f"Trigger: {delivery.trigger or delivery.get_source_display()}",
        f"Attempts: {delivery.attempt_count}",
        f"Last error: {errors.meaning(delivery.last_error_class) or delivery.last_error_class}",
        f"Detail: {delivery.status_reason}",
        f"Delivery id: {delivery.message_id}",
        "",
        f"Webhook log: {link}",
    ])
    _send(f"Webhook “{delivery.webhook_name}” failed for {delivery.record_ref}", body,
          [_owner(delivery), *_admins(delivery.organization)])


DIGEST_LOOKBACK_HOURS = 24  # hours a digest can still be made up for (the beat was down, say)
DIGEST_LISTED = 50  # failures listed in one e-mail; the rest are counted


def failure_digests_send(*, now: datetime.datetime | None = None) -> int:
    """One e-mail per webhook (or channel) and ended UTC hour listing its failures, for retry policies on
    "digest" (Vtiger's). A FailureDigest row is made before the e-mail, so each hour is sent at most once,
    whichever worker runs this; returns how many were sent."""
    now = now or timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    failed = (Delivery.objects.filter(
        status=DeliveryStatus.FAILED, retry_policy__failure_emails=FailureEmails.DIGEST,
        finished_at__gte=this_hour - datetime.timedelta(hours=DIGEST_LOOKBACK_HOURS), finished_at__lt=this_hour,
    ).select_related("organization", "record__owner", "channel__owner", "webhook").order_by("finished_at", "id"))
    groups: dict[tuple[str, datetime.datetime], list[Delivery]] = {}
    for delivery in failed:
        sender = delivery.sender_key
        finished = delivery.finished_at
        assert finished is not None  # failed deliveries have finished
        hour = finished.replace(minute=0, second=0, microsecond=0)
        groups.setdefault((sender, hour), []).append(delivery)
    done = set(FailureDigest.objects.filter(sender__in={s for s, _ in groups}, hour__in={h for _, h in groups})
               .values_list("sender", "hour"))
    sent = 0
    for (sender, hour), deliveries in groups.items():
        if (sender, hour) in done:
            continue
        try:
            with transaction.atomic():
                FailureDigest.objects.create(organization=deliveries[0].organization, sender=sender, hour=hour,
                                             failures=len(deliveries))
        except IntegrityError:  # another worker took this hour
            continue
        _digest_send(hour, deliveries)
        sent += 1
    return sent


def _digest_send(hour: datetime.datetime, deliveries: list[Delivery]) -> None:
    first = deliveries[0]
    lines = [f"{len(deliveries)} deliveries of the webhook “{first.webhook_name}” failed for good between "
             f"{hour:%Y-%m-%d %H}:00 and {hour + datetime.timedelta(hours=1):%H}:00 UTC.",
             "", f"Destination: {_target(first)}", ""]
    for delivery in deliveries[:DIGEST_LISTED]:
        lines.append(f"- {delivery.finished_at:%H:%M} {delivery.record_ref}: {delivery.status_reason}")
        lines.append(f"  {admin_link('admin:dispatcher_delivery_change', delivery.pk)}")
    if len(deliveries) > DIGEST_LISTED:
        lines.append(f"… and {len(deliveries) - DIGEST_LISTED} more.")
    log = admin_link("admin:dispatcher_delivery_changelist") + "?" + urlencode(
        {"status__exact": DeliveryStatus.FAILED, "webhook_name": first.webhook_name})
    lines += ["", f"Webhook log: {log}"]
    owners = [_owner(delivery) for delivery in deliveries]
    _send(f"Webhook “{first.webhook_name}”: {len(deliveries)} failed deliveries", "\n".join(lines),
          [*owners, *_admins(first.organization)])


def limit_reached(*, organization: Organization, now: datetime.datetime) -> None:
    """Seed 003: when the daily maximum is exceeded the rest is not sent and the admins are told (once a day)."""
    day = quotas.local_day(organization=organization, now=now)
    limit = quotas.daily_limit(organization=organization)
    body = "\n".join([
        f"{organization.name} reached its daily limit of {limit} webhook calls on {day} "
        f"({organization.edition.name}, {organization.user_licences} user licences).",
        "",
        "Webhooks triggered for the rest of the day are not sent; they are logged as “Daily limit reached”.",
        "The count starts again at midnight in the organization's time zone "
        f"({organization.time_zone}).",
    ])
    _send(f"Daily webhook limit reached for {organization.name}", body, _admins(organization))


def endpoint_disabled(*, endpoint: Endpoint) -> None:
    """Admins (and owners of channels sending there) learn why deliveries to a destination stopped."""
    organization = endpoint.organization
    link = admin_link("admin:dispatcher_endpoint_change", endpoint.pk)
    webhooks = [w.name for w in Webhook.objects.filter(organization=organization, is_active=True)
                if endpoint.destination == destination_of(w.url)]
    channels = [c for c in Channel.objects.filter(organization=organization, is_active=True).select_related("owner")
                if endpoint.destination == destination_of(c.notify_url)]
    body = "\n".join([
        f"Deliveries to {endpoint.destination} have been put on hold: {endpoint.disabled_reason}",
        "",
        "Webhooks sending there: " + (", ".join(webhooks) or "none"),
        "Event subscription channels sending there: " + (", ".join(c.public_id for c in channels) or "none"),
        "",
        "Nothing is dropped: new and pending deliveries are kept as “On hold”. Once the receiver works again,",
        f"enable the endpoint and they are sent: {link}",
    ])
    owners = [c.owner.email for c in channels if c.owner and c.owner.is_active]
    _send(f"Webhook destination disabled: {endpoint.destination}", body, _admins(organization) + owners)


def channel_expiring(*, channel: Channel) -> None:
    """The owner is told shortly before a subscription expires, so it can be renewed in time."""
    body = "\n".join([
        f"The event subscription channel {channel.public_id} ({', '.join(channel.events)}) expires at "
        f"{channel.expires_at:%Y-%m-%d %H:%M} UTC.",
        "",
        "After that its notify URL receives no more notifications. Renew it before then with",
        f"POST {api_link(f'channels/{channel.public_id}/renew/')}",
    ])
    recipients = [channel.owner.email] if channel.owner and channel.owner.is_active else _admins(channel.organization)
    _send(f"Event subscription {channel.public_id} expires soon", body, recipients)
