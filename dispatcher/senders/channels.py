"""Event subscriptions (channels): integrations subscribe to record events by API and receive
notifications of seed 002's shape through the same delivery queue, quota, guarded client, signing, retries
and logs as workflow webhooks.

Event names: ``<Module>.create``, ``<Module>.edit`` (or ``update``, as seed 002 writes it), ``<Module>.delete``,
``<Module>.all`` (the three) and ``<Module>.<Field>.change`` (an edit that changed that field). Module and
field are API names (or a module's alias, such as Potentials), matched without regard to case.
"""
import datetime
import json
import logging
import re
import secrets
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.utils import timezone

from crm import events as crm_events
from crm.models import CrmUser, Field, Module, Organization, Record
from dispatcher.transport import errors
from dispatcher.ops import notifications
from dispatcher.ops import quotas
from dispatcher.transport.sending import send_now
from dispatcher.ops.links import api_link
from dispatcher.models import Channel, Delivery, DeliverySource
from dispatcher.models.channels import TOKEN_MAX_LENGTH
from dispatcher.delivery import deliveries_insert, delivery_new
from dispatcher.rendering.request import request_sign
from dispatcher.transport.request import RenderedRequest

logger = logging.getLogger(__name__)

OPERATIONS = (crm_events.CREATE, crm_events.EDIT, crm_events.DELETE)
OPERATION_SYNONYMS = {"update": crm_events.EDIT}  # seed 002 writes Leads.update
EVENTS_MAX = 20
CHANNEL_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")  # fullmatch: "$" would let a trailing newline through
VERIFICATION_TYPE = "verification"  # the "type" of the challenge channel_verify sends
_EVENT_RE = re.compile(r"^(?P<module>[A-Za-z0-9_]+)\.(?:(?P<field>[A-Za-z0-9_]+)\.change|(?P<operation>[A-Za-z]+))$",
                       re.IGNORECASE)


# --- Subscribing ----------------------------------------------------------------------------------

def channel_events_clean(*, organization: Organization, events: Any) -> list[str]:
    """Check event names and spell them canonically (API names, lower-case operation)."""
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise ValidationError({"events": "Give a list of event names such as Leads.create or Deals.Stage.change."})
    if len(events) > EVENTS_MAX:
        raise ValidationError({"events": f"At most {EVENTS_MAX} events per channel; this has {len(events)}."})
    modules = list(Module.objects.filter(organization=organization))
    clean, problems = [], []
    for name in events:
        match = _EVENT_RE.match(name.strip())
        if match is None:
            problems.append(f"“{name}” is not <Module>.<operation> or <Module>.<Field>.change.")
            continue
        module = _module(modules, match["module"])
        if module is None:
            problems.append(f"“{name}”: there is no module “{match['module']}”.")
            continue
        if not module.supports_webhooks:
            problems.append(f"“{name}”: {module.api_name} records cannot be subscribed to.")
            continue
        if match["field"]:
            field = Field.objects.usable().filter(module=module, api_name__iexact=match["field"]).first()
            if field is None:
                problems.append(f"“{name}”: {module.api_name} has no field “{match['field']}”.")
                continue
            clean.append(f"{module.api_name}.{field.api_name}.change")
            continue
        operation = match["operation"].lower()
        operation = OPERATION_SYNONYMS.get(operation, operation)
        if operation not in (*OPERATIONS, "all"):
            problems.append(f"“{name}”: the operation must be create, edit (or update), delete or all.")
            continue
        clean.append(f"{module.api_name}.{operation}")
    if problems:
        raise ValidationError({"events": problems})
    return list(dict.fromkeys(clean))


def event_name_valid(name: str) -> bool:
    """Whether name is spelled as an event name can be (the event catalogue lists no other)."""
    return _EVENT_RE.match(name) is not None


def _module(modules: list[Module], name: str) -> Module | None:
    lowered = name.lower()
    return next((m for m in modules if lowered in {n.lower() for n in m.merge_names}), None)


def channel_expiry_clean(*, expiry_time: Any, now: datetime.datetime) -> datetime.datetime:
    """An ISO 8601 time with an offset, in the future and within CHANNEL_MAX_EXPIRY_DAYS; None: the default."""
    if expiry_time is None:
        return now + datetime.timedelta(hours=settings.CHANNEL_DEFAULT_EXPIRY_HOURS)
    try:
        when = datetime.datetime.fromisoformat(str(expiry_time))
    except ValueError:
        raise ValidationError({"expiry_time": "Give an ISO 8601 time such as 2026-11-24T10:30:00+00:00."}) from None
    if when.tzinfo is None:
        raise ValidationError({"expiry_time": "Give the time with its UTC offset, e.g. +00:00."})
    latest = now + datetime.timedelta(days=settings.CHANNEL_MAX_EXPIRY_DAYS)
    if when <= now:
        raise ValidationError({"expiry_time": "The expiry time must be in the future."})
    if when > latest:
        raise ValidationError({"expiry_time": f"A channel may last at most {settings.CHANNEL_MAX_EXPIRY_DAYS:g} days "
                                              f"(until {latest.isoformat(timespec='seconds')}); renew it before then."})
    return when.astimezone(datetime.UTC)  # PostgreSQL refuses offsets beyond ±15:59 that Python accepts (+20:00)


def _fields_clean(*, organization: Organization, events: list[str], fields: Any) -> list[str]:
    if fields in (None, []):
        return []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ValidationError({"fields": "Give a list of field API names."})
    modules = {event.split(".")[0] for event in events}
    known = {name.lower(): name for name in Field.objects.usable().filter(
        module__organization=organization, module__api_name__in=modules).values_list("api_name", flat=True)}
    unknown = [f for f in fields if f.lower() not in known]
    if unknown:
        raise ValidationError({"fields": f"Not a field of {', '.join(sorted(modules))}: {', '.join(unknown)}."})
    return list(dict.fromkeys(known[f.lower()] for f in fields))


def _fan_out_check(channel: Channel) -> None:
    """One record event reaches at most CHANNEL_MAX_PER_EVENT channels, and an organization has at most
    CHANNEL_MAX_PER_ORGANIZATION: without them, one key could fan a single change out into hundreds of
    deliveries and spend the organization's daily quota."""
    others = [c for c in Channel.objects.filter(organization_id=channel.organization_id, is_active=True)
              if c.pk != channel.pk]
    limit = settings.CHANNEL_MAX_PER_ORGANIZATION
    if channel.pk is None and len(others) >= limit:
        raise ValidationError(f"{channel.organization.name} has {len(others)} active channels, the most it may have "
                              f"(CHANNEL_MAX_PER_ORGANIZATION={limit}); delete or deactivate one first.")
    per_event = settings.CHANNEL_MAX_PER_EVENT
    crowded = [name for name in channel.events
               if sum(1 for c in others if _watches(c.events, name)) >= per_event]
    if crowded:
        raise ValidationError({"events": f"{', '.join(crowded)}: already watched by {per_event} channels, the most "
                                         f"one event may notify (CHANNEL_MAX_PER_EVENT={per_event})."})


def _watches(events: list[str], name: str) -> bool:
    """Whether a channel's events include name, counting Module.all for the module's three operations."""
    module = name.split(".", 1)[0]
    return name in events or (f"{module}.all" in events and not name.endswith(".change")) or (
        name.endswith(".all") and any(e.startswith(module + ".") and not e.endswith(".change") for e in events))


def _channel_check(channel: Channel) -> None:
    """Field checks of the model (URL rules as for webhooks) and the token's length."""
    if len(channel.token) > TOKEN_MAX_LENGTH:
        raise ValidationError({"token": f"The token may have at most {TOKEN_MAX_LENGTH} characters."})
    channel.full_clean(exclude=["organization", "owner", "signing_secret", "token"])


def channel_create(
    *, organization: Organization, owner: CrmUser | None, events: Any, notify_url: Any, token: Any = "",
    fields: Any = None, expiry_time: Any = None, channel_id: Any = None, verify: bool = False,
) -> Channel:
    """Subscribe notify_url to events. With verify, the URL must echo a challenge first (else nothing is saved)."""
    if refusal := quotas.webhooks_refusal(organization):
        raise ValidationError(refusal)
    now = timezone.now()
    channel = Channel(organization=organization, owner=owner, notify_url=str(notify_url or "").strip(),
                      token=str(token or ""), expires_at=channel_expiry_clean(expiry_time=expiry_time, now=now))
    if channel_id is not None:
        if not isinstance(channel_id, str | int) or not CHANNEL_ID_RE.fullmatch(str(channel_id)):
            raise ValidationError({"channel_id": "Letters, digits, hyphens and underscores; at most 40 characters."})
        channel.public_id = str(channel_id)
        if Channel.objects.filter(organization=organization, public_id=channel.public_id).exists():
            raise ValidationError({"channel_id": f"There is already a channel “{channel.public_id}”."})
    channel.events = channel_events_clean(organization=organization, events=events)
    channel.fields = _fields_clean(organization=organization, events=channel.events, fields=fields)
    _channel_check(channel)
    _fan_out_check(channel)
    if verify:
        if (problem := channel_verify(channel=channel)) is not None:
            raise ValidationError({"notify_url": f"Verification failed: {problem}"})
        channel.verified_at = timezone.now()
    try:
        channel.save()
    except IntegrityError:  # the same id, made meanwhile by a parallel call
        raise ValidationError({"channel_id": f"There is already a channel “{channel.public_id}”."}) from None
    logger.info("channel.created", extra={"channel_id": channel.public_id, "organization_id": organization.pk,
                                          "events": list(channel.events)})
    return channel


def channel_update(*, channel: Channel, data: dict[str, Any]) -> Channel:
    """Change events, notify URL, token, field filter or active flag. A verified channel whose URL changes is
    verified again."""
    if "events" in data:
        channel.events = channel_events_clean(organization=channel.organization, events=data["events"])
    if "fields" in data or "events" in data:
        channel.fields = _fields_clean(organization=channel.organization, events=channel.events,
                                       fields=data.get("fields", channel.fields))
    if "token" in data:
        channel.token = str(data["token"] or "")
    if "active" in data:
        if not isinstance(data["active"], bool):
            raise ValidationError({"active": "Give true or false."})
        channel.is_active = data["active"]
    url_changed = "notify_url" in data and str(data["notify_url"] or "").strip() != channel.notify_url
    if url_changed:
        channel.notify_url = str(data["notify_url"] or "").strip()
    _channel_check(channel)
    if "events" in data or data.get("active"):
        _fan_out_check(channel)
    if url_changed and (channel.verified_at or data.get("verify")):
        if (problem := channel_verify(channel=channel)) is not None:
            raise ValidationError({"notify_url": f"Verification failed: {problem}"})
        channel.verified_at = timezone.now()
    channel.save()
    return channel


def channel_renew(*, channel: Channel, expiry_time: Any = None) -> Channel:
    """Push the expiry out again; only while the channel has not expired."""
    now = timezone.now()
    if channel.expires_at <= now:
        raise ValidationError("This channel has expired; subscribe again with a new channel.")
    channel.expires_at = channel_expiry_clean(expiry_time=expiry_time, now=now)
    channel.expiry_notice_sent_at = None
    channel.save(update_fields=["expires_at", "expiry_notice_sent_at", "modified_at"])
    return channel


def channel_delete(*, channel: Channel) -> None:
    """Unsubscribe; deliveries not sent yet are cancelled when they come due (logged), sent ones stay."""
    logger.info("channel.deleted", extra={"channel_id": channel.public_id, "organization_id": channel.organization_id})
    channel.delete()


def channel_status(channel: Channel, now: datetime.datetime | None = None) -> str:
    if not channel.is_active:
        return "inactive"
    return "expired" if channel.expires_at <= (now or timezone.now()) else "active"


def channel_verify(*, channel: Channel) -> str | None:
    """Send a signed challenge to the notify URL; None when it was echoed, else what went wrong.

    Called outside any database transaction (a hanging URL must hold no lock and no connection in a
    transaction), within CHANNEL_VERIFY_TIMEOUT, and charged to the daily quota like any call."""
    challenge = secrets.token_urlsafe(24)
    payload = {"type": VERIFICATION_TYPE, "challenge": challenge,
               "channel": {"id": channel.public_id, "expiry_time": channel.expires_at.isoformat()}}
    if channel.token:
        payload["token"] = channel.token
    request = request_sign(_json_request(channel, payload), secrets=channel.signing_secrets(timezone.now()),
                           message_id=f"msg_{uuid.uuid4().hex}")
    if not quotas.quota_consume(organization=channel.organization, now=timezone.now()):
        return "the organization's daily limit of webhook calls is reached; verify again tomorrow."
    result, _ = send_now(request, total_seconds=settings.CHANNEL_VERIFY_TIMEOUT)
    if result.error_class is not None and result.status_code is None:
        return errors.meaning(errors.error_class_of(result)) or result.error_message
    if not result.is_success:
        return f"the notify URL answered HTTP {result.status_code} instead of 200."
    if result.body.strip() == challenge.encode():
        return None
    try:
        echoed = json.loads(result.body).get("challenge")
    except (ValueError, AttributeError):
        echoed = None
    if echoed == challenge:
        return None
    return "the answer did not contain the challenge (send it back as the body, or as {\"challenge\": …})."


def _json_request(channel: Channel, payload: dict[str, Any]) -> RenderedRequest:
    return RenderedRequest(
        method="POST", url=channel.notify_url,
        headers={"User-Agent": settings.WEBHOOK_USER_AGENT, "Content-Type": "application/json; charset=utf-8"},
        body=json.dumps(payload, ensure_ascii=False).encode(), secrets=(channel.token,) if channel.token else (),
    )


# --- Notifying ------------------------------------------------------------------------------------

def record_event_notify(event: crm_events.RecordEvent) -> list[Delivery]:
    """Enqueue a notification for every receiving channel that watches this event (one per channel). A value
    written by response capture (a system change) is notified as an edit like any other, if it changed
    something: docs/internals/design/captured-changes.md."""
    if event.system and not event.changed_fields:
        return []  # a capture that wrote the values the record had: nothing happened a subscriber can see
    record = event.record
    module = record.module
    now = timezone.now()
    channels = [c for c in Channel.objects.receiving(now).filter(organization_id=module.organization_id)
                if any(name.startswith(module.api_name + ".") for name in c.events)]
    if not channels:
        return []
    changed = sorted(event.changed_fields) if event.operation == crm_events.EDIT else []
    deliveries = []
    for channel in channels:
        matched = _matched_events(channel, module.api_name, event.operation, changed)
        if not matched:
            continue
        payload = notification_payload(channel=channel, event=event, events=matched, changed=changed)
        request = _json_request(channel, payload)
        deliveries.append(delivery_new(
            sender=channel, record=record, source=DeliverySource.SUBSCRIPTION, trigger=", ".join(matched), due_at=now,
            ordering_key=f"channel:{channel.pk}:record:{record.pk}", request_sealed=request.seal(),
            request_display=request.masked().as_text(),
        ))
    return deliveries_insert(deliveries)


def _matched_events(channel: Channel, module: str, operation: str, changed: list[str]) -> list[str]:
    watched = set(channel.events)
    matched = [name for name in (f"{module}.{operation}", f"{module}.all") if name in watched]
    if operation == crm_events.EDIT:
        if channel.fields and not set(channel.fields) & set(changed):
            matched = []  # the field filter: only edits of these fields notify
        matched += [f"{module}.{field}.change" for field in changed if f"{module}.{field}.change" in watched]
    return matched


def notification_payload(*, channel: Channel, event: crm_events.RecordEvent, events: list[str],
                         changed: list[str]) -> dict[str, Any]:
    """Seed 002's shape: module, operation, ids, resource_uri, token, channel, data (+ events, affected_fields).
    Its JSON Schema is dispatcher/senders/notification_schema.py's, which tests check real notifications against."""
    record = event.record
    module = record.module.api_name
    values = event.old_values if event.operation == crm_events.DELETE else event.new_values or record.values
    payload: dict[str, Any] = {
        "module": module,
        "operation": event.operation,
        "ids": [str(record.pk)],
        "resource_uri": api_link(f"records/{module}/{record.pk}/"),
        "token": channel.token or None,
        "channel": {"id": channel.public_id, "expiry_time": channel.expires_at.isoformat()},
        "events": events,
        "data": {**values, **_system_values(record)},
    }
    if event.operation == crm_events.EDIT:
        payload["affected_fields"] = changed
    return payload


def _system_values(record: Record) -> dict[str, Any]:
    """Never null: an event's record is saved (both times set) and its owner is a required foreign key."""
    return {
        "id": str(record.pk),
        "Owner": {"id": str(record.owner.pk), "name": record.owner.full_name},
        "Created_Time": record.created_at.isoformat(),
        "Modified_Time": record.modified_at.isoformat(),
    }


# --- Expiry ---------------------------------------------------------------------------------------

def channels_expiry_notify(*, now: datetime.datetime | None = None) -> int:
    """Tell owners of channels that expire within CHANNEL_EXPIRY_NOTICE_HOURS, once per expiry time."""
    now = now or timezone.now()
    soon = now + datetime.timedelta(hours=settings.CHANNEL_EXPIRY_NOTICE_HOURS)
    told = 0
    for channel in Channel.objects.filter(is_active=True, expires_at__gt=now, expires_at__lte=soon,
                                          expiry_notice_sent_at__isnull=True).select_related("owner", "organization"):
        # Whoever stamps it sends it: two beat ticks (or two beats) never send the notice twice.
        if Channel.objects.filter(pk=channel.pk, expiry_notice_sent_at__isnull=True).update(expiry_notice_sent_at=now):
            notifications.channel_expiring(channel=channel)
            told += 1
    return told
