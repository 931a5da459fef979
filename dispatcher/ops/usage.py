"""Usage statistics: counted when attempts happen, read for the last days by the usage chart."""
import datetime
from collections import Counter

from django.db.models import Sum

from crm.services import counter_increment
from crm.models import Organization
from dispatcher.ops import quotas
from dispatcher.models import DeliverySource, DeliveryStatus, UsageCounter
from dispatcher.models.usage import latency_column

CHART_DAYS = 7  # seed 003: the chart covers the last 7 days


def usage_count(*, organization: Organization, now: datetime.datetime, source: str, outcome: str,
                duration_ms: int | None = None) -> None:
    """Count one attempt; one with an HTTP exchange (duration_ms set) also goes into the latency histogram."""
    tally = UsageTally()
    tally.add(organization=organization, now=now, source=source, outcome=outcome, duration_ms=duration_ms)
    tally.flush()


class UsageTally:
    """Usage counts of a worker's batch, added up in memory and written with one UPDATE per counter row."""

    def __init__(self) -> None:
        self.rows: dict[tuple, Counter] = {}
        self.organizations: dict[int, Organization] = {}

    def add(self, *, organization: Organization, now: datetime.datetime, source: str, outcome: str,
            duration_ms: int | None = None) -> None:
        key = (organization.pk, quotas.local_day(organization=organization, now=now), source, outcome)
        self.organizations[organization.pk] = organization
        counts = self.rows.setdefault(key, Counter())
        counts["calls"] += 1
        if duration_ms is not None:
            counts.update({"latency_count": 1, "latency_ms_total": duration_ms, latency_column(duration_ms): 1})

    def flush(self) -> None:
        for (organization_id, day, source, outcome), counts in self.rows.items():
            calls = counts.pop("calls")
            counter_increment(UsageCounter, {"organization": self.organizations[organization_id], "day": day,
                                                    "source": source, "outcome": outcome},
                                     amount=calls, extra=dict(counts))
        self.rows.clear()


def usage_last_days(*, organization: Organization, now: datetime.datetime, weekly: bool = False) -> dict:
    """Per day (or per week of the last 7 weeks): attempts by source and by outcome, and the daily quota."""
    today = quotas.local_day(organization=organization, now=now)
    span = CHART_DAYS * (7 if weekly else 1)
    first = today - datetime.timedelta(days=span - 1)
    rows = (UsageCounter.objects.filter(organization=organization, day__gte=first, day__lte=today)
            .values("day", "source", "outcome").annotate(total=Sum("calls")))
    labels, index = [], {}
    for n in range(CHART_DAYS):
        start = first + datetime.timedelta(days=n * (7 if weekly else 1))
        labels.append(start.isoformat() if not weekly else f"week of {start.isoformat()}")
        index[start] = n
    by_source = {key: [0] * CHART_DAYS for key, _ in DeliverySource.choices}
    by_outcome = {key: [0] * CHART_DAYS for key, _ in DeliveryStatus.choices}
    for row in rows:
        n = (row["day"] - first).days // (7 if weekly else 1)
        by_source[row["source"]][n] += row["total"]
        by_outcome[row["outcome"]][n] += row["total"]
    quota = quotas.daily_limit(organization=organization) * (7 if weekly else 1)
    totals = [sum(values[n] for values in by_source.values()) for n in range(CHART_DAYS)]
    return {
        "labels": labels,
        "by_source": {label: by_source[key] for key, label in DeliverySource.choices if any(by_source[key])},
        "by_outcome": {label: by_outcome[key] for key, label in DeliveryStatus.choices if any(by_outcome[key])},
        "totals": totals,
        "quota": quota,
        "scale": usage_chart_scale(totals=totals, quota=quota),
    }


# A quota up to this many times the busiest day shares the bars' axis (the bars keep at least half the height);
# a larger one would flatten them (100 calls a day under a 12,500 line are a few pixels), so it is shown apart.
QUOTA_ON_AXIS_RATIO = 2


def usage_chart_scale(*, totals: list[int], quota: int) -> dict:
    """How the chart shows the quota beside the bars: as a line on their axis while that leaves the bars at
    least half the height, else as a number on a band along the top of the chart (off the bars' scale)."""
    busiest = max(totals, default=0)
    return {
        "busiest": busiest,
        "quota_on_axis": busiest == 0 or quota <= QUOTA_ON_AXIS_RATIO * busiest,
        "busiest_share": round(100 * busiest / quota, 2) if quota else None,  # per cent of the quota
    }
