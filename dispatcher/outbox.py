"""The outbox: enqueue deliveries, claim due ones, run one attempt and record it.

The database is the source of truth. A delivery row is written in the caller's transaction; the
broker only carries wake-ups (``dispatcher.deliver`` on commit, ``dispatcher.drain`` from the pump).
Claims are conditional updates guarded by a claim token and a lease, so two workers never own the
same delivery, and a worker that dies leaves its delivery claimable again when the lease runs out.
"""
import datetime
import logging
import math
import time
import uuid
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, F, Q, Value, When, prefetch_related_objects
from django.utils import timezone

from crm.models import Organization, Record
from dispatcher import errors, health, notifications, quotas, retry, usage
from dispatcher.batch_sql import deliveries_update_claimed
from dispatcher.capture import response_capture
from dispatcher.http_client import HttpResult, request_send
from dispatcher.logs import attempt_log
from dispatcher.models import Attempt, Delivery, DeliverySource, DeliveryStatus, Endpoint, RetryPolicy, Webhook
from dispatcher.models.deliveries import TERMINAL_STATUSES
from dispatcher.models.endpoints import destination_of
from dispatcher.rendering.request import RenderedRequest, request_sign, webhook_render_unsigned
from dispatcher.wakeups import deliveries_wake, delivery_wake_at

logger = logging.getLogger(__name__)

RESPONSE_EXCERPT_CHARS = 64 * 1024  # of a response body kept on the attempt; the client already capped the read
MAX_EXTRA_CLAIMS = 3  # claims beyond the policy's attempts (workers that died mid-send) before giving up


@dataclass(frozen=True)
class Enqueue:
    """One delivery to make: which webhook, for which record, why, and when (None: now)."""

    webhook: Webhook
    record: Record
    source: str = DeliverySource.WORKFLOW
    trigger: str = ""
    due_at: datetime.datetime | None = None
    render_now: bool = False  # for a record about to be deleted


def delivery_enqueue(
    *, webhook: Webhook, record: Record, source: str = DeliverySource.WORKFLOW, trigger: str = "",
    due_at: datetime.datetime | None = None, render_now: bool = False,
) -> Delivery:
    """Write a delivery in the caller's transaction; a worker is woken when it commits."""
    return deliveries_enqueue([Enqueue(webhook, record, source, trigger, due_at, render_now)])[0]


def deliveries_enqueue(items: list[Enqueue]) -> list[Delivery]:
    """Write deliveries in the caller's transaction with one insert; on commit one wake-up per batch of
    them reaches the broker (a woken worker claims a whole batch)."""
    now = timezone.now()
    deliveries = []
    for item in items:
        webhook, record = item.webhook, item.record
        organization = webhook.organization
        if not organization.edition.webhooks_enabled:
            raise ValidationError(
                f"The {organization.edition.name} of {organization.name} does not include webhooks.")
        if record.module_id != webhook.module_id:
            raise ValidationError(f"Webhook “{webhook.name}” is for {webhook.module.api_name} records, not "
                                  f"{record.module.api_name}.")
        delivery = Delivery(
            organization=organization, webhook=webhook, webhook_name=webhook.name, record=record,
            record_ref=f"{record.module.api_name} #{record.pk}", source=item.source, trigger=item.trigger[:200],
            retry_policy_id=webhook.retry_policy_id or RetryPolicy.default_id(), due_at=item.due_at or now,
        )
        if item.render_now:
            request = webhook_render_unsigned(webhook=webhook, record=record)
            delivery.request_sealed, delivery.request_display = request.seal(), request.masked().as_text()
        deliveries.append(delivery)
    return deliveries_insert(deliveries)


def deliveries_insert(deliveries: list[Delivery]) -> list[Delivery]:
    """Insert prepared deliveries (webhook or channel) with one statement; workers are woken on commit."""
    now = timezone.now()
    Delivery.objects.bulk_create(deliveries)
    deliveries_wake([d.pk for d in deliveries if d.due_at and d.due_at <= now])
    return deliveries


RESENDABLE = (DeliveryStatus.FAILED, DeliveryStatus.LIMIT_REACHED, DeliveryStatus.CANCELLED)


def deliveries_resend(*, ids: list[int], by: str) -> int:
    """Send ended deliveries again: same delivery id (receivers deduplicate), the retry policy from the
    start, and the quota and the guarded client as for any attempt. Returns how many were queued."""
    now = timezone.now()
    with transaction.atomic():
        chosen = list(Delivery.objects.filter(Q(webhook__isnull=False) | Q(channel__isnull=False),
                                              pk__in=ids, status__in=RESENDABLE).values_list("pk", flat=True))
        count = Delivery.objects.filter(pk__in=chosen, status__in=RESENDABLE).update(
            status=DeliveryStatus.QUEUED, due_at=now, finished_at=None, status_reason="", cycle_start=F("attempt_count"),
            resent_by=by[:150], resent_at=now,
        )
        deliveries_wake(chosen)
    logger.info("deliver.resend count=%s by=%s", count, by)
    return count


def delivery_log_cancelled(
    *, webhook: Webhook, record: Record | None, record_ref: str, trigger: str, reason: str
) -> Delivery:
    """A delivery that was due but will not be sent (its record is gone or no longer qualifies), for the log."""
    now = timezone.now()
    return Delivery.objects.create(
        organization_id=webhook.organization_id, webhook=webhook, webhook_name=webhook.name, record=record,
        record_ref=record_ref, source=DeliverySource.WORKFLOW, trigger=trigger[:200],
        retry_policy_id=webhook.retry_policy_id or RetryPolicy.default_id(), status=DeliveryStatus.CANCELLED,
        status_reason=reason[:300], finished_at=now,
    )


def deliveries_claim(*, now: datetime.datetime, limit: int, ids: list[int] | None = None,
                     first: int | None = None) -> list[tuple[int, uuid.UUID]]:
    """Claim up to limit due deliveries for this worker, delivery `first` before the others if it is due;
    returns (id, claim token) pairs."""
    token = uuid.uuid4()
    lease_until = now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    with transaction.atomic():
        candidates = Delivery.objects.due(now)
        if ids is not None:
            candidates = candidates.filter(pk__in=ids)
        order = ["due_at"] if first is None else [Case(When(pk=first, then=Value(0)), default=Value(1)), "due_at"]
        # SKIP LOCKED lets workers claim side by side on PostgreSQL; SQLite ignores it and serialises writers.
        chosen = list(candidates.order_by(*order).select_for_update(skip_locked=True).values_list("pk", flat=True)[:limit])
        if not chosen:
            return []
        claimed = Delivery.objects.due(now).filter(pk__in=chosen).update(
            status=DeliveryStatus.DISPATCHED, claim_token=token, lease_expires_at=lease_until,
            attempt_count=F("attempt_count") + 1,
        )
    if claimed == len(chosen):  # all of them (always so on PostgreSQL, where they were locked)
        return [(pk, token) for pk in chosen]
    return [(pk, token) for pk in Delivery.objects.filter(claim_token=token).values_list("pk", flat=True)]


def delivery_run(*, delivery_id: int, batch: int = 1, budget_seconds: float = 0.0) -> Delivery | None:
    """Claim this delivery if it is due and attempt it, then drain other due work for budget_seconds.

    A worker woken for one delivery takes whatever else is due along with it, so a burst of enqueues
    (one wake-up per batch of them) is sent in batches instead of one claim per delivery.
    """
    if batch > 1:  # one claim for it and whatever else is due
        claimed = deliveries_claim(now=timezone.now(), limit=batch, first=delivery_id)
    else:
        claimed = deliveries_claim(now=timezone.now(), limit=1, ids=[delivery_id])
    attempted = deliveries_attempt(claimed=claimed)
    if budget_seconds > 0:
        deliveries_drain(batch=batch, budget_seconds=budget_seconds)
    return next((d for d in attempted if d.pk == delivery_id), None)


def deliveries_drain(*, batch: int, budget_seconds: float) -> int:
    """Claim and attempt due deliveries until none is left or the time budget is spent."""
    started, done = time.monotonic(), 0
    while time.monotonic() - started < budget_seconds:
        claimed = deliveries_claim(now=timezone.now(), limit=batch)
        if not claimed:
            break
        done += len(deliveries_attempt(claimed=claimed))
    return done


def deliveries_pump(*, now: datetime.datetime | None = None) -> int:
    """Periodic: send as many drain wake-ups as the due work needs (bounded); returns how many."""
    cap = settings.WEBHOOK_PUMP_MAX_DRAINS * settings.WEBHOOK_DRAIN_BATCH
    due = Delivery.objects.due(now or timezone.now())[:cap].count()
    drains = min(math.ceil(due / settings.WEBHOOK_DRAIN_BATCH), settings.WEBHOOK_PUMP_MAX_DRAINS)
    for _ in range(drains):
        # Expiring wake-ups cannot pile up in the broker while workers are busy.
        current_app.send_task("dispatcher.drain", expires=settings.WEBHOOK_PUMP_INTERVAL * 5)
    return drains


def deliveries_attempt(*, claimed: list[tuple[int, uuid.UUID]]) -> list[Delivery]:
    """Attempt a batch of claimed deliveries: one query loads them, one per webhook its parameters."""
    tokens = dict(claimed)
    deliveries = list(Delivery.objects.select_related(
        "organization__edition", "retry_policy", "webhook__organization", "webhook__module", "channel", "endpoint",
        "record__owner", "record__module",
    ).filter(pk__in=tokens).order_by("pk"))
    webhooks = {d.webhook_id: d.webhook for d in deliveries if d.webhook is not None}
    prefetch_related_objects(list(webhooks.values()), "entity_parameters", "custom_parameters", "captures__field")
    batch = _Batch(deliveries, tokens)
    for delivery in deliveries:
        if delivery.webhook_id is not None:
            delivery.webhook = webhooks[delivery.webhook_id]
        if delivery.endpoint is not None:
            delivery.endpoint = batch.endpoints.setdefault(delivery.endpoint_id, delivery.endpoint)
    started, attempted = time.monotonic(), deliveries
    try:
        for index, delivery in enumerate(deliveries):
            if index and time.monotonic() - started > settings.WEBHOOK_BATCH_HANDBACK_SECONDS:
                batch.hand_back(deliveries[index:])
                attempted = deliveries[:index]
                break
            _attempt(delivery, batch)
        return attempted
    finally:
        batch.close()


class _Batch:
    """What the attempts of one claimed batch share, so that most of their bookkeeping costs one statement
    per batch rather than one per delivery: leases (renewed only when one is close to running out),
    daily quota (reserved for the batch, the unused part given back), usage counts (added up in memory),
    and one object per destination (health counts stay current within the batch).

    A worker that dies mid-batch loses at most the batch's usage counts and reserved quota (the quota errs
    on the side of sending fewer calls), never a delivery: those are taken over when their leases end.
    """

    def __init__(self, deliveries: list[Delivery], tokens: dict[int, uuid.UUID]) -> None:
        self.tokens = tokens
        self.waiting = {d.pk: d for d in deliveries}  # not attempted yet
        self.endpoints: dict[int, Endpoint] = {}
        self.by_destination: dict[tuple[int, str], Endpoint] = {}
        self.quota: dict[int, tuple[datetime.date, int]] = {}  # organization: (local day, calls reserved, unused)
        self.organizations: dict[int, Organization] = {}
        self.usage = usage.UsageTally()
        self.outcomes: list[_Outcome] = []
        self.first_outcome_at = 0.0

    def record(self, outcome: "_Outcome") -> None:
        """Keep an outcome for the next write; written at once when outcomes have waited
        WEBHOOK_ATTEMPT_FLUSH_SECONDS (slow receivers; 0: every attempt is stored as it ends)."""
        if not self.outcomes:
            self.first_outcome_at = time.monotonic()
        self.outcomes.append(outcome)
        if time.monotonic() - self.first_outcome_at >= settings.WEBHOOK_ATTEMPT_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Write the kept outcomes, then count them, log them, update destination health and tell people."""
        outcomes, self.outcomes = self.outcomes, []
        if not outcomes:
            return
        updated = _outcomes_write(outcomes)
        for o in outcomes:
            delivery, attempt = o.delivery, o.attempt
            self.usage.add(organization=delivery.organization, now=o.now, source=_usage_source(delivery),
                           outcome=attempt.outcome, duration_ms=attempt.duration_ms if o.timed else None)
            attempt_log(delivery, attempt)
            if delivery.pk not in updated:
                continue
            if o.timed and delivery.endpoint is not None and attempt.outcome in (DeliveryStatus.SUCCESS,
                                                                                 DeliveryStatus.FAILED):
                health.endpoint_outcome(endpoint=delivery.endpoint, now=o.now,
                                        success=attempt.outcome == DeliveryStatus.SUCCESS)
            if attempt.outcome == DeliveryStatus.FAILED:
                notifications.delivery_failed(delivery=delivery)

    def start(self, delivery: Delivery) -> bool:
        """Take this delivery's turn; False when its claim is no longer this worker's."""
        self.waiting.pop(delivery.pk, None)
        token = self.tokens[delivery.pk]
        if delivery.claim_token != token:
            return False
        margin = datetime.timedelta(seconds=settings.WEBHOOK_TOTAL_TIMEOUT + 5)
        if delivery.lease_expires_at and timezone.now() + margin < delivery.lease_expires_at:
            return True  # nobody else can have claimed it: the lease has not run out
        until = timezone.now() + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
        renewed = Delivery.objects.filter(pk=delivery.pk, claim_token=token, status=DeliveryStatus.DISPATCHED) \
            .update(lease_expires_at=until)
        if renewed:
            delivery.lease_expires_at = until
            # The rest of the batch gets a new lease with it; the ones whose claim was lost are dropped.
            rest = {pk: d for pk, d in self.waiting.items()}
            Delivery.objects.filter(pk__in=rest, claim_token__in=set(self.tokens.values()),
                                    status=DeliveryStatus.DISPATCHED).update(lease_expires_at=until)
            kept = set(Delivery.objects.filter(pk__in=rest, lease_expires_at=until).values_list("pk", flat=True))
            for pk, other in rest.items():
                if pk in kept:
                    other.lease_expires_at = until
                else:
                    other.claim_token = None
        return bool(renewed)

    def hand_back(self, rest: list[Delivery]) -> None:
        """Give back the deliveries this batch has not started, because slow receivers have held it up:
        they are due again at once, for any worker, and a slow receiver delays them by seconds, not by the
        rest of the batch."""
        for delivery in rest:
            self.waiting.pop(delivery.pk, None)
        mine = [d for d in rest if d.claim_token == self.tokens[d.pk]]
        for status in (DeliveryStatus.QUEUED, DeliveryStatus.RETRY):
            group = [d for d in mine if _waiting_status(d) == status]
            if group:
                Delivery.objects.filter(pk__in=[d.pk for d in group], claim_token__in=set(self.tokens.values()),
                                        status=DeliveryStatus.DISPATCHED).update(
                    status=status, claim_token=None, lease_expires_at=None, attempt_count=F("attempt_count") - 1)
            for delivery in group:
                delivery.status, delivery.claim_token, delivery.lease_expires_at = status, None, None
                delivery.attempt_count -= 1
        logger.info("deliver.hand_back count=%s", len(mine))
        deliveries_wake([d.pk for d in mine])

    def quota_take(self, delivery: Delivery, now: datetime.datetime) -> bool:
        """One call of today's quota, from the batch's reservation (made for all its deliveries of the organization)."""
        organization = delivery.organization
        self.organizations[organization.pk] = organization
        today = quotas.local_day(organization=organization, now=now)
        day, unused = self.quota.get(organization.pk, (today, 0))
        if day != today:  # the batch crossed midnight in the organization's time zone
            quotas.quota_refund(organization=organization, day=day, count=unused)
            unused = 0
        if not unused:
            wanted = 1 + sum(1 for d in self.waiting.values() if d.organization_id == organization.pk)
            unused = quotas.quota_reserve(organization=organization, now=now, count=wanted)
            if not unused:
                self.quota[organization.pk] = (today, 0)
                return False
        self.quota[organization.pk] = (today, unused - 1)
        return True

    def endpoint(self, delivery: Delivery, url: str) -> Endpoint:
        """The destination's health record; known from the first attempt on and kept with the delivery."""
        if delivery.endpoint is None:
            key = (delivery.organization_id, destination_of(url))
            if key not in self.by_destination:
                found = health.endpoint_for(organization=delivery.organization, url=url)
                self.by_destination[key] = self.endpoints.setdefault(found.pk, found)
            delivery.endpoint = self.by_destination[key]
        return delivery.endpoint

    def close(self) -> None:
        self.flush()
        for organization_id, (day, unused) in self.quota.items():
            quotas.quota_refund(organization=self.organizations[organization_id], day=day, count=unused)
        self.usage.flush()


def delivery_attempt(*, delivery_id: int, token: uuid.UUID) -> Delivery:
    """Make one attempt of a claimed delivery and record it; the claim token proves ownership."""
    return deliveries_attempt(claimed=[(delivery_id, token)])[0]


def _attempt(delivery: Delivery, batch: _Batch) -> Delivery:
    now = timezone.now()
    token = batch.tokens[delivery.pk]
    # Before each attempt: the claim must still be this worker's, with lease enough for a whole attempt
    # (a batch takes time; an earlier item may have been slow).
    if not batch.start(delivery):
        return delivery  # the lease ran out and another worker owns it now
    if delivery.cycle_attempts > len(delivery.retry_policy.delays) + 1 + MAX_EXTRA_CLAIMS:
        return _finish(delivery, token, batch, now, DeliveryStatus.FAILED, errors.INTERNAL_ERROR,
                       "Workers stopped while sending it several times; given up.")
    if (problem := _unsendable(delivery)) is not None:
        status, error_class, reason = problem
        return _finish(delivery, token, batch, now, status, error_class, reason)
    if not delivery.request_sealed and not _prepare(delivery, token, batch, now):
        return delivery
    request = RenderedRequest.unseal(delivery.request_sealed)
    endpoint = batch.endpoint(delivery, request.url)
    if endpoint.is_disabled:
        return _release(delivery, token, DeliveryStatus.HELD, due_at=None,
                        reason=f"On hold: the destination is disabled. {endpoint.disabled_reason}")
    if endpoint.rate_limit and not (delivery.rate_slot_at and delivery.rate_slot_at <= now):
        if (slot := health.rate_slot_take(endpoint=endpoint, now=now)) is not None:
            _release(delivery, token, _waiting_status(delivery), due_at=slot, rate_slot_at=slot,
                     reason=f"Waiting for the destination's rate limit ({endpoint.rate_limit}/s).")
            delivery_wake_at(delivery.pk, slot)
            return delivery
    if not batch.quota_take(delivery, now):
        delivery = _finish(delivery, token, batch, now, DeliveryStatus.LIMIT_REACHED, errors.LIMIT_REACHED,
                           f"Daily limit of {quotas.daily_limit(organization=delivery.organization)} calls reached.")
        if quotas.quota_limit_notice_claim(organization=delivery.organization, now=now):
            notifications.limit_reached(organization=delivery.organization, now=now)
        return delivery
    sender = delivery.channel if delivery.source == DeliverySource.SUBSCRIPTION else delivery.webhook
    signed = request_sign(request, secret=sender.signing_secret, message_id=delivery.message_id)
    return _record(delivery, token, batch, now, request_send(signed), signed)


def _unsendable(delivery: Delivery) -> tuple[str, str, str] | None:
    """Why this delivery must end before sending, checked before every attempt."""
    if delivery.source == DeliverySource.SUBSCRIPTION:
        if delivery.channel is None or not delivery.channel.is_active:
            return DeliveryStatus.CANCELLED, "", "The channel was deleted or deactivated."
    elif delivery.webhook is None or not delivery.webhook.is_active:
        return DeliveryStatus.CANCELLED, "", "The webhook was deleted or deactivated."
    if delivery.record is None and not delivery.request_sealed:  # a delete event's request is rendered at once
        return DeliveryStatus.CANCELLED, "", "The record was deleted."
    if not delivery.organization.edition.webhooks_enabled:
        edition = delivery.organization.edition.name
        return DeliveryStatus.FAILED, errors.INTERNAL_ERROR, f"The {edition} does not include webhooks."
    return None


def _prepare(delivery: Delivery, token: uuid.UUID, batch: _Batch, now: datetime.datetime) -> bool:
    """Render and store the request on the first attempt; a rendering failure ends the delivery."""
    try:
        request = webhook_render_unsigned(webhook=delivery.webhook, record=delivery.record)
    except Exception:
        logger.exception("deliver.render_failed delivery=%s webhook=%s", delivery.public_id, delivery.webhook_id)
        _finish(delivery, token, batch, now, DeliveryStatus.FAILED, errors.INTERNAL_ERROR,
                "The request could not be rendered; see the worker log.")
        return False
    delivery.request_sealed = request.seal()
    delivery.request_display = request.masked().as_text()
    delivery.request_prepared = True  # stored with the outcome of this attempt, in the same UPDATE
    return True


def _record(delivery: Delivery, token: uuid.UUID, batch: _Batch, started: datetime.datetime,
            result: HttpResult, request: RenderedRequest) -> Delivery:
    finished = timezone.now()
    error_class = errors.error_class_of(result)
    if result.is_success:
        status, due_at, reason = DeliveryStatus.SUCCESS, None, ""
    else:
        due_at = retry.next_attempt_at(policy=delivery.retry_policy, attempt_number=delivery.cycle_attempts,
                                       result=result, now=finished)
        status = DeliveryStatus.RETRY if due_at else DeliveryStatus.FAILED
        reason = errors.meaning(error_class) + (f" {result.error_message}" if result.error_message else "")
    attempt = Attempt(
        delivery=delivery, number=delivery.attempt_count, started_at=started, duration_ms=result.duration_ms,
        status_code=result.status_code, error_class=error_class, error_message=result.error_message[:500],
        response_headers={name: request.mask(value) for name, value in result.headers.items()},
        response_truncated=result.truncated, outcome=status, captured=_capture(delivery, result),
        # Masked too: a receiver that echoes the request would otherwise put its secrets in the log.
        response_body=request.mask(result.body.decode("utf-8", "replace")[:RESPONSE_EXCERPT_CHARS]).replace(
            "\x00", "\ufffd"),
    )
    return _conclude(delivery, token, batch, attempt, now=finished, reason=reason, due_at=due_at,
                     duration_ms=result.duration_ms, timed=True)


def _usage_source(delivery: Delivery) -> str:
    """Attempts after a resend count as replays in the usage chart."""
    return DeliverySource.REPLAY if delivery.resent_at else delivery.source


def _capture(delivery: Delivery, result: HttpResult) -> dict:
    """Response capture for this attempt; whatever goes wrong is recorded, never raised."""
    if result.status_code is None or delivery.webhook is None or not delivery.webhook.capture_response:
        return {}
    try:
        return response_capture(webhook=delivery.webhook, record=delivery.record, body=result.body,
                                success=result.is_success)
    except Exception:
        logger.exception("capture.failed delivery=%s", delivery.public_id)
        return {"error": "Internal processing error while capturing; see the worker log."}


def _finish(delivery: Delivery, token: uuid.UUID, batch: _Batch, now: datetime.datetime, status: str,
            error_class: str, reason: str) -> Delivery:
    """End a delivery without an HTTP exchange (cancelled, limit reached, internal error); logged as an attempt."""
    attempt = Attempt(delivery=delivery, number=delivery.attempt_count, started_at=now, error_class=error_class,
                      error_message=reason[:500], outcome=status)
    return _conclude(delivery, token, batch, attempt, now=now, reason=reason)


def _conclude(delivery: Delivery, token: uuid.UUID, batch: "_Batch", attempt: Attempt, *, now: datetime.datetime,
              reason: str, due_at: datetime.datetime | None = None, duration_ms: int | None = None,
              timed: bool = False) -> Delivery:
    """Record the attempt and the delivery's next state; the batch writes them (see _Batch.flush)."""
    terminal = attempt.outcome in TERMINAL_STATUSES
    changes = {
        "status": attempt.outcome, "status_reason": reason[:300], "due_at": due_at, "lease_expires_at": None,
        "claim_token": None, "last_status_code": attempt.status_code, "last_error_class": attempt.error_class,
        "last_duration_ms": duration_ms, "rate_slot_at": None, "endpoint": delivery.endpoint,
        "finished_at": now if terminal else None,
    }
    if getattr(delivery, "request_prepared", False):
        changes.update(request_sealed=delivery.request_sealed, request_display=delivery.request_display)
    batch.record(_Outcome(delivery, token, attempt, changes, now, timed))
    return delivery


@dataclass
class _Outcome:
    delivery: Delivery
    token: uuid.UUID
    attempt: Attempt
    changes: dict
    now: datetime.datetime
    timed: bool


def _outcomes_write(outcomes: list[_Outcome]) -> set[int]:
    """Insert the attempts and move each delivery on (one statement each), in one transaction; returns the
    deliveries whose claim was still this worker's (the others' attempts are recorded all the same: they
    happened, and their numbers are these claims' own)."""
    with transaction.atomic():
        Attempt.objects.bulk_create([o.attempt for o in outcomes])
        # Conditional on the claim token, so a worker whose lease ran out cannot overwrite the new owner.
        updated = deliveries_update_claimed([(o.delivery.pk, o.token, o.changes) for o in outcomes])
    for o in outcomes:
        if o.delivery.pk not in updated:
            logger.warning("deliver.claim_lost delivery=%s attempt=%s", o.delivery.public_id, o.attempt.number)
            continue
        for key, value in o.changes.items():
            setattr(o.delivery, key, value)
    return updated


def _waiting_status(delivery: Delivery) -> str:
    """The status of a claimed delivery given back unattempted: Retry once an earlier attempt of this cycle
    failed, Queued before its first (its claim already counts in cycle_attempts)."""
    return DeliveryStatus.RETRY if delivery.cycle_attempts > 1 else DeliveryStatus.QUEUED


def _release(delivery: Delivery, token: uuid.UUID, status: str, *, due_at: datetime.datetime | None, reason: str,
             rate_slot_at: datetime.datetime | None = None) -> Delivery:
    """Give a claimed delivery back without an attempt (on hold, or waiting for the rate limit)."""
    changes = {
        "status": status, "status_reason": reason[:300], "due_at": due_at, "rate_slot_at": rate_slot_at,
        "lease_expires_at": None, "claim_token": None, "endpoint": delivery.endpoint,
    }
    if getattr(delivery, "request_prepared", False):
        changes.update(request_sealed=delivery.request_sealed, request_display=delivery.request_display)
    if Delivery.objects.filter(pk=delivery.pk, claim_token=token).update(
            attempt_count=F("attempt_count") - 1, **changes) == 1:
        for key, value in changes.items():
            setattr(delivery, key, value)
        delivery.attempt_count -= 1
    return delivery


PURGE_BATCH = 1000  # deliveries deleted per statement, so a large purge never holds long locks


def deliveries_purge(*, older_than_days: int, now: datetime.datetime | None = None) -> int:
    """Delete ended deliveries (with their attempts) that finished before the retention period."""
    cutoff = (now or timezone.now()) - datetime.timedelta(days=older_than_days)
    old = Delivery.objects.filter(status__in=TERMINAL_STATUSES, finished_at__lt=cutoff)
    purged = 0
    while batch := list(old.values_list("pk", flat=True)[:PURGE_BATCH]):
        Delivery.objects.filter(pk__in=batch).delete()
        purged += len(batch)
    logger.info("deliver.purge count=%s cutoff=%s", purged, cutoff.isoformat())
    return purged
