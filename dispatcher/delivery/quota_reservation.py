"""The daily quota a drain loop has reserved, per organization: calls taken from the database's counter
ahead (quotas.quota_reserve, one conditional UPDATE that never passes the limit) for the deliveries a claim
brought, handed out one per attempt, and given back when the loop ends or the organization's day ends.

A worker that dies with calls reserved loses them for the day: the quota errs on the side of sending
fewer calls, never more.
"""
import collections
import datetime

from crm.models import Organization
from dispatcher.ops import quotas
from dispatcher.models import Delivery
from dispatcher.ops.notifications import notify_later, notify_limit_reached


class QuotaReservation:
    """One loop's reservation: per organization, the local day it was made for and the calls still unused,
    and the claimed deliveries not prepared yet (the next reservation includes them, so a claim of 100
    costs one reservation, not 100)."""

    def __init__(self) -> None:
        self.unused: dict[int, tuple[datetime.date, int]] = {}
        self.coming: collections.Counter[int] = collections.Counter()  # organization: claimed, not prepared
        self.organizations: dict[int, Organization] = {}

    def expect(self, deliveries: list[Delivery]) -> None:
        """These claimed deliveries will each ask for a call (or end before that, see prepared)."""
        for delivery in deliveries:
            self.coming[delivery.organization_id] += 1

    def prepared(self, delivery: Delivery) -> None:
        """This expected delivery is being prepared now: it takes its call or goes without one."""
        self.coming[delivery.organization_id] -= 1
        if self.coming[delivery.organization_id] <= 0:
            del self.coming[delivery.organization_id]

    def take(self, delivery: Delivery, now: datetime.datetime) -> bool:
        """One call of today's quota for this delivery; False when the organization's day is used up."""
        organization = delivery.organization
        self.organizations[organization.pk] = organization
        today = quotas.local_day(organization=organization, now=now)
        day, unused = self.unused.get(organization.pk, (today, 0))
        if day != today:  # the loop crossed midnight in the organization's time zone
            quotas.quota_refund(organization=organization, day=day, count=unused)
            unused = 0
        if not unused:
            unused = quotas.quota_reserve(organization=organization, now=now,
                                          count=1 + self.coming[organization.pk])
            if not unused:
                self.unused[organization.pk] = (today, 0)
                return False
        self.unused[organization.pk] = (today, unused - 1)
        return True

    def refund_one(self, delivery: Delivery) -> None:
        """A delivery given back after it took its call: the call goes back to the reservation."""
        day, unused = self.unused.get(delivery.organization_id, (None, 0))
        if day is not None:
            self.unused[delivery.organization_id] = (day, unused + 1)

    def release(self) -> None:
        """Give every unused call back to the database (the loop ends)."""
        for organization_id, (day, unused) in self.unused.items():
            quotas.quota_refund(organization=self.organizations[organization_id], day=day, count=unused)
        self.unused.clear()


def limit_reached_notify(delivery: Delivery, now: datetime.datetime) -> None:
    """The organization's day is used up: its admins hear of it once that day, whichever worker notices."""
    if quotas.quota_limit_notice_claim(organization=delivery.organization, now=now):
        notify_later(notify_limit_reached, delivery.organization_id, now.isoformat())
