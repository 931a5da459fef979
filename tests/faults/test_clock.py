"""The daily quota through the delivery queue with a controllable clock: it starts again at the organization's local
midnight, on both sides of the date line and across daylight-saving switches."""
import datetime
import zoneinfo

import pytest
from django.utils import timezone

from crm import services as crm_services
from crm.models import Edition
from dispatcher import delivery as delivery_engine
from dispatcher.models import DailyUsage, DeliveryStatus
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create


class Clock:
    def __init__(self, moment: str) -> None:
        self.now = datetime.datetime.fromisoformat(moment).replace(tzinfo=datetime.UTC)

    def set(self, moment: str) -> None:
        self.now = datetime.datetime.fromisoformat(moment).replace(tzinfo=datetime.UTC)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock("2026-01-01T00:00:00")
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


def organization_hook(receiver, time_zone: str, limit: int):
    """An organization in time_zone allowed `limit` calls a day, with a webhook to the receiver."""
    edition = Edition.objects.create(code="limited", name="Limited", daily_call_limit=limit, calls_per_licence=100)
    organization = OrganizationFactory(edition=edition, time_zone=time_zone)
    deals = organization.modules.get(api_name="Deals")
    deal = crm_services.record_create(module=deals, owner=CrmUserFactory(organization=organization),
                                      values={"Deal_Name": "Clock"})
    hook = webhook_create(module=deals, name="Clock", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")])
    return hook, deal


def attempts(hook, deal, count: int) -> list[str]:
    """Enqueue count deliveries and attempt each at once, at the clock's time; their outcomes."""
    outcomes = []
    for _ in range(count):
        delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
        [(pk, token)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=1, ids=[delivery.pk])
        outcomes.append(delivery_engine.delivery_attempt(delivery_id=pk, token=token).status)
    return outcomes


# (zone, the last second of a local day in UTC, the first second of the next: the same UTC day each time)
MIDNIGHTS = [
    ("Pacific/Honolulu", "2026-03-02T09:59:59", "2026-03-02T10:00:00"),  # UTC-10
    ("Pacific/Kiritimati", "2026-03-01T09:59:59", "2026-03-01T10:00:00"),  # UTC+14
    ("Europe/Amsterdam", "2026-03-29T21:59:59", "2026-03-29T22:00:00"),  # end of a 23-hour day (spring forward)
    ("Europe/Amsterdam", "2026-10-25T22:59:59", "2026-10-25T23:00:00"),  # end of a 25-hour day (fall back)
]


@pytest.mark.django_db
@pytest.mark.parametrize(("zone", "last_second", "next_day"), MIDNIGHTS)
def test_the_quota_starts_again_at_local_midnight(receiver, clock, zone, last_second, next_day):
    receiver.expect_request("/hook").respond_with_data("ok")
    hook, deal = organization_hook(receiver, zone, limit=2)
    ok, limit = DeliveryStatus.SUCCESS, DeliveryStatus.LIMIT_REACHED
    clock.set(last_second)
    assert attempts(hook, deal, 3) == [ok, ok, limit]
    clock.set(next_day)
    assert attempts(hook, deal, 3) == [ok, ok, limit]
    zone_info = zoneinfo.ZoneInfo(zone)
    days = {clock_at.astimezone(zone_info).date(): 2 for clock_at in (at(last_second), at(next_day))}
    assert dict(DailyUsage.objects.values_list("day", "calls")) == days
    assert len(receiver.log) == 4


def at(moment: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(moment).replace(tzinfo=datetime.UTC)
