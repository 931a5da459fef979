"""A drain loop's book of destinations: where each prepared delivery goes next, and what each
organization and destination may still start.

- **Endpoints**, one object per destination for the whole loop (by id, and by organization and destination
  for deliveries on their first attempt), so health counts stay current within the loop; those a claim
  loads replace the loop's (they are fresher).
- **Slots**: each organization's share of the process's slots (delivery/book.py's SlotBook), taken while
  a delivery is in flight or waits here, and the room a claim may take for each organization and slow
  destination (ClaimRoom).
- **Waiting**: a delivery whose destination is at its limit waits here for a slot while the destination
  answers (holding its organization's slot); a slow destination's deliveries are handed back to the
  database instead, due again after as long as its oldest request has waited, so a hanging receiver
  holds only a few slots and is asked less and less often. Near the loop's end (closing) a slow
  destination gets no new request: it could outlive the loop's claims.
"""
import collections
import datetime
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from dispatcher.delivery import endpoint_health as health
from dispatcher.delivery import counters, states
from dispatcher.delivery.attempt import Send, release
from dispatcher.delivery.book import SLOW_ANSWER_SECONDS, SlotBook
from dispatcher.delivery.claims import ClaimRoom
from dispatcher.delivery.pool import SenderPool
from dispatcher.delivery.quota_reservation import QuotaReservation
from dispatcher.models import Delivery, Endpoint
from dispatcher.models.endpoints import destination_of

SLOW_DESTINATION_SECONDS = SLOW_ANSWER_SECONDS  # a destination whose oldest request in flight waited this long is slow
BUSY = "Waiting: the destination already has as many requests in flight as it may."


class Destinations:
    """One loop's destinations, slots and waiting deliveries (see the module's docstring). A delivery handed
    back gives its call back to the loop's quota reservation."""

    def __init__(self, pool: SenderPool, quota: QuotaReservation) -> None:
        self.pool, self.quota = pool, quota
        self.slots = SlotBook(pool.max_in_flight)  # the slots each organization holds in this loop
        self.endpoints: dict[int, Endpoint] = {}
        self.by_destination: dict[tuple[int, str], Endpoint] = {}
        self.waiting: dict[int, collections.deque[Send]] = {}  # endpoint id -> sends waiting for a slot there
        self.slow_looked_at: dict[int, float] = {}  # slow destination -> when a claim last looked for its deliveries

    # --- endpoints ------------------------------------------------------------------------------------------
    def adopt(self, deliveries: list[Delivery]) -> None:
        """The endpoints a claim loaded become the loop's, one object per destination for all its deliveries."""
        for delivery in deliveries:
            if delivery.endpoint is not None:
                self.endpoints[delivery.endpoint.pk] = delivery.endpoint
        for delivery in deliveries:
            if delivery.endpoint_id is not None and delivery.endpoint_id in self.endpoints:
                delivery.endpoint = self.endpoints[delivery.endpoint_id]
        for endpoint in self.endpoints.values():  # by destination too, for deliveries on their first attempt
            self.by_destination[(endpoint.organization_id, endpoint.destination)] = endpoint

    def endpoint(self, delivery: Delivery, url: str) -> Endpoint:
        """The destination's health record; known from the first attempt on and kept with the delivery."""
        if delivery.endpoint is None:
            key = (delivery.organization_id, destination_of(url))
            if key not in self.by_destination:
                found = health.endpoint_for(organization=delivery.organization, url=url)
                self.by_destination[key] = self.endpoints.setdefault(found.pk, found)
            delivery.endpoint = self.by_destination[key]
        return delivery.endpoint

    # --- slots and claims -----------------------------------------------------------------------------------
    def room(self) -> int:
        """Slots free for another delivery: the pool's, less the deliveries waiting here for theirs."""
        return self.pool.room() - sum(len(queue) for queue in self.waiting.values())

    def claim_room(self, *, refill: int, closing: bool, idle: bool) -> ClaimRoom:
        """What each organization may claim now, and how many deliveries of each slow destination: none once
        a request started now could outlive the loop's claims (closing), and a destination with room is
        looked for at most once a second (it answers slowly anyway, and each look is a query of its own)."""
        now, slow = time.monotonic(), {}
        for destination in self.pool.limits.slow_destinations():
            if isinstance(destination, int):  # an endpoint id (a one-off send through the pool has none)
                room = 0 if closing else self.pool.destination_room(destination) - len(self.waiting.get(destination, ()))
                looked_at = self.slow_looked_at.get(destination, -math.inf)
                if room > 0 and (idle or now - looked_at >= SLOW_DESTINATION_SECONDS):  # idle: its last look
                    self.slow_looked_at[destination] = now
                    slow[destination] = room
                else:
                    slow[destination] = 0
        return self.slots.claim_room(free=self.room(), refill=refill, slow_destinations=slow)

    def is_slow(self, destination: int) -> bool:
        return self.pool.limits.is_slow(destination) \
            or self.pool.oldest_age(destination) >= SLOW_DESTINATION_SECONDS

    def place(self, send: Send, *, closing: bool) -> bool:
        """Whether this prepared delivery is sent now (its organization's slot taken). If not, it waits here
        for a slot while its destination answers (holding its organization's slot, so what waits here is
        bounded by the claims), or goes back to the database: its destination is slow (what waited for it
        would hold slots others need), or slow and the loop is closing."""
        destination = send.destination
        slow = self.is_slow(destination)
        if slow and closing:
            self.hand_back(send, "Waiting: the destination answers slowly, and this worker stops claiming soon.")
        elif self.pool.has_room_for(destination) and not self.waiting.get(destination):
            self.slots.take(send.delivery.organization_id)
            return True
        elif not slow:
            self.slots.take(send.delivery.organization_id)
            self.waiting.setdefault(destination, collections.deque()).append(send)
        else:
            self.hand_back(send)
        return False

    def send_waiting(self, *, closing: bool, submit: Callable[[Send], None]) -> None:
        """Submit the waiting deliveries whose destination has room now (their slots are held already); those of
        a destination that turned slow meanwhile go back to the database."""
        for destination in list(self.waiting):
            queue = self.waiting[destination]
            slow = self.is_slow(destination)
            while queue and self.pool.has_room_for(destination) and not (slow and closing):
                submit(queue.popleft())
            if queue and slow:
                while queue:  # it turned slow while they waited: they would hold slots other destinations need
                    self.hand_back_waiting(queue.popleft())
            if not queue:
                del self.waiting[destination]

    def ended(self, send: Send) -> None:
        """Its request ended (or it was given back): its organization's slot is free again."""
        self.slots.give_back(send.delivery.organization_id)

    def hand_back(self, send: Send, reason: str = BUSY) -> None:
        """Its destination is busy: due again after as long as the destination's oldest request has waited."""
        delivery = send.delivery
        wait = max(self.pool.oldest_age(send.destination), settings.WEBHOOK_CLAIM_POLL_SECONDS)
        due_at = timezone.now() + datetime.timedelta(seconds=wait)
        counters.count("destination_busy")
        # No wake-up of its own: the pump and every loop that claims find it when it is due.
        if release(delivery, send.token, states.waiting_status(delivery), due_at=due_at, reason=reason):
            self.quota.refund_one(delivery)

    def hand_back_waiting(self, send: Send) -> None:
        self.ended(send)
        self.hand_back(send)

    def hand_back_all_waiting(self) -> None:
        """The loop ends or stops: what waits here goes back to the database."""
        for queue in self.waiting.values():
            for send in queue:
                self.hand_back_waiting(send)
        self.waiting.clear()
