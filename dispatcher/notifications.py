"""E-mails to people: a delivery failed for good (owner and admins), the daily limit was reached (admins)."""
import datetime
import logging
from urllib.parse import urlsplit, urlunsplit

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from crm.models import CrmUser, Organization
from dispatcher import errors, quotas
from dispatcher.models import Channel, Delivery, Endpoint, Webhook
from dispatcher.models.endpoints import destination_of

logger = logging.getLogger(__name__)


def _admins(organization: Organization) -> list[str]:
    return list(CrmUser.objects.filter(organization=organization, is_admin=True, is_active=True)
                .order_by("email").values_list("email", flat=True))


def _send(subject: str, body: str, recipients: list[str]) -> None:
    recipients = list(dict.fromkeys(r for r in recipients if r))
    if not recipients:
        return
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except SoftTimeLimitExceeded:
        raise
    except Exception:  # a broken mail server must not break delivery processing
        logger.exception("notify.mail_failed subject=%s", subject)


def notify_later(task_name: str, *args) -> None:
    """Queue an e-mail as a task of its own (after the outcome that causes it is stored); if the broker
    cannot take it, send the e-mail here rather than lose it."""
    from dispatcher import tasks  # the tasks module imports the services that call this

    task = getattr(tasks, task_name.removeprefix("dispatcher."))
    try:
        task.apply_async(args=args)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.warning("notify.queue_failed task=%s; sending now", task_name, exc_info=True)
        task.run(*args)


def delivery_failed(*, delivery: Delivery) -> None:
    """Seed 004: the record owner and all active admins are told when a webhook fails."""
    owner = delivery.record.owner if delivery.record and delivery.record.owner.is_active else None
    if delivery.channel is not None:  # a subscription: its owner rather than the record's
        owner = delivery.channel.owner if delivery.channel.owner and delivery.channel.owner.is_active else None
    url = delivery.channel.notify_url if delivery.channel else delivery.webhook.url if delivery.webhook else ""
    target = urlunsplit(urlsplit(url)._replace(query="")) if url else "(deleted webhook or channel)"
    link = settings.SITE_URL.rstrip("/") + reverse("admin:dispatcher_delivery_change", args=[delivery.pk])
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
          ([owner.email] if owner else []) + _admins(delivery.organization))


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
    link = settings.SITE_URL.rstrip("/") + reverse("admin:dispatcher_endpoint_change", args=[endpoint.pk])
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
        f"POST {settings.API_BASE_URL.rstrip('/')}/channels/{channel.public_id}/renew/",
    ])
    recipients = [channel.owner.email] if channel.owner and channel.owner.is_active else _admins(channel.organization)
    _send(f"Event subscription {channel.public_id} expires soon", body, recipients)
