"""Operational metrics in the Prometheus format, read from the database so that every web process
reports the same figures whichever workers (on whichever machines) did the work.

Counters come from the usage counters the workers keep per attempt (so a scrape reads a few rows,
never the log); gauges of pending work use the partial indexes of the deliveries; the engine's decisions and
requests in flight come from the counters the workers add to (dispatcher/delivery/counters.py).

Two views: the installation's (every organization, with its name and quota, and the engine), for the
metrics token and superusers; and an organization's (its own series only, without the engine's decisions
and processes, which are the installation's), for its staff.

Every metric is declared once in METRICS: collect() fills it in, describe() lists it without a query, and so
does the monitoring reference (dispatcher/ops/metrics_reference.py, docs/operate/monitoring.md).
"""
import datetime
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db.models import Count, Min, QuerySet, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from crm.models import Organization
from dispatcher.ops import quotas
from dispatcher.models import (
    Channel, DailyUsage, Delivery, DeliveryStatus, Endpoint, EngineCounter, SenderProcess, UsageCounter,
)
from dispatcher.models.deliveries import WAITING_STATUSES
from dispatcher.models.usage import LATENCY_BUCKETS_MS

PENDING_STATUSES = (*WAITING_STATUSES, DeliveryStatus.DISPATCHED, DeliveryStatus.HELD)


Family = TypeVar("Family", CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily)


@dataclass(frozen=True)
class MetricSpec(Generic[Family]):
    """One metric /metrics exports. installation_only: the engine's, left out of an organization's view."""

    name: str
    kind: type[Family]
    documentation: str
    labels: tuple[str, ...] = ()
    installation_only: bool = False

    def family(self) -> Family:
        return self.kind(self.name, self.documentation, labels=list(self.labels))


ATTEMPTS = MetricSpec("webhook_attempts", CounterMetricFamily, "Delivery attempts by source and outcome (the "
                      "delivery's status after the attempt).", labels=("source", "outcome"))
ATTEMPT_DURATION = MetricSpec("webhook_attempt_duration_seconds", HistogramMetricFamily,
                              "Duration of attempts that made an HTTP exchange.")
PENDING = MetricSpec("webhook_deliveries_pending", GaugeMetricFamily, "Deliveries not ended yet, by status.",
                     labels=("status",))
QUEUE_DEPTH = MetricSpec("webhook_queue_depth", GaugeMetricFamily, "Deliveries due now (waiting for a worker).")
OLDEST_DUE_AGE = MetricSpec("webhook_oldest_due_age_seconds", GaugeMetricFamily,
                            "How long the oldest due delivery has waited.")
QUOTA_USED = MetricSpec("webhook_quota_used", GaugeMetricFamily,
                        "Calls counted against today's quota (organization's local day).", labels=("organization",))
QUOTA_LIMIT = MetricSpec("webhook_quota_limit", GaugeMetricFamily,
                         "The daily call limit of the organization's edition.", labels=("organization",))
ENDPOINTS_DISABLED = MetricSpec("webhook_endpoints_disabled", GaugeMetricFamily,
                                "Destinations disabled by endpoint health.")
CHANNELS_ACTIVE = MetricSpec("webhook_channels_active", GaugeMetricFamily, "Event subscription channels receiving now.")
ENGINE_DECISIONS = MetricSpec(
    "webhook_engine_decisions", CounterMetricFamily, "Decisions of the delivery engine: claims lost, leases taken "
    "over, row-by-row write fallbacks, values cut, render and sign failures, capture errors and timeouts, deliveries "
    "held, throttled or given back because their destination was busy.", labels=("decision", "outcome"),
    installation_only=True)
REQUESTS_IN_FLIGHT = MetricSpec("webhook_requests_in_flight", GaugeMetricFamily,
                                "Requests in flight per worker process, as last reported.", labels=("process",),
                                installation_only=True)
# In the order collect() yields them.
METRICS = (ATTEMPTS, ATTEMPT_DURATION, PENDING, QUEUE_DEPTH, OLDEST_DUE_AGE, QUOTA_USED, QUOTA_LIMIT,
           ENDPOINTS_DISABLED, CHANNELS_ACTIVE, ENGINE_DECISIONS, REQUESTS_IN_FLIGHT)


class DispatcherCollector(Collector):
    """organizations: None for the installation's view, else the ids whose series are shown (none at all
    for a staff login without a CRM user, as in the admin)."""

    def __init__(self, now: datetime.datetime | None = None, organizations: Collection[int] | None = None) -> None:
        self.now = now
        self.organizations = organizations

    def collect(self) -> Iterator[Metric]:
        now = self.now or timezone.now()
        yield from _attempts(self._scoped(UsageCounter.objects.all()))
        yield from _pending(now, self._scoped)
        yield from _quota(now, self._scoped(Organization.objects.all(), field="pk"))
        endpoints = ENDPOINTS_DISABLED.family()
        endpoints.add_metric([], self._scoped(Endpoint.objects.filter(disabled_at__isnull=False)).count())
        yield endpoints
        active = CHANNELS_ACTIVE.family()
        active.add_metric([], self._scoped(Channel.objects.receiving(now)).count())
        yield active
        if self.organizations is None:
            yield from _engine(now)

    def describe(self) -> Iterator[Metric]:
        """The metrics collect() yields in this view, without samples: no database query."""
        return (spec.family() for spec in METRICS if self.organizations is None or not spec.installation_only)

    def _scoped(self, queryset: QuerySet, field: str = "organization_id") -> QuerySet:
        return queryset if self.organizations is None else queryset.filter(**{f"{field}__in": self.organizations})


def _attempts(counters: QuerySet[UsageCounter]) -> Iterator[Metric]:
    columns = ["latency_count", "latency_ms_total", *(f"latency_le_{b}" for b in LATENCY_BUCKETS_MS), "latency_le_inf"]
    attempts = ATTEMPTS.family()
    totals = dict.fromkeys(columns, 0)
    for source, outcome, calls, *latency in counters.values("source", "outcome").annotate(
            calls_sum=Sum("calls"), **{f"{c}_sum": Sum(c) for c in columns}).order_by("source", "outcome") \
            .values_list("source", "outcome", "calls_sum", *(f"{c}_sum" for c in columns)):
        attempts.add_metric([source, outcome], calls)
        for column, total in zip(columns, latency, strict=True):
            totals[column] += total or 0
    yield attempts
    buckets, running = [], 0
    for bound in LATENCY_BUCKETS_MS:
        running += totals[f"latency_le_{bound}"]
        buckets.append((f"{bound / 1000:g}", running))
    buckets.append(("+Inf", running + totals["latency_le_inf"]))
    histogram = ATTEMPT_DURATION.family()
    histogram.add_metric([], buckets, sum_value=totals["latency_ms_total"] / 1000)
    yield histogram


def _pending(now: datetime.datetime, scoped: Callable[[QuerySet], QuerySet]) -> Iterator[Metric]:
    pending = PENDING.family()
    counts = dict(scoped(Delivery.objects.filter(status__in=PENDING_STATUSES)).order_by().values("status")
                  .annotate(n=Count("id")).values_list("status", "n"))
    for status in PENDING_STATUSES:
        pending.add_metric([status], counts.get(status, 0))
    yield pending
    due = scoped(Delivery.objects.due(now))
    depth = QUEUE_DEPTH.family()
    depth.add_metric([], due.count())
    yield depth
    oldest = due.filter(status__in=WAITING_STATUSES).aggregate(oldest=Min("due_at"))["oldest"]
    age = OLDEST_DUE_AGE.family()
    age.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    yield age


SENDER_SEEN_WITHIN = datetime.timedelta(minutes=2)  # a process not heard from for longer is not shown


def _engine(now: datetime.datetime) -> Iterator[Metric]:
    decisions = ENGINE_DECISIONS.family()
    for row in EngineCounter.objects.order_by("decision", "outcome"):
        decisions.add_metric([row.decision, row.outcome], row.count)
    yield decisions
    in_flight = REQUESTS_IN_FLIGHT.family()
    for process in SenderProcess.objects.filter(seen_at__gte=now - SENDER_SEEN_WITHIN).order_by("name"):
        in_flight.add_metric([process.name], process.in_flight)
    yield in_flight


def _quota(now: datetime.datetime, shown: QuerySet[Organization]) -> Iterator[Metric]:
    used, limit = QUOTA_USED.family(), QUOTA_LIMIT.family()
    organizations = list(shown.select_related("edition").order_by("pk"))
    days = {org.pk: quotas.local_day(organization=org, now=now) for org in organizations}
    calls = {(row.organization_id, row.day): row.calls
             for row in DailyUsage.objects.filter(day__in=set(days.values()), organization__in=organizations)}
    for org in organizations:
        used.add_metric([org.name], calls.get((org.pk, days[org.pk]), 0))
        limit.add_metric([org.name], quotas.daily_limit(organization=org))
    yield used
    yield limit


def metrics_registry(now: datetime.datetime | None = None,
                     organizations: Collection[int] | None = None) -> CollectorRegistry:
    """The installation's metrics (organizations None), or only those of the organizations given."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DispatcherCollector(now, organizations))
    return registry
