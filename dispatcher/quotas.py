"""The daily webhook quota: per organization and per local day, consumed atomically."""
import datetime
import zoneinfo

from django.db.models import F

from crm.models import Organization
from dispatcher.models import DailyUsage


def local_day(*, organization: Organization, now: datetime.datetime) -> datetime.date:
    return now.astimezone(zoneinfo.ZoneInfo(organization.time_zone)).date()


def daily_limit(*, organization: Organization) -> int:
    return organization.edition.daily_quota(organization.user_licences)


def quota_consume(*, organization: Organization, now: datetime.datetime) -> bool:
    """Take one call from today's quota; False when it is used up.

    One conditional UPDATE (calls < limit) decides, so concurrent workers can never pass the limit.
    """
    day = local_day(organization=organization, now=now)
    limit = daily_limit(organization=organization)
    today = DailyUsage.objects.filter(organization=organization, day=day)
    if today.filter(calls__lt=limit).update(calls=F("calls") + 1) == 1:
        return True
    # No counter yet (the day's first call) or the limit is reached: make sure it exists, then decide.
    DailyUsage.objects.get_or_create(organization=organization, day=day)
    return today.filter(calls__lt=limit).update(calls=F("calls") + 1) == 1


def quota_limit_notice_claim(*, organization: Organization, now: datetime.datetime) -> bool:
    """True once per local day: whoever flips the flag sends the e-mail to the admins."""
    day = local_day(organization=organization, now=now)
    return DailyUsage.objects.filter(organization=organization, day=day, limit_notified=False).update(
        limit_notified=True
    ) == 1


def quota_remaining(*, organization: Organization, now: datetime.datetime) -> int:
    used = DailyUsage.objects.filter(organization=organization, day=local_day(organization=organization, now=now)) \
        .values_list("calls", flat=True).first() or 0
    return max(0, daily_limit(organization=organization) - used)
