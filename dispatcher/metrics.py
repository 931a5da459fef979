"""Operational metrics in the Prometheus format, read from the database so that every web process
reports the same figures whichever workers (on whichever machines) did the work.

Counters come from the usage counters the workers keep per attempt (so a scrape reads a few rows,
never the log); gauges of pending work use the partial indexes of the deliveries; the engine's decisions and
requests in flight come from the counters the workers add to (dispatcher/delivery/counters.py).

Two views: the installation's (every organization, with its name and quota, and the engine), for the
metrics token and superusers; and an organization's (its own series only, without the engine's decisions
and processes, which are the installation's), for its staff.
"""
import datetime
from collections.abc import Callable, Collection, Iterator

from django.db.models import Count, Min, QuerySet, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from crm.models import Organization
from dispatcher import quotas
from dispatcher.models import (
    Channel, DailyUsage, Delivery, DeliveryStatus, Endpoint, EngineCounter, SenderProcess, UsageCounter,
)
from dispatcher.models.deliveries import WAITING_STATUSES
from dispatcher.models.usage import LATENCY_BUCKETS_MS

PENDING_STATUSES = (*WAITING_STATUSES, DeliveryStatus.DISPATCHED, DeliveryStatus.HELD)


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
        endpoints = GaugeMetricFamily("webhook_endpoints_disabled", "Destinations disabled by endpoint health.")
        endpoints.add_metric([], self._scoped(Endpoint.objects.filter(disabled_at__isnull=False)).count())
        yield endpoints
        active = GaugeMetricFamily("webhook_channels_active", "Event subscription channels receiving now.")
        active.add_metric([], self._scoped(Channel.objects.receiving(now)).count())
        yield active
        if self.organizations is None:
            yield from _engine(now)

    def _scoped(self, queryset: QuerySet, field: str = "organization_id") -> QuerySet:
        return queryset if self.organizations is None else queryset.filter(**{f"{field}__in": self.organizations})


def _attempts(counters: QuerySet[UsageCounter]) -> Iterator[Metric]:
    columns = ["latency_count", "latency_ms_total", *(f"latency_le_{b}" for b in LATENCY_BUCKETS_MS), "latency_le_inf"]
    attempts = CounterMetricFamily("webhook_attempts", "Delivery attempts by source and outcome (the delivery's "
                                   "status after the attempt).", labels=["source", "outcome"])
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
    histogram = HistogramMetricFamily("webhook_attempt_duration_seconds",
                                      "Duration of attempts that made an HTTP exchange.")
    histogram.add_metric([], buckets, sum_value=totals["latency_ms_total"] / 1000)
    yield histogram


def _pending(now: datetime.datetime, scoped: Callable[[QuerySet], QuerySet]) -> Iterator[Metric]:
    pending = GaugeMetricFamily("webhook_deliveries_pending", "Deliveries not ended yet, by status.",
                                labels=["status"])
    counts = dict(scoped(Delivery.objects.filter(status__in=PENDING_STATUSES)).order_by().values("status")
                  .annotate(n=Count("id")).values_list("status", "n"))
    for status in PENDING_STATUSES:
        pending.add_metric([status], counts.get(status, 0))
    yield pending
    due = scoped(Delivery.objects.due(now))
    depth = GaugeMetricFamily("webhook_queue_depth", "Deliveries due now (waiting for a worker).")
    depth.add_metric([], due.count())
    yield depth
    oldest = due.filter(status__in=WAITING_STATUSES).aggregate(oldest=Min("due_at"))["oldest"]
    age = GaugeMetricFamily("webhook_oldest_due_age_seconds", "How long the oldest due delivery has waited.")
    age.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
    yield age


SENDER_SEEN_WITHIN = datetime.timedelta(minutes=2)  # a process not heard from for longer is not shown


def _engine(now: datetime.datetime) -> Iterator[Metric]:
    decisions = CounterMetricFamily(
        "webhook_engine_decisions", "Decisions of the delivery engine: claims lost, leases taken over, row-by-row "
        "write fallbacks, values cut, render and sign failures, capture errors and timeouts, deliveries held, "
        "throttled or given back because their destination was busy.", labels=["decision", "outcome"])
    for row in EngineCounter.objects.order_by("decision", "outcome"):
        decisions.add_metric([row.decision, row.outcome], row.count)
    yield decisions
    in_flight = GaugeMetricFamily("webhook_requests_in_flight", "Requests in flight per worker process, as last "
                                  "reported.", labels=["process"])
    for process in SenderProcess.objects.filter(seen_at__gte=now - SENDER_SEEN_WITHIN).order_by("name"):
        in_flight.add_metric([process.name], process.in_flight)
    yield in_flight


def _quota(now: datetime.datetime, shown: QuerySet[Organization]) -> Iterator[Metric]:
    used = GaugeMetricFamily("webhook_quota_used", "Calls counted against today's quota (organization's local day).",
                             labels=["organization"])
    limit = GaugeMetricFamily("webhook_quota_limit", "The daily call limit of the organization's edition.",
                              labels=["organization"])
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
