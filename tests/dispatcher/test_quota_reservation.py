"""A drain loop's quota reservation (delivery/quota_reservation.py): one reservation per claim and organization,
a call per attempt, calls given back when a delivery is handed back and when the loop ends, and never more
than the day's limit; the organization's day, not UTC's."""
import datetime

import pytest
from django.core import mail

from crm.models import CrmUser, Edition
from dispatcher.delivery.quota_reservation import QuotaReservation, limit_reached_notify
from dispatcher.models import DailyUsage, Delivery
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db
UTC = datetime.UTC
NOON = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def organization():
    edition = Edition.objects.create(code="five", name="Five a day", daily_call_limit=5, calls_per_licence=1000)
    return OrganizationFactory(edition=edition, time_zone="Pacific/Honolulu")  # UTC-10


def claimed(organization, n: int) -> list[Delivery]:
    """Deliveries as a claim brings them: only what the reservation reads is needed."""
    return [Delivery(pk=1000 + i, organization=organization) for i in range(n)]


def used(organization, day: str) -> int | None:
    return DailyUsage.objects.filter(organization=organization, day=day).values_list("calls", flat=True).first()


def test_a_claim_of_three_reserves_once_and_each_attempt_takes_one_call(organization):
    reservation, deliveries = QuotaReservation(), claimed(organization, 3)
    reservation.expect(deliveries)
    for delivery in deliveries:
        reservation.prepared(delivery)
        assert reservation.take(delivery, NOON)
    assert used(organization, "2026-05-01") == 3
    reservation.release()
    assert used(organization, "2026-05-01") == 3  # all three were used: nothing to give back


def test_a_delivery_that_ends_before_its_call_is_not_reserved_for(organization):
    reservation, (cancelled, sent) = QuotaReservation(), claimed(organization, 2)
    reservation.expect([cancelled, sent])
    reservation.prepared(cancelled)  # e.g. its webhook was deactivated: it never asks for a call
    reservation.prepared(sent)
    assert reservation.take(sent, NOON)
    assert used(organization, "2026-05-01") == 1


def test_a_call_handed_back_is_used_by_the_next_attempt_and_the_rest_given_back_at_the_end(organization):
    reservation, (first, second) = QuotaReservation(), claimed(organization, 2)
    reservation.expect([first])
    reservation.prepared(first)
    assert reservation.take(first, NOON)
    reservation.refund_one(first)  # its destination was busy: back to the database unattempted
    assert reservation.take(second, NOON)  # from the reservation, not from the database
    assert used(organization, "2026-05-01") == 1
    reservation.refund_one(second)
    reservation.release()
    assert used(organization, "2026-05-01") == 0


def test_the_day_is_never_passed_and_the_admins_are_told_once(organization, django_capture_on_commit_callbacks):
    CrmUser.objects.create(organization=organization, last_name="Admin", email="admin@five.example", is_admin=True)
    reservation, deliveries = QuotaReservation(), claimed(organization, 7)
    reservation.expect(deliveries)
    taken = []
    with django_capture_on_commit_callbacks(execute=True):  # the worker's transaction commits
        for delivery in deliveries:
            reservation.prepared(delivery)
            taken.append(reservation.take(delivery, NOON))
            if not taken[-1]:
                limit_reached_notify(delivery, NOON)
    assert taken == [True] * 5 + [False] * 2
    assert used(organization, "2026-05-01") == 5
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["admin@five.example"]


def test_a_loop_that_crosses_the_organizations_midnight_gives_back_yesterdays_calls(organization):
    reservation, (late, early) = QuotaReservation(), claimed(organization, 2)
    evening = datetime.datetime(2026, 5, 2, 9, 59, tzinfo=UTC)  # 23:59 on 1 May in Honolulu
    assert reservation.take(late, evening)
    reservation.refund_one(late)  # one call of 1 May unused
    assert reservation.take(early, evening + datetime.timedelta(minutes=2))  # 00:01 on 2 May
    assert (used(organization, "2026-05-01"), used(organization, "2026-05-02")) == (0, 1)
