"""The drain loop: from "deliveries are due" to "their attempts are stored", for one worker process.

1. Claim due deliveries (delivery/claims.py), fairly across organizations, whenever the sender pool has
   room for another organization: every WEBHOOK_CLAIM_POLL_SECONDS while requests are in flight, each
   organization at most what the slot book (delivery/book.py) says it may start now, so one over its share
   does not crowd the claim. After its time budget the loop goes on claiming while it waits for its
   requests, for WEBHOOK_DRAIN_TAIL_SECONDS more.
2. Prepare each in this thread, which owns the database connection (delivery/attempt.py): checks,
   rendering, destination, rate limit, quota, signing.
3. Hand the signed requests to the sender pool (delivery/pool.py): many in flight at once, to each
   destination at most its adaptive limit. A delivery whose destination is at its limit waits here for a
   slot while the destination answers (holding its organization's slot); a slow destination's deliveries
   are given back to the database instead, due again after as long as its oldest request has waited, so
   a hanging receiver holds only a few slots and is asked less and less often. Near the loop's end a slow
   destination gets no new request: it could outlive the claims and hold the loop without claiming.
4. As requests finish, store their outcomes together (delivery/outcomes.py), then run the follow-ups
   (delivery/followups.py): capture, endpoint health, e-mails, usage, logs.

The whole loop ends within its budget + WEBHOOK_DRAIN_TAIL_SECONDS + WEBHOOK_TOTAL_TIMEOUT (60 + 10 + 30 s
by default, inside the drain task's 120 s soft time limit).
"""
import collections
import datetime
import logging
import math
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
from dispatcher.delivery import counters, states, stopping
from dispatcher.delivery.attempt import Outcome, Send, attempt_prepare, outcome_of_result, release
from dispatcher.delivery.book import SLOW_ANSWER_SECONDS, SlotBook
from dispatcher.delivery.claims import ClaimRoom, deliveries_claim
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
SLOW_DESTINATION_SECONDS = SLOW_ANSWER_SECONDS  # a destination whose oldest request in flight waited this long is slow


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
        self.book = SlotBook(pool.max_in_flight)  # the slots each organization holds in this loop
        self.claim_until = math.inf  # monotonic time after which the loop claims no more (run sets it)
        self.slow_looked_at: dict[int, float] = {}  # slow destination -> when a claim last looked for its deliveries
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
        """Claim and attempt until the budget is spent (then, while requests are still in flight, go on
        claiming for the tail) and nothing is left in flight."""
        poll = settings.WEBHOOK_CLAIM_POLL_SECONDS
        deadline = time.monotonic() + budget_seconds
        self.claim_until = deadline + settings.WEBHOOK_DRAIN_TAIL_SECONDS
        refill = self.book.refill(batch)
        # short_when_idle: the last claim was made with nothing in flight and found nothing: nothing is due.
        next_claim_at, claimed_once, short_when_idle = 0.0, False, False
        try:
            while True:
                if stopping.stop_requested():  # the worker is asked to stop (delivery/stopping.py)
                    self.stop()
                    return
                now = time.monotonic()
                claiming = not claimed_once or now < deadline or (now < self.claim_until and not self.idle())
                if claiming and now >= next_claim_at:
                    limit, idle = min(batch, self.room()), self.idle()
                    room = None if ids is not None else self.claim_room(refill)
                    if limit > 0 and (room is None or room.any()):
                        claimed = deliveries_claim(now=timezone.now(), limit=limit, first=first, ids=ids, room=room)
                        claimed_once, first = True, None
                        if claimed:
                            self.start(claimed)
                        if ids is not None:  # those deliveries, once
                            next_claim_at, short_when_idle = math.inf, True
                        elif len(claimed) < limit:  # nothing more is due that may start now
                            next_claim_at, short_when_idle = time.monotonic() + poll, idle and not claimed
                    else:  # no room for anyone: look again when requests have ended
                        next_claim_at, short_when_idle = time.monotonic() + poll, idle
                if self.idle():
                    self.flush()
                    if time.monotonic() >= deadline:
                        return
                    if time.monotonic() < next_claim_at:
                        if short_when_idle:
                            return
                        next_claim_at = 0.0  # what was in flight may have held the last claim back: claim again
                    continue
                self.collect(timeout=poll)
        finally:
            self.close()

    def stop(self) -> None:
        """The worker is asked to stop (delivery/stopping.py): claim and start nothing more, store what ends
        within STOP_GRACE_SECONDS, and give back what is still in flight then, claimable again at once rather
        than when its lease runs out (its request may still arrive: it is sent again with the same webhook-id)."""
        for queue in self.waiting.values():
            for send in queue:
                self.hand_back_waiting(send)
        self.waiting.clear()
        in_flight, grace_ends = len(self.sending), time.monotonic() + stopping.STOP_GRACE_SECONDS
        while self.sending and time.monotonic() < grace_ends:
            self.collect(timeout=min(settings.WEBHOOK_CLAIM_POLL_SECONDS, grace_ends - time.monotonic()))
        sending, self.sending = list(self.sending.values()), {}
        given_back = 0
        for send in sending:
            self.book.give_back(send.delivery.organization_id)
            if release(send.delivery, send.token, states.waiting_status(send.delivery), due_at=timezone.now(),
                       reason="Given back: the worker stopped while the request was in flight; it is sent again."):
                self._refund_one(send.delivery)
                given_back += 1
        logger.warning("worker stopping: %d deliveries in flight given back, %d finished and stored (drain.stop)",
                       given_back, in_flight - len(sending))

    def finish_all(self) -> None:
        while not self.idle():
            self.collect(timeout=settings.WEBHOOK_CLAIM_POLL_SECONDS)
        self.flush()

    def room(self) -> int:
        return self.pool.room() - sum(len(queue) for queue in self.waiting.values())

    def claim_room(self, refill: int) -> ClaimRoom:
        """What each organization may claim now, and how many deliveries of each slow destination: none once
        a request started now could outlive the loop's claims, and a destination with room is looked for at
        most once a second (it answers slowly anyway, and each look is a query of its own)."""
        closing, now, idle = self.closing(), time.monotonic(), self.idle()
        slow = {}
        for destination in self.pool.limits.slow_destinations():
            if isinstance(destination, int):  # an endpoint id (a one-off send through the pool has none)
                room = 0 if closing else self.pool.destination_room(destination) - len(self.waiting.get(destination, ()))
                looked_at = self.slow_looked_at.get(destination, -math.inf)
                if room > 0 and (idle or now - looked_at >= SLOW_DESTINATION_SECONDS):  # idle: its last look
                    self.slow_looked_at[destination] = now
                    slow[destination] = room
                else:
                    slow[destination] = 0
        return self.book.claim_room(free=self.room(), refill=refill, slow_destinations=slow)

    def closing(self) -> bool:
        """A request started now could still run after the loop stops claiming: the loop would then wait
        for it without claiming, for as long as WEBHOOK_TOTAL_TIMEOUT."""
        return time.monotonic() + settings.WEBHOOK_TOTAL_TIMEOUT > self.claim_until

    def is_slow(self, destination: int) -> bool:
        return self.pool.limits.is_slow(destination) \
            or self.pool.oldest_age(destination) >= SLOW_DESTINATION_SECONDS

    def idle(self) -> bool:
        return not self.sending and not self.waiting

    # --- 1-3: claimed deliveries prepared and handed to the pool -----------------------------------------
    def start(self, claimed: list[tuple[int, uuid.UUID]]) -> None:
        """Prepare and send the claimed deliveries, those of the organizations holding the fewest slots first
        (another organization's one delivery does not wait behind a refill of the busiest's)."""
        tokens = dict(claimed)
        deliveries = self.load(tokens)
        deliveries.sort(key=lambda d: (self.book.held[d.organization_id], d.pk))
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
        answers (holding its organization's slot, so what waits here is bounded by the claims); else back to
        the database: the destination is slow (what waited for it would hold slots others need), or it is
        slow and the loop is closing (its request could hold the loop after it stops claiming)."""
        destination = send.destination
        slow = self.is_slow(destination)
        if slow and self.closing():
            self.hand_back(send, "Waiting: the destination answers slowly, and this worker stops claiming soon.")
        elif self.pool.has_room_for(destination) and not self.waiting.get(destination):
            self.book.take(send.delivery.organization_id)
            self.submit(send)
        elif not slow:
            self.book.take(send.delivery.organization_id)
            self.waiting.setdefault(destination, collections.deque()).append(send)
        else:
            self.hand_back(send)

    def submit(self, send: Send) -> None:
        """Send it (its organization's slot is taken already)."""
        delivery = send.delivery
        margin = datetime.timedelta(seconds=settings.WEBHOOK_TOTAL_TIMEOUT + LEASE_MARGIN_SECONDS)
        now = timezone.now()
        if delivery.lease_expires_at is None or delivery.lease_expires_at < now + margin:
            until = now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
            if not Delivery.objects.filter(pk=delivery.pk, claim_token=send.token,
                                           status=states.S.DISPATCHED).update(lease_expires_at=until):
                counters.count("claim_lost")
                self.book.give_back(delivery.organization_id)
                return  # the lease ran out while it waited, and another worker owns it now
            delivery.lease_expires_at = until
        send.started_at = now
        self.sending[(self.run_id, delivery.pk)] = send
        self.pool.submit((self.run_id, delivery.pk), send.destination, send.request, send.auth)

    def hand_back(self, send: Send,
                  reason: str = "Waiting: the destination already has as many requests in flight as it may.") -> None:
        """Its destination is busy: due again after as long as the destination's oldest request has waited."""
        delivery = send.delivery
        wait = max(self.pool.oldest_age(send.destination), settings.WEBHOOK_CLAIM_POLL_SECONDS)
        due_at = timezone.now() + datetime.timedelta(seconds=wait)
        counters.count("destination_busy")
        # No wake-up of its own: the pump and every busy drain loop find it when it is due.
        if release(delivery, send.token, states.waiting_status(delivery), due_at=due_at, reason=reason):
            self._refund_one(delivery)

    def hand_back_waiting(self, send: Send) -> None:
        self.book.give_back(send.delivery.organization_id)
        self.hand_back(send)

    # --- 4: finished requests stored -------------------------------------------------------------------
    def collect(self, timeout: float) -> None:
        flush_in = settings.WEBHOOK_ATTEMPT_FLUSH_SECONDS - (time.monotonic() - self.first_outcome_at)
        wait = min(timeout, max(flush_in, 0.0)) if self.outcomes else timeout
        for sent in self.pool.collect(timeout=wait):
            send = self.sending.pop(sent.key, None)
            if send is not None:  # not a leftover of an earlier loop of this process
                self.book.give_back(send.delivery.organization_id)
                self.record(outcome_of_result(send, sent.result, sent.request))
        closing = self.closing()
        for destination in list(self.waiting):
            queue = self.waiting[destination]
            slow = self.is_slow(destination)
            while queue and self.pool.has_room_for(destination) and not (slow and closing):
                self.submit(queue.popleft())
            if queue and slow:
                while queue:  # it turned slow while they waited: they would hold slots other destinations need
                    self.hand_back_waiting(queue.popleft())
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
                self.hand_back_waiting(send)
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
