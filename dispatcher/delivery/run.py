"""The drain loop: from "deliveries are due" to "their attempts are stored", for one worker process.

1. Claim due deliveries (delivery/claims.py), fairly across organizations, whenever the sender pool has
   room, and look again every WEBHOOK_CLAIM_POLL_SECONDS while requests are in flight.
2. Prepare each in this thread, which owns the database connection (delivery/attempt.py): checks,
   rendering, destination, rate limit, quota, signing.
3. Hand the signed requests to the sender pool (delivery/pool.py): many in flight at once, at most
   WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION per destination. A delivery whose destination has that many in
   flight waits here for a slot while the destination answers (no more is claimed while the pool's room
   is taken); once the destination's oldest request has waited SLOW_DESTINATION_SECONDS, deliveries for
   it are given back to the database instead, due again after as long as that request has waited, so a
   hanging receiver holds only its own share of the slots and is asked less and less often.
4. As requests finish, store their outcomes together (delivery/outcomes.py), then run the follow-ups
   (delivery/followups.py): capture, endpoint health, e-mails, usage, logs.
"""
import collections
import datetime
import logging
import time
import uuid
from collections.abc import Hashable
from typing import Any

from django.conf import settings
from django.db.models import Prefetch
from django.utils import timezone

from config.caches import VersionedCache, cache_register
from crm.models import Organization
from dispatcher import health, quotas
from dispatcher.delivery import counters, states
from dispatcher.delivery.attempt import Outcome, Send, attempt_prepare, outcome_of_result, release
from dispatcher.delivery.claims import deliveries_claim
from dispatcher.delivery.followups import followups_run
from dispatcher.delivery.outcomes import outcomes_write
from dispatcher.delivery.pool import SenderPool, sender_pool
from dispatcher.models import Capture, Channel, Delivery, Endpoint, RetryPolicy, Webhook
from dispatcher.models.endpoints import destination_of
from dispatcher.notifications import notify_later
from dispatcher.usage import UsageTally

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 5  # a request is only started with at least the total timeout plus this left of its lease
REPORT_EVERY_SECONDS = 1.0  # how often a busy process writes its requests in flight for /metrics
# A destination whose oldest request in flight has waited this long is slow: deliveries for it are given back
# rather than held in the worker (where they would take slots from other destinations). A 100-500 ms
# receiver stays well under it; one that hangs to the timeout passes it in a second.
SLOW_DESTINATION_SECONDS = 1.0


def delivery_run(*, delivery_id: int, batch: int = 1, budget_seconds: float = 0.0) -> Delivery | None:
    """Claim this delivery if it is due and attempt it, with whatever else is due (up to batch at a time),
    then go on draining due work for budget_seconds."""
    loop = DrainLoop(sender_pool())
    if batch > 1:
        loop.run(batch=batch, budget_seconds=budget_seconds, first=delivery_id)
    else:
        loop.run(batch=1, budget_seconds=budget_seconds, ids=[delivery_id])
    return loop.attempted.get(delivery_id)


def deliveries_drain(*, batch: int, budget_seconds: float) -> int:
    """Claim and attempt due deliveries until none is left or the time budget is spent; returns how many
    were attempted."""
    loop = DrainLoop(sender_pool())
    loop.run(batch=batch, budget_seconds=budget_seconds)
    return len(loop.attempted)


def deliveries_attempt(*, claimed: list[tuple[int, uuid.UUID]]) -> list[Delivery]:
    """Attempt deliveries claimed already (by deliveries_claim), all together; returns them, in id order."""
    loop = DrainLoop(sender_pool())
    try:
        loop.start(claimed)
        loop.finish_all()
    finally:
        loop.close()
    return [loop.attempted[pk] for pk in sorted(loop.attempted)]


def delivery_attempt(*, delivery_id: int, token: uuid.UUID) -> Delivery:
    """Make one attempt of a claimed delivery and record it; the claim token proves ownership."""
    return deliveries_attempt(claimed=[(delivery_id, token)])[0]


WEBHOOKS_KEPT = 1000  # webhooks (with their parameters and captures) a process keeps between claims
_webhook_cache: VersionedCache[int, Webhook] = VersionedCache("engine webhooks", size=WEBHOOKS_KEPT)


def _webhooks(ids: set[int]) -> dict[int, Webhook]:
    """The webhooks with their parameters and captures, reused while unchanged: one cheap query per claim
    asks for their modification times (every change goes through a save or sets modified_at, admin actions
    included), and only those changed or new since are loaded again."""
    if not ids:
        return {}
    current = dict(Webhook.objects.filter(pk__in=ids).values_list("pk", "modified_at"))
    return _webhook_cache.get_many(current, lambda stale: Webhook.objects.select_related(
        "organization", "module").prefetch_related(
        "entity_parameters", "custom_parameters", "headers",
        Prefetch("captures", queryset=Capture.objects.select_related("field")),
    ).in_bulk(stale))


class _Recent:
    """Rows of a small table that change rarely (organizations with their edition, retry policies), kept for
    a few seconds: their version is the current KEEP_SECONDS period, so a change (an edition without
    webhooks, a new delay) applies within KEEP_SECONDS."""

    KEEP_SECONDS = 10.0

    def __init__(self, name: str, queryset) -> None:
        self.queryset = queryset
        self.cache: VersionedCache[int, Any] = VersionedCache(name, size=10_000)

    def get(self, ids: set[int]) -> dict:
        period = int(time.monotonic() // self.KEEP_SECONDS)
        return self.cache.get_many(dict.fromkeys(ids, period), self.queryset.in_bulk)


_organizations = _Recent("engine organizations", Organization.objects.select_related("edition"))
_policies = _Recent("engine retry policies", RetryPolicy.objects.all())
cache_register("engine counters reported", counters.reported.clear)


class DrainLoop:
    """What the attempts of one drain share: the sender pool, the outcomes not stored yet, the daily quota
    reserved per claim (the unused part given back), usage counts added up in memory, and one object per
    destination (health counts stay current within the drain).

    A worker that dies mid-drain loses at most its usage counts and reserved quota (the quota errs on the
    side of sending fewer calls), never a delivery: those are taken over when their leases end.
    """

    def __init__(self, pool: SenderPool) -> None:
        self.pool = pool
        self.run_id = uuid.uuid4().hex
        self.sending: dict[Hashable, Send] = {}  # (run id, delivery id): the pool hands the key back
        self.waiting: dict[int, collections.deque[Send]] = {}  # endpoint id -> sends waiting for a slot there
        self.outcomes: list[Outcome] = []
        self.first_outcome_at = 0.0
        self.attempted: dict[int, Delivery] = {}
        self.endpoints: dict[int, Endpoint] = {}
        self.by_destination: dict[tuple[int, str], Endpoint] = {}
        self.quota: dict[int, tuple[datetime.date, int]] = {}  # organization: (local day, calls reserved, unused)
        self.unprepared: collections.Counter = collections.Counter()  # organization: claimed, not prepared yet
        self.organizations: dict[int, Organization] = {}
        self.usage = UsageTally()
        self.reported_at = time.monotonic()  # a short drain reports once, when it closes

    # --- the loop -------------------------------------------------------------------------------------
    def run(self, *, batch: int, budget_seconds: float, first: int | None = None,
            ids: list[int] | None = None) -> None:
        poll = settings.WEBHOOK_CLAIM_POLL_SECONDS
        deadline = time.monotonic() + budget_seconds
        refill = max(1, min(batch, self.pool.max_in_flight) // 2)  # claims of at least half a batch
        next_claim_at, claimed_once = 0.0, False
        try:
            while True:
                now = time.monotonic()
                may_claim = (not claimed_once or now < deadline) and now >= next_claim_at
                if may_claim and (self.room() >= refill or self.idle()):
                    limit = min(batch, self.room())
                    claimed = deliveries_claim(now=timezone.now(), limit=limit, first=first, ids=ids)
                    claimed_once, first = True, None
                    if claimed:
                        self.start(claimed)
                    if len(claimed) < limit or ids is not None:  # nothing more is due right now
                        next_claim_at = time.monotonic() + (poll if ids is None else budget_seconds + 1)
                if self.idle():
                    self.flush()
                    if time.monotonic() >= deadline or time.monotonic() < next_claim_at:
                        return
                    continue
                self.collect(timeout=poll)
        finally:
            self.close()

    def finish_all(self) -> None:
        while not self.idle():
            self.collect(timeout=settings.WEBHOOK_CLAIM_POLL_SECONDS)
        self.flush()

    def room(self) -> int:
        return self.pool.room() - sum(len(queue) for queue in self.waiting.values())

    def idle(self) -> bool:
        return not self.sending and not self.waiting

    # --- 1-3: claimed deliveries prepared and handed to the pool -----------------------------------------
    def start(self, claimed: list[tuple[int, uuid.UUID]]) -> None:
        tokens = dict(claimed)
        deliveries = self.load(tokens)
        for delivery in deliveries:
            self.unprepared[delivery.organization_id] += 1
        for delivery in deliveries:
            self.unprepared[delivery.organization_id] -= 1
            self.attempted[delivery.pk] = delivery
            token = tokens[delivery.pk]
            if delivery.claim_token != token:  # another worker took it over meanwhile
                counters.count("claim_lost")
                continue
            prepared = attempt_prepare(delivery, token, self)
            if isinstance(prepared, Outcome):
                self.record(prepared)
            elif isinstance(prepared, Send):
                self.dispatch(prepared)

    def load(self, tokens: dict[int, uuid.UUID]) -> list[Delivery]:
        """The claimed deliveries with what their attempts need, each related object shared by the claim's
        deliveries rather than joined and decrypted once per row: destinations and channels fresh from this
        claim, webhooks reloaded when modified, organizations and retry policies at most 10 s old."""
        deliveries = list(Delivery.objects.select_related("endpoint", "record__owner", "record__module")
                          .defer("request_display").filter(pk__in=tokens).order_by("pk"))

        def ids(attribute: str) -> set[int]:
            return {value for d in deliveries if (value := getattr(d, attribute)) is not None}

        webhooks = _webhooks(ids("webhook_id"))
        channels = Channel.objects.in_bulk(ids("channel_id")) if ids("channel_id") else {}
        organizations = _organizations.get(ids("organization_id"))
        policies = _policies.get(ids("retry_policy_id"))
        for webhook in webhooks.values():  # a kept webhook renders with the organization as it is now
            webhook.organization = organizations.get(webhook.organization_id, webhook.organization)
        for delivery in deliveries:
            delivery.organization = organizations[delivery.organization_id]
            delivery.retry_policy = policies[delivery.retry_policy_id]
        for delivery in deliveries:
            delivery.webhook = webhooks.get(delivery.webhook_id) if delivery.webhook_id else None
            delivery.channel = channels.get(delivery.channel_id) if delivery.channel_id else None
            if delivery.endpoint is not None:  # fresh from this claim, one object per destination
                self.endpoints[delivery.endpoint.pk] = delivery.endpoint
        for delivery in deliveries:
            if delivery.endpoint_id is not None:
                delivery.endpoint = self.endpoints[delivery.endpoint_id]
        for endpoint in self.endpoints.values():  # by destination too, for deliveries on their first attempt
            self.by_destination[(endpoint.organization_id, endpoint.destination)] = endpoint
        return deliveries

    def dispatch(self, send: Send) -> None:
        """Into the pool if its destination has room; else wait here for a slot while the destination
        answers (claims stop when the pool's room is taken, so what waits here is bounded); else back to the
        database: the destination is slow, and what waits for it would take slots from the others."""
        destination = send.destination
        if self.pool.has_room_for(destination) and not self.waiting.get(destination):
            self.submit(send)
        elif self.pool.oldest_age(destination) < SLOW_DESTINATION_SECONDS:
            self.waiting.setdefault(destination, collections.deque()).append(send)
        else:
            self.hand_back(send)

    def submit(self, send: Send) -> None:
        delivery = send.delivery
        margin = datetime.timedelta(seconds=settings.WEBHOOK_TOTAL_TIMEOUT + LEASE_MARGIN_SECONDS)
        now = timezone.now()
        if delivery.lease_expires_at is None or delivery.lease_expires_at < now + margin:
            until = now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
            if not Delivery.objects.filter(pk=delivery.pk, claim_token=send.token,
                                           status=states.S.DISPATCHED).update(lease_expires_at=until):
                counters.count("claim_lost")
                return  # the lease ran out while it waited, and another worker owns it now
            delivery.lease_expires_at = until
        send.started_at = now
        self.sending[(self.run_id, delivery.pk)] = send
        self.pool.submit((self.run_id, delivery.pk), send.destination, send.request, send.auth)

    def hand_back(self, send: Send) -> None:
        """Its destination is busy: due again after as long as the destination's oldest request has waited."""
        delivery = send.delivery
        wait = max(self.pool.oldest_age(send.destination), settings.WEBHOOK_CLAIM_POLL_SECONDS)
        due_at = timezone.now() + datetime.timedelta(seconds=wait)
        counters.count("destination_busy")
        # No wake-up of its own: the pump and every busy drain loop find it when it is due.
        if release(delivery, send.token, states.waiting_status(delivery), due_at=due_at,
                   reason="Waiting: the destination already has as many requests in flight as it may."):
            self._refund_one(delivery)

    # --- 4: finished requests stored -------------------------------------------------------------------
    def collect(self, timeout: float) -> None:
        flush_in = settings.WEBHOOK_ATTEMPT_FLUSH_SECONDS - (time.monotonic() - self.first_outcome_at)
        wait = min(timeout, max(flush_in, 0.0)) if self.outcomes else timeout
        for sent in self.pool.collect(timeout=wait):
            send = self.sending.pop(sent.key, None)
            if send is not None:  # not a leftover of an earlier loop of this process
                self.record(outcome_of_result(send, sent.result, sent.request))
        for destination in list(self.waiting):
            queue = self.waiting[destination]
            while queue and self.pool.has_room_for(destination):
                self.submit(queue.popleft())
            if queue and self.pool.oldest_age(destination) >= SLOW_DESTINATION_SECONDS:
                while queue:  # it turned slow while they waited: they would hold slots other destinations need
                    self.hand_back(queue.popleft())
            if not queue:
                del self.waiting[destination]
        if self.outcomes and (not self.sending or len(self.outcomes) >= self.pool.max_in_flight
                              or time.monotonic() - self.first_outcome_at >= settings.WEBHOOK_ATTEMPT_FLUSH_SECONDS):
            self.flush()

    def record(self, outcome: Outcome) -> None:
        if not self.outcomes:
            self.first_outcome_at = time.monotonic()
        self.outcomes.append(outcome)
        if settings.WEBHOOK_ATTEMPT_FLUSH_SECONDS <= 0:
            self.flush()

    def flush(self) -> None:
        """Store the outcomes gathered so far, then run their follow-ups."""
        outcomes, self.outcomes = self.outcomes, []
        if outcomes:
            updated = outcomes_write(outcomes)
            followups_run(outcomes=outcomes, updated=updated, usage=self.usage)
        if time.monotonic() - self.reported_at >= REPORT_EVERY_SECONDS:
            self.report()

    def report(self) -> None:
        self.reported_at = time.monotonic()
        counters.counters_flush()
        counters.sender_report(in_flight=self.pool.in_flight, max_in_flight=self.pool.max_in_flight)

    def close(self) -> None:
        """Store what is left, give back unused quota, add up usage. Requests still in flight after an
        error are left to finish; their deliveries are taken over when the lease runs out."""
        for queue in self.waiting.values():
            for send in queue:
                self.hand_back(send)
        self.waiting.clear()
        self.flush()
        for organization_id, (day, unused) in self.quota.items():
            quotas.quota_refund(organization=self.organizations[organization_id], day=day, count=unused)
        self.quota.clear()
        self.usage.flush()
        self.report()

    # --- what attempts ask of the loop (delivery/attempt.py's Engine) -----------------------------------
    def quota_take(self, delivery: Delivery, now: datetime.datetime) -> bool:
        """One call of today's quota, from the reservation made for the claim's deliveries of the organization."""
        organization = delivery.organization
        self.organizations[organization.pk] = organization
        today = quotas.local_day(organization=organization, now=now)
        day, unused = self.quota.get(organization.pk, (today, 0))
        if day != today:  # the drain crossed midnight in the organization's time zone
            quotas.quota_refund(organization=organization, day=day, count=unused)
            unused = 0
        if not unused:
            wanted = 1 + self.unprepared[organization.pk]
            unused = quotas.quota_reserve(organization=organization, now=now, count=wanted)
            if not unused:
                self.quota[organization.pk] = (today, 0)
                return False
        self.quota[organization.pk] = (today, unused - 1)
        return True

    def _refund_one(self, delivery: Delivery) -> None:
        """A delivery given back after its quota was taken: the call goes back to the reservation."""
        day, unused = self.quota.get(delivery.organization_id, (None, 0))
        if day is not None:
            self.quota[delivery.organization_id] = (day, unused + 1)

    def limit_reached(self, delivery: Delivery, now: datetime.datetime) -> None:
        if quotas.quota_limit_notice_claim(organization=delivery.organization, now=now):
            notify_later("dispatcher.notify_limit_reached", delivery.organization_id, now.isoformat())

    def endpoint(self, delivery: Delivery, url: str) -> Endpoint:
        """The destination's health record; known from the first attempt on and kept with the delivery."""
        if delivery.endpoint is None:
            key = (delivery.organization_id, destination_of(url))
            if key not in self.by_destination:
                found = health.endpoint_for(organization=delivery.organization, url=url)
                self.by_destination[key] = self.endpoints.setdefault(found.pk, found)
            delivery.endpoint = self.by_destination[key]
        return delivery.endpoint
