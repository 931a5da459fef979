"""The drain loop: from "deliveries are due" to "their attempts are stored", for one worker process.

The loop claims, dispatches, collects and flushes; what it keeps meanwhile lives in objects of its own:
the loader and its caches (delivery/loader.py), the quota reservation (delivery/quota_reservation.py), the
destinations with their endpoints, slots and waiting deliveries (delivery/destinations.py), and on
PostgreSQL the listener (delivery/wakeups.py).

1. **Claim** (delivery/claims.py; on PostgreSQL claimed and loaded in one statement), fairly across
   organizations, each at most what the slot book says it may start now: at the start; on PostgreSQL as
   soon as the slots free for an organization the last claims left with more due (hungry: its refill is claimed when
   its requests end, not at the next poll); on PostgreSQL, in a worker's loop that has work (it listens
   from its first claim that brings some), when a notification says a commit made deliveries due, and
   every LISTENING_CLAIM_SECONDS for work that becomes due by the clock (retries, deliveries given back,
   leases run out); every WEBHOOK_CLAIM_POLL_SECONDS when no slot is free, when a claim gave no room to an
   organization not known to be hungry, and in a loop that does not listen while requests are in flight.
   After its time budget the loop goes on claiming while it waits for its requests, for
   WEBHOOK_DRAIN_TAIL_SECONDS more.
2. **Prepare** each claimed delivery in this thread, which owns the database connection
   (delivery/attempt.py): checks, rendering, destination, rate limit, quota, signing.
3. **Dispatch** the signed requests to the sender pool (delivery/pool.py), or let them wait for their
   destination's slot, or hand them back (delivery/destinations.py).
4. **Collect** finished requests and **flush** their outcomes together (delivery/outcomes.py), then the
   follow-ups (delivery/followups.py); usage counts are written once a second.
5. **Linger** (a worker's loop: linger_seconds): with nothing in flight and nothing due, a loop that has
   sent something and listens waits on its connection for a notification, up to linger_seconds after the
   last delivery it claimed and within its budget, instead of ending: the next delivery costs no task and
   no loop start. Before it ends it stops listening and claims once more (delivery/wakeups.py). A worker
   asked to stop ends it at once (delivery/stopping.py).

The whole loop ends within its budget + WEBHOOK_DRAIN_TAIL_SECONDS + WEBHOOK_TOTAL_TIMEOUT (60 + 10 + 30 s
by default, inside the drain task's 120 s soft time limit).
"""
import collections
import datetime
import logging
import math
import threading
import time
import uuid
from collections.abc import Hashable

from django.conf import settings
from django.db import connection
from django.utils import timezone

from config.caches import cache_register
from dispatcher.delivery import counters, states, stopping
from dispatcher.delivery.attempt import Outcome, Send, attempt_prepare, outcome_of_result, release
from dispatcher.delivery.claims import Claim, ClaimLoad, ClaimRoom, claim_due
from dispatcher.delivery.destinations import Destinations
from dispatcher.delivery.followups import followups_run
from dispatcher.delivery.loader import claim_load, deliveries_load
from dispatcher.delivery.outcomes import outcomes_write
from dispatcher.delivery.pool import SenderPool, sender_pool
from dispatcher.delivery.quota_reservation import QuotaReservation, limit_reached_notify
from dispatcher.delivery.wakeups import WAKE_COALESCE_SECONDS, Listener, drain_wake
from dispatcher.models import Delivery
from dispatcher.ops.usage import UsageTally

logger = logging.getLogger(__name__)

LEASE_MARGIN_SECONDS = 5  # a request is only started with at least the total timeout plus this left of its lease
REPORT_EVERY_SECONDS = 1.0  # how often a busy process writes its requests in flight (for /metrics) and usage
LISTENING_CLAIM_SECONDS = 1.0  # a listening loop still claims this often: work that becomes due by the clock
LINGER_WAIT_SECONDS = 0.25  # a loop waits at most this long at a time (lingering, or answers): a stop is seen


def delivery_run(*, delivery_id: int, batch: int = 1, budget_seconds: float = 0.0,
                 linger_seconds: float = 0.0) -> Delivery | None:
    """Claim this delivery if it is due and attempt it, with whatever else is due (up to batch at a time),
    then go on draining due work for budget_seconds (lingering as deliveries_drain says)."""
    loop = DrainLoop(sender_pool(), keep={delivery_id})
    if batch > 1:
        loop.run(batch=batch, budget_seconds=budget_seconds, first=delivery_id, linger_seconds=linger_seconds)
    else:
        loop.run(batch=1, budget_seconds=budget_seconds, ids=[delivery_id])
    return loop.kept.get(delivery_id)


def deliveries_drain(*, batch: int, budget_seconds: float, linger_seconds: float = 0.0,
                     wind_down: threading.Event | None = None) -> int:
    """Claim and attempt due deliveries until none is left or the time budget is spent; returns how many
    were attempted. With linger_seconds (a worker's drain, on PostgreSQL) the loop stays awake that long
    after its last delivery, woken by notifications; setting wind_down ends that wait early."""
    loop = DrainLoop(sender_pool(), keep=set())
    loop.run(batch=batch, budget_seconds=budget_seconds, linger_seconds=linger_seconds, wind_down=wind_down)
    return loop.attempted


def deliveries_attempt(*, claimed: list[tuple[int, uuid.UUID]]) -> list[Delivery]:
    """Attempt deliveries claimed already (by deliveries_claim), all together; returns them, in id order."""
    loop = DrainLoop(sender_pool())
    try:
        by_token: dict[uuid.UUID, list[int]] = {}
        for pk, token in claimed:
            by_token.setdefault(token, []).append(pk)
        for token, ids in by_token.items():
            loop.start(Claim(token, ids))
        loop.finish_all()
    finally:
        loop.close()
    return [loop.kept[pk] for pk in sorted(loop.kept)]


def delivery_attempt(*, delivery_id: int, token: uuid.UUID) -> Delivery:
    """Make one attempt of a claimed delivery and record it; the claim token proves ownership."""
    return deliveries_attempt(claimed=[(delivery_id, token)])[0]


cache_register("engine counters reported", counters.reported.clear)


class DrainLoop:
    """One drain of a worker process: the deliveries it claimed until they are stored, the outcomes not
    stored yet and the usage counted in memory. A worker that dies mid-drain loses at most its usage counts
    and reserved quota (the quota errs on the side of sending fewer calls), never a delivery: those are
    taken over when their leases end.

    keep: the ids whose Delivery objects the loop keeps for its caller (None: all it attempts)."""

    def __init__(self, pool: SenderPool, keep: set[int] | None = None) -> None:
        self.pool = pool
        self.quota = QuotaReservation()
        self.destinations = Destinations(pool, self.quota)
        # What the claim statement loads (PostgreSQL; elsewhere the loader reads the claimed rows).
        self.load: ClaimLoad | None = claim_load() if connection.vendor == "postgresql" else None
        # On PostgreSQL a claim comes as soon as it may: a refill as slots free (_refill_ready), and no wait for
        # answers past a claim that is due. On SQLite each claim takes the database's one write lock, which the
        # other processes' stores then wait for: claims there wait for the poll and for answers.
        self.claims_eagerly = connection.vendor == "postgresql"
        self.listener: Listener | None = None
        self.may_listen = False  # a worker's loop that listens once a claim brings work (run: linger_seconds)
        self.run_id = uuid.uuid4().hex
        self.sending: dict[Hashable, Send] = {}  # (run id, delivery id): the pool hands the key back
        self.outcomes: list[Outcome] = []
        self.first_outcome_at = 0.0
        self.keep, self.attempted = keep, 0
        self.kept: dict[int, Delivery] = {}
        self.usage = UsageTally()
        self.reported_at = time.monotonic()  # a short drain reports once, when it closes
        self.claim_until = math.inf  # monotonic time after which the loop claims no more (run sets it)
        # When the loop claims next, and what its last claim said (run, _claim_next).
        self.next_claim_at, self.claimed_once, self.quiet, self.at_once = 0.0, False, False, True
        self.claimed_at = -math.inf  # when a claim last brought deliveries: the linger counts from it
        self.last_claim_at = -math.inf  # when the loop last claimed, whatever it brought
        self.deadline = math.inf  # end of the budget (run sets it): after it the loop no longer keeps up
        self.hungry: set[int] = set()  # organizations the last claims showed more due for than they could take
        self.left_out = False  # the last claim gave room 0 to an organization not known to be hungry

    # --- the loop -------------------------------------------------------------------------------------
    def run(self, *, batch: int, budget_seconds: float, first: int | None = None, ids: list[int] | None = None,
            linger_seconds: float = 0.0, wind_down: threading.Event | None = None) -> None:
        """Claim and attempt until the budget is spent (then, while requests are still in flight, go on
        claiming for the tail) and nothing is left in flight; linger as the module's docstring says."""
        deadline = self.deadline = time.monotonic() + budget_seconds
        self.claim_until = deadline + settings.WEBHOOK_DRAIN_TAIL_SECONDS
        refill = self.destinations.slots.refill(batch)
        wind_down = wind_down or threading.Event()
        self.may_listen = linger_seconds > 0 and ids is None
        try:
            while True:
                if stopping.stop_requested():  # the worker is asked to stop (delivery/stopping.py)
                    self.stop()
                    return
                self._listen()
                now = time.monotonic()
                if now >= deadline:  # in its tail: enqueuers wake other loops rather than wait for this one
                    self._keep_up(False)
                claiming = not self.claimed_once or now < deadline or (now < self.claim_until and not self.idle())
                if claiming and (now >= self.next_claim_at or self._refill_ready(refill=refill)):
                    self._claim_next(batch=batch, refill=refill, first=first, ids=ids)
                    first = None
                if not self.idle():  # wait for answers (not past a due claim) and look up: a stop, a notification
                    until_claim = self.next_claim_at - time.monotonic() if claiming and self.claims_eagerly else math.inf
                    wait = min(settings.WEBHOOK_CLAIM_POLL_SECONDS, until_claim, LINGER_WAIT_SECONDS)
                    self.collect(timeout=max(0.0, wait))
                    continue
                self.flush()
                linger_until = -math.inf if wind_down.is_set() else min(self.claimed_at + linger_seconds, deadline)
                if not self._idle_goes_on(deadline=deadline, linger_until=linger_until):
                    return
        finally:
            self.close()

    def _listen(self) -> None:
        """On PostgreSQL: a notification (a commit made deliveries due) means claim now."""
        if self.listener is None:
            return
        if not self.listener.alive():  # its connection was opened again: it polls from now on
            self.listener = None
        elif self.listener.notified():
            self._claim_soon()

    def _idle_goes_on(self, *, deadline: float, linger_until: float) -> bool:
        """Nothing in flight: whether the loop goes on (claims again, or lingers a moment for a notification)
        or ends (a listening loop first stops listening and claims once more: _last_claim)."""
        now = time.monotonic()
        if now < deadline and now >= self.next_claim_at:
            return True  # a claim is due
        if now < deadline and not self.quiet:
            self.next_claim_at = 0.0  # what was in flight may have held the last claim back: claim again
            return True
        if self.listener is not None and now < linger_until:
            wait = min(self.next_claim_at, linger_until, now + LINGER_WAIT_SECONDS) - now
            if self.listener.notified(wait):
                self._claim_soon()
            return True
        return self._last_claim()

    def _last_claim(self) -> bool:
        """A listening loop that ends: it stops listening (enqueuers then send broker wake-ups), then claims
        once more, for what was committed while enqueuers still left it to this loop. True if that claim
        brought deliveries (the loop sends them, without listening, then ends)."""
        if self.listener is None:
            return False
        self.listener.close()
        self.listener = None
        if self.closing():  # its requests could outlive the claims (and the task's time limit): another loop
            drain_wake()  # takes what was committed while enqueuers still left it to this one
            return False
        claim = self._claim(limit=self.destinations.room(), room=None, ids=None, first=None)
        self.quiet = True
        self.next_claim_at = math.inf  # nothing more to claim once these are sent
        return bool(claim.ids)

    def _claim_next(self, *, batch: int, refill: int, first: int | None, ids: list[int] | None) -> None:
        """Claim what may start now, and say when to claim next: at once after a full claim that left work
        behind; when slots free for a hungry organization (run: _refill_ready); after LISTENING_CLAIM_SECONDS
        when notifications come and no organization was left out of the claim; else after a poll interval."""
        now = time.monotonic()
        limit, idle = min(batch, self.destinations.room()), self.idle()
        room = None if ids is not None else self.destinations.claim_room(refill=refill, closing=self.closing(),
                                                                         idle=idle)
        poll = settings.WEBHOOK_CLAIM_POLL_SECONDS
        if limit <= 0 or (room is not None and not room.any()):  # no room for anyone: look when requests end
            self.next_claim_at, self.quiet = now + poll, idle
            self._keep_up(False)
            return
        claim = self._claim(limit=limit, room=room, ids=ids, first=first)
        self.claimed_once = True
        if self.may_listen and claim.ids:  # a worker's loop with work listens from now on: new work is notified
            self.may_listen = False
            self.listener = Listener.open(awake=False)  # the lock, if it keeps up: _keep_up below
        if ids is not None:  # those deliveries, once
            self.next_claim_at, self.quiet = math.inf, True
        elif claim.complete and self.listener is not None:  # all that was due: what comes next is notified
            self.next_claim_at, self.quiet = now + LISTENING_CLAIM_SECONDS, True
        elif claim.complete or len(claim.ids) < limit:  # nothing more is due that may start now
            # Listening, what becomes due is notified, and an organization left with work claims its refill as
            # soon as its slots free (_refill_ready): a poll would only look for what the clock made due.
            wait = LISTENING_CLAIM_SECONDS if self.listener is not None and not self.left_out else poll
            self.next_claim_at, self.quiet = now + wait, idle and not claim.ids
        # The one-statement claim next time only if this one did not show more due than fits (a full claim, or
        # an organization that got all its room): that attempt would fail, and the fair claim follow it.
        self.at_once = (claim.complete or len(claim.ids) < limit) and not self.hungry
        self._keep_up(claim.complete and self.destinations.room() > 0)

    def _refill_ready(self, *, refill: int) -> bool:
        """An organization that has more due than its last claim could take may take a refill's worth now: claim
        at once rather than at the next poll, so its destinations' slots never run dry between claims."""
        if not self.claims_eagerly or not self.hungry:
            return False
        room = self.destinations.slots.claim_room(free=self.destinations.room(), refill=refill, slow_destinations={})
        return any(room.organizations.get(organization_id, 0) > 0 for organization_id in self.hungry)

    def _claim_soon(self) -> None:
        """A notification came: claim now, or one wake-up window (WAKE_COALESCE_SECONDS, as for broker
        wake-ups) after the last claim. Commits that come faster (an API answering one event per transaction)
        are claimed together, one claim for several, and the enqueuers keep their share of the cores; at 10
        or 50 events/s a lone delivery waits for nothing."""
        self.next_claim_at = min(self.next_claim_at, self.last_claim_at + WAKE_COALESCE_SECONDS)

    def _claim(self, *, limit: int, room: ClaimRoom | None, ids: list[int] | None, first: int | None) -> Claim:
        self.last_claim_at = time.monotonic()
        claim = claim_due(now=timezone.now(), limit=limit, ids=ids, first=first, room=room, load=self.load,
                          at_once=self.at_once)
        claimed: collections.Counter[int] = collections.Counter()
        if claim.ids:
            self.claimed_at = time.monotonic()
            claimed.update(delivery.organization_id for delivery in self.start(claim))
        self._hunger(claim, claimed, room=room, limit=limit)
        return claim

    def _hunger(self, claim: Claim, claimed: collections.Counter[int], *, room: ClaimRoom | None, limit: int) -> None:
        """Which organizations have more due than the claim took: those that got all the room they were given,
        and after a claim cut at its limit every organization that got some (the fair shares split the limit).
        One given no room stays as it was; one not known to be hungry then is left_out (the loop polls)."""
        if room is None or claim.complete:
            self.hungry, self.left_out = set(), False
            return
        full, hungry, left_out = len(claim.ids) >= limit, set(), False
        for organization_id in self.hungry | set(claimed) | set(room.organizations):
            given, got = room.of(organization_id), claimed[organization_id]
            if given <= 0:
                if organization_id in self.hungry:
                    hungry.add(organization_id)
                else:
                    left_out = True
            elif got >= given or (full and got > 0):
                hungry.add(organization_id)
        self.hungry, self.left_out = hungry, left_out

    def _keep_up(self, keeping_up: bool) -> None:
        """Tell enqueuers whether this loop takes new work promptly (delivery/wakeups.py)."""
        if self.listener is not None:
            self.listener.keep_up(keeping_up and time.monotonic() < self.deadline)

    def stop(self) -> None:
        """The worker is asked to stop (delivery/stopping.py): claim and start nothing more, store what ends
        within STOP_GRACE_SECONDS, and give back what is still in flight then, claimable again at once rather
        than when its lease runs out (its request may still arrive: it is sent again with the same webhook-id)."""
        self.destinations.hand_back_all_waiting()
        in_flight, grace_ends = len(self.sending), time.monotonic() + stopping.STOP_GRACE_SECONDS
        while self.sending and time.monotonic() < grace_ends:
            self.collect(timeout=min(settings.WEBHOOK_CLAIM_POLL_SECONDS, grace_ends - time.monotonic()))
        sending, self.sending = list(self.sending.values()), {}
        given_back = 0
        for send in sending:
            self.destinations.ended(send)
            if release(send.delivery, send.token, states.waiting_status(send.delivery), due_at=timezone.now(),
                       reason="Given back: the worker stopped while the request was in flight; it is sent again."):
                self.quota.refund_one(send.delivery)
                given_back += 1
        logger.warning("drain.stop", extra={"given_back": given_back, "stored": in_flight - len(sending)})

    def finish_all(self) -> None:
        while not self.idle():
            self.collect(timeout=settings.WEBHOOK_CLAIM_POLL_SECONDS)
        self.flush()

    def closing(self) -> bool:
        """A request started now could still run after the loop stops claiming: the loop would then wait
        for it without claiming, for as long as WEBHOOK_TOTAL_TIMEOUT."""
        return time.monotonic() + settings.WEBHOOK_TOTAL_TIMEOUT > self.claim_until

    def idle(self) -> bool:
        return not self.sending and not self.destinations.waiting

    # --- claimed deliveries prepared and dispatched -------------------------------------------------------
    def start(self, claim: Claim) -> list[Delivery]:
        """Prepare and send the claimed deliveries, those of the organizations holding the fewest slots first
        (another organization's one delivery does not wait behind a refill of the busiest's); returns them."""
        deliveries = deliveries_load(claim)
        self.destinations.adopt(deliveries)
        held = self.destinations.slots.held
        deliveries.sort(key=lambda d: (held[d.organization_id], d.pk))
        self.quota.expect(deliveries)
        for delivery in deliveries:
            self.quota.prepared(delivery)
            self.attempted += 1
            if self.keep is None or delivery.pk in self.keep:
                self.kept[delivery.pk] = delivery
            if delivery.claim_token != claim.token:  # another worker took it over meanwhile
                counters.count("claim_lost")
                continue
            prepared = attempt_prepare(delivery, claim.token, quota=self.quota,
                                       endpoint_of=self.destinations.endpoint, limit_reached=limit_reached_notify)
            if isinstance(prepared, Outcome):
                self.record(prepared)
            elif isinstance(prepared, Send) and self.destinations.place(prepared, closing=self.closing()):
                self.submit(prepared)
        return deliveries

    def submit(self, send: Send) -> None:
        """Send it (its organization's slot is taken already), its lease extended first if a request could
        outlive it."""
        delivery = send.delivery
        margin = datetime.timedelta(seconds=settings.WEBHOOK_TOTAL_TIMEOUT + LEASE_MARGIN_SECONDS)
        now = timezone.now()
        if delivery.lease_expires_at is None or delivery.lease_expires_at < now + margin:
            until = now + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
            if not Delivery.objects.filter(pk=delivery.pk, claim_token=send.token,
                                           status=states.S.DISPATCHED).update(lease_expires_at=until):
                counters.count("claim_lost")
                self.destinations.ended(send)
                return  # the lease ran out while it waited, and another worker owns it now
            delivery.lease_expires_at = until
        send.started_at = now
        self.sending[(self.run_id, delivery.pk)] = send
        self.pool.submit((self.run_id, delivery.pk), send.destination, send.request, send.auth)

    # --- finished requests stored -------------------------------------------------------------------------
    def collect(self, timeout: float) -> None:
        flush_in = settings.WEBHOOK_ATTEMPT_FLUSH_SECONDS - (time.monotonic() - self.first_outcome_at)
        wait = min(timeout, max(flush_in, 0.0)) if self.outcomes else timeout
        for sent in self.pool.collect(timeout=wait):
            send = self.sending.pop(sent.key, None)
            if send is not None:  # not a leftover of an earlier loop of this process
                self.destinations.ended(send)
                self.record(outcome_of_result(send, sent.result, sent.request))
        self.destinations.send_waiting(closing=self.closing(), submit=self.submit)
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
        """Usage counts, engine counters and the requests in flight, to the database (a second's worth)."""
        self.reported_at = time.monotonic()
        self.usage.flush()
        counters.counters_flush()
        counters.sender_report(in_flight=self.pool.in_flight, max_in_flight=self.pool.max_in_flight)

    def close(self) -> None:
        """Stop listening, store what is left, give back unused quota, add up usage. Requests still in
        flight after an error are left to finish; their deliveries are taken over when the lease runs out."""
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        self.destinations.hand_back_all_waiting()
        self.flush()
        self.quota.release()
        self.report()
