"""The slot book of a worker process: who may start a request now, so that no organization takes another's
share of the sender pool's slots.

Two budgets, kept apart because they protect different things:

- **Organization shares** (SlotBook, one per drain loop). An organization may hold slots (requests in
  flight, or waiting in the loop for their destination) up to its fair share: the process's slots divided
  by the organizations holding some, plus one for a newcomer. Beyond its share it may take more only while
  the free slots stay above a reserve (WEBHOOK_ORGANIZATION_RESERVE of the slots). Idle shares are lent
  out; an organization that has work again finds the reserve free at once, and takes its share back as the
  borrower's requests end (a borrower over its share starts nothing while the free slots are down to the
  reserve). The claim asks the book how many each organization may take, so an organization over its share
  does not crowd the claim.
- **Destination limits** (DestinationLimits, one per process, kept across drains). A destination starts
  with WEBHOOK_DESTINATION_START_SLOTS requests in flight at most; each fast answer raises its limit by one,
  up to WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION; each slow request halves it, down to
  WEBHOOK_SLOW_DESTINATION_SLOTS. A request is slow once it has been in flight SLOW_ANSWER_SECONDS, whether
  it then answers, times out, or is still trickling bytes (it counts while still in flight, once), so a
  hanging or trickling receiver is held to a few slots within a second or two.
"""
import collections
import math
from collections.abc import Hashable, Iterable

from django.conf import settings

from dispatcher.delivery.claims import ClaimRoom

# A request in flight this long is slow. A 100-500 ms receiver stays well under it; one that hangs to the read
# timeout, or trickles its answer up to the total timeout, passes it in a second.
SLOW_ANSWER_SECONDS = 1.0
DESTINATIONS_KEPT = 10_000  # destinations whose limit a process remembers (the least recently used are forgotten)
SLOW_DESTINATIONS_CLAIMED_APART = 200  # slow destinations a claim counts out one by one (the most recent)


class _Destination:
    __slots__ = ("limit", "slow")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.slow = False  # its latest request was slow; a fast answer clears it


class DestinationLimits:
    """How many requests each destination may have in flight in this process: additive increase on fast
    answers, halving on slow ones (AIMD)."""

    def __init__(self) -> None:
        self.destinations: collections.OrderedDict[Hashable, _Destination] = collections.OrderedDict()
        self.slow: collections.OrderedDict[Hashable, None] = collections.OrderedDict()  # most recent last
        self.counted: dict[Hashable, Hashable] = {}  # request key -> destination, counted slow while in flight

    @staticmethod
    def bounds() -> tuple[int, int, int]:
        """The floor, the starting limit and the most, from the settings (a test may lower the most)."""
        most = max(1, settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION)
        floor = max(1, min(settings.WEBHOOK_SLOW_DESTINATION_SLOTS, most))
        return floor, max(floor, min(settings.WEBHOOK_DESTINATION_START_SLOTS, most)), most

    def limit(self, destination: Hashable) -> int:
        floor, start, most = self.bounds()
        state = self.destinations.get(destination)
        return start if state is None else max(floor, min(state.limit, most))

    def is_slow(self, destination: Hashable) -> bool:
        return destination in self.slow

    def slow_destinations(self, most: int = SLOW_DESTINATIONS_CLAIMED_APART) -> list[Hashable]:
        """The slow destinations, the most recently slow first."""
        return list(reversed(self.slow))[:most]

    def answered(self, key: Hashable, destination: Hashable, seconds: float) -> None:
        """A request ended after `seconds`: fast, the limit grows by one; slow, it is halved (unless the
        request was already counted while in flight)."""
        if self.counted.pop(key, None) is not None:
            return
        if seconds >= SLOW_ANSWER_SECONDS:
            self._slowed(destination)
            return
        state = self._state(destination)
        state.limit = min(state.limit + 1, self.bounds()[2])
        self.slow.pop(destination, None)

    def watch(self, in_flight: Iterable[tuple[Hashable, Hashable, float]]) -> None:
        """Requests still in flight (key, destination, seconds so far): each counts as slow once it has
        waited SLOW_ANSWER_SECONDS, without waiting for its timeout (a trickling answer is only cut at the
        total timeout)."""
        live = set()
        for key, destination, age in in_flight:
            live.add(key)
            if age >= SLOW_ANSWER_SECONDS and key not in self.counted:
                self.counted[key] = destination
                self._slowed(destination)
        if len(self.counted) > len(live):  # requests of a loop that stopped on an error, never collected
            self.counted = {key: destination for key, destination in self.counted.items() if key in live}

    def _slowed(self, destination: Hashable) -> None:
        state = self._state(destination)
        state.limit = max(self.bounds()[0], min(state.limit, self.bounds()[2]) // 2)
        self.slow[destination] = None
        self.slow.move_to_end(destination)

    def _state(self, destination: Hashable) -> _Destination:
        state = self.destinations.get(destination)
        if state is None:
            state = self.destinations[destination] = _Destination(self.bounds()[1])
            if len(self.destinations) > DESTINATIONS_KEPT:
                forgotten, _ = self.destinations.popitem(last=False)
                self.slow.pop(forgotten, None)
        else:
            self.destinations.move_to_end(destination)
        return state


class SlotBook:
    """One drain loop's slots by organization: what each holds (in flight, or waiting in the loop for its
    destination) and how many more it may take."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.held: collections.Counter[int] = collections.Counter()

    def reserve(self) -> int:
        """Free slots kept for organizations under their share."""
        return min(self.slots - 1, math.ceil(self.slots * settings.WEBHOOK_ORGANIZATION_RESERVE))

    def share(self, organization_id: int | None = None) -> int:
        """An organization's fair share: the slots over the organizations holding some (itself included),
        plus one for a newcomer."""
        holding = len(self.held) + (0 if organization_id in self.held else 1)
        return self.slots // (holding + 1)

    def refill(self, batch: int) -> int:
        """The smallest claim worth making for an organization over its share (it amortizes the claim)."""
        return max(1, min(batch, self.slots - self.reserve()) // 2)

    def allowance(self, organization_id: int | None, free: int) -> int:
        """How many more requests the organization may start now: up to its share, or while the free slots
        stay above the reserve."""
        held = self.held.get(organization_id, 0) if organization_id is not None else 0
        return max(0, min(free, max(self.share(organization_id) - held, free - self.reserve())))

    def claim_room(self, *, free: int, refill: int, slow_destinations: dict[int, int]) -> ClaimRoom:
        """What a claim may take now. An organization under its share may take its allowance; one over it
        only a refill's worth or nothing, so that small claims serve the organizations that need them."""
        organizations = {}
        for organization_id, held in self.held.items():
            allowed = self.allowance(organization_id, free)
            organizations[organization_id] = allowed if held < self.share(organization_id) or allowed >= refill else 0
        return ClaimRoom(organizations=organizations, newcomer=self.allowance(None, free),
                         slow_destinations=slow_destinations)

    def take(self, organization_id: int) -> None:
        self.held[organization_id] += 1

    def give_back(self, organization_id: int) -> None:
        self.held[organization_id] -= 1
        if self.held[organization_id] <= 0:
            del self.held[organization_id]
