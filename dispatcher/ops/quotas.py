"""What an organization's edition allows: webhooks at all, and the daily webhook quota (per organization and
per local day, consumed atomically)."""
import datetime
import zoneinfo
from typing import Any

from django.db import connection
from django.db.models import F

from crm.services import counter_increment
from crm.models import Organization
from dispatcher.models import DailyUsage


def webhooks_refusal(organization: Organization) -> str | None:
    """None when the organization's edition includes webhooks, else why not: the one wording every path shows
    (a webhook's definition, a rule's actions, a channel, an enqueue, an attempt), so it reads the same
    wherever a user meets it."""
    edition = organization.edition
    if edition.webhooks_enabled:
        return None
    return f"The {edition.name} of {organization.name} does not include webhooks; upgrade the edition."


def local_day(*, organization: Organization, now: datetime.datetime) -> datetime.date:
    return now.astimezone(zoneinfo.ZoneInfo(organization.time_zone)).date()


def daily_limit(*, organization: Organization) -> int:
    return organization.edition.daily_quota(organization.user_licences)


def quota_consume(*, organization: Organization, now: datetime.datetime) -> bool:
    """Take one call from today's quota; False when it is used up.

    One conditional UPDATE (calls < limit) decides, so concurrent workers can never pass the limit.
    """
    keys = {"organization": organization, "day": local_day(organization=organization, now=now)}
    return counter_increment(DailyUsage, keys, below=daily_limit(organization=organization))


RESERVE_TRIES = 5


def quota_reserve(*, organization: Organization, now: datetime.datetime, count: int) -> int:
    """Take up to count calls from today's quota at once (a worker's batch); returns how many were granted.

    Each grant is one conditional UPDATE (calls + grant <= limit), so concurrent workers never pass the
    limit; unused calls go back with quota_refund.
    """
    keys: dict[str, Any] = {"organization": organization, "day": local_day(organization=organization, now=now)}
    limit = daily_limit(organization=organization)
    if 0 < count <= limit and _reserve_whole(organization.pk, keys["day"], count, limit):
        return count
    counter = DailyUsage.objects.filter(**keys)
    for _ in range(RESERVE_TRIES):
        used = counter.values_list("calls", flat=True).first()
        if used is None:
            DailyUsage.objects.get_or_create(**keys)
            used = 0
        grant = min(count, limit - used)
        if grant <= 0:
            return 0
        if counter.filter(calls__lte=limit - grant).update(calls=F("calls") + grant):
            return grant
    return 1 if quota_consume(organization=organization, now=now) else 0  # heavy contention: one at a time


def _reserve_whole(organization_id: int, day: datetime.date, count: int, limit: int) -> bool:
    """The usual reservation, one statement written out (a worker makes one per claim): today's row exists and
    the whole count fits under the limit."""
    table = connection.ops.quote_name(DailyUsage._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET calls = calls + %s WHERE organization_id = %s "  # noqa: S608 - parameters
                       "AND day = %s AND calls <= %s", [count, organization_id, day, limit - count])
        return cursor.rowcount == 1


def quota_refund(*, organization: Organization, day: datetime.date, count: int) -> None:
    """Give back calls reserved but not used (the delivery was held, cancelled or left to another worker)."""
    if count > 0:
        DailyUsage.objects.filter(organization=organization, day=day, calls__gte=count).update(
            calls=F("calls") - count)


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
