"""The fault scenarios of bench/cluster.py, each on a cluster whose hosts are all up when it starts: deliveries
enqueued at once from the control host, a fault injected once a third of them succeeded, then counted from
the database (Success, and Success attempts per delivery) and the receiver's request log (webhook-id and the
sending host's address per request). Django is set up (bench/cluster.py) before any of this runs.
"""
import datetime
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from celery import current_app

from bench import cluster_services as services
from bench.cluster_hosts import Cluster
from bench.cluster_report import Result

WORKERS = ["w1", "w2"]
LEASE_SECONDS = 15  # WEBHOOK_LEASE_SECONDS on every host
IDLE_IN_TRANSACTION_SECONDS = 5  # the database host's idle_in_transaction_session_timeout
PUMP_SECONDS = 1  # WEBHOOK_PUMP_INTERVAL
# The flaky webhook's retry delay: longer than a drain loop lingers (5 s), so only the pump finds the retries.
RETRY_SECONDS = 10
DATABASE_CUT_SECONDS = 10
TAKEOVER_BOUND_SECONDS = LEASE_SECONDS + IDLE_IN_TRANSACTION_SECONDS


@dataclass
class Bench:
    """The running cluster and what the scenarios send: the 10-field webhook to the 100 ms receiver, a flaky one
    (503 to a delivery's first request, one retry after RETRY_SECONDS), a deal, and a rule whose time-based
    action sends the first webhook."""

    cluster: Cluster
    folder: Path
    env: dict[str, str]
    receiver_log: Path
    hook: object
    flaky: object
    deal: object
    action: object
    has_beat: bool = False


def bench_data(cluster: Cluster, folder: Path, env: dict[str, str], receiver_url: str, log: Path) -> Bench:
    from bench import common
    from dispatcher.models import RetryPolicy
    from tests.factories import webhook_create
    from workflows import services as workflow_services
    from workflows.models import Action, WorkflowRule

    hook, deal = common.bench_webhook(f"{receiver_url}/hook")
    policy = RetryPolicy.objects.create(code="cluster", name=f"Cluster: retries after {RETRY_SECONDS} s", delays=[RETRY_SECONDS] * 3)
    flaky = webhook_create(module=hook.module, name="Bench flaky", url=f"{receiver_url}/flaky", retry_policy=policy,
                           entity=[("deal", "${Deals.Deal Name}")])
    rule = WorkflowRule(organization=hook.organization, module=hook.module, name="Cluster timer", trigger="create",
                        match_all_records=True)
    workflow_services.rule_save(rule=rule, conditions=[], actions=[
        Action(webhook=hook, kind="time_based", delay_amount=1, delay_unit="minutes")])
    return Bench(cluster, folder, env, log, hook, flaky, deal, rule.actions.get())


def until(condition: Callable[[], bool], timeout: float) -> float | None:
    """Polls an observable state (the database, the receiver's log); the monotonic time it held, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.1)
    return None


def hosts_up(bench: Bench) -> None:
    """Every host's processes running and every link up, as a scenario expects to find the cluster."""
    for name in bench.cluster.hosts:
        bench.cluster.link(name, up=True)
    if not bench.cluster.alive("broker"):
        services.redis_start(bench.cluster, bench.folder)
    for name in WORKERS:
        if not bench.cluster.alive(name):
            services.worker_start(bench.cluster, bench.folder, bench.env, name)
    if bench.has_beat and not bench.cluster.alive("beat"):
        services.beat_start(bench.cluster, bench.folder, bench.env)
    services.workers_answer(current_app, bench.cluster, WORKERS)


class Run:
    """n deliveries enqueued at once (and `extra` more the scenario makes); what the database and the receiver
    saw of them."""

    def __init__(self, bench: Bench, n: int, hook, extra: int = 0) -> None:
        from django.db import transaction

        from dispatcher import delivery as engine
        from dispatcher.models import Delivery

        self.bench, self.expected = bench, n + extra
        self.log_offset = bench.receiver_log.stat().st_size
        first = Delivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for start in range(0, n, 500):
            with transaction.atomic():
                engine.deliveries_enqueue([engine.Enqueue(hook, bench.deal) for _ in range(min(500, n - start))])
        self.deliveries = Delivery.objects.filter(pk__gt=first)

    def successes(self) -> int:
        return self.deliveries.filter(status="success").count()

    def complete(self) -> bool:
        return self.successes() >= self.expected

    def dispatched(self) -> dict[int, datetime.datetime]:
        """The deliveries Dispatched now, with the end of their lease."""
        return dict(self.deliveries.filter(status="dispatched").values_list("pk", "lease_expires_at"))

    def taken_over(self, leases: dict[int, datetime.datetime]) -> set[int]:
        """Of these claims, those whose Success attempt began after their lease ran out: another worker took them
        over. A healthy host ends its claims within seconds of a 15 s lease, so they are the faulted host's."""
        from django.db.models import Max

        from dispatcher.models import Attempt

        ended = dict(Attempt.objects.filter(delivery__in=leases, outcome="success").values_list("delivery")
                     .annotate(last=Max("started_at")).values_list("delivery", "last"))
        return {pk for pk, lease in leases.items() if pk in ended and ended[pk] >= lease}

    def finished(self, ids: set[int]) -> bool:
        from dispatcher.models.deliveries import TERMINAL_STATUSES

        return not self.deliveries.filter(pk__in=ids).exclude(status__in=TERMINAL_STATUSES).exists()

    def requests(self) -> list[tuple[float, str, str, bool]]:
        """(time, sending address, webhook-id, answered 200) of each request the receiver logged since the run
        began."""
        with open(self.bench.receiver_log) as log:
            log.seek(self.log_offset)
            lines = [line.split() for line in log.read().splitlines()]
        return [(float(parts[0]), parts[1], parts[2], parts[4] == "200") for parts in lines if len(parts) == 5]

    def ids_by_webhook_id(self) -> dict[str, int]:
        return {f"msg_{public_id.hex}": pk for pk, public_id in self.deliveries.values_list("pk", "public_id")}

    def sent_by(self, ids: set[int], addresses: set[str]) -> int:
        """How many of these deliveries the receiver got a request for from these hosts."""
        pk_of = self.ids_by_webhook_id()
        return len(ids & {pk_of[w] for _, address, w, _ in self.requests() if address in addresses and w in pk_of})

    def result(self, scenario: str, **measured) -> Result:
        from django.db.models import Count

        from dispatcher.models import Attempt

        pk_of = self.ids_by_webhook_id()
        accepted = Counter(w for _, _, w, ok in self.requests() if ok)
        successes = set(self.deliveries.filter(status="success").values_list("pk", flat=True))
        delivered = sum(1 for w, pk in pk_of.items() if pk in successes and accepted[w])
        twice = (Attempt.objects.filter(delivery__in=self.deliveries, outcome="success").values("delivery")
                 .annotate(n=Count("id")).filter(n__gt=1).count())
        duplicates = sum(max(0, accepted[w] - 1) for w in pk_of)
        return Result(scenario=scenario, deliveries=self.expected, delivered=delivered,
                      lost=self.expected - delivered, success_twice=twice, duplicates=duplicates, **measured)


def address(bench: Bench, host_name: str) -> str:
    return bench.cluster.hosts[host_name].address


def worker_killed(bench: Bench, n: int) -> Result:
    """Every process of w1 killed while a third of the deliveries are done; w2 takes over its claims once their
    lease runs out (the pump finds them). Bound: what w1 held; only those it had sent can reach the receiver
    twice."""
    run = Run(bench, n, bench.hook)
    until(lambda: run.successes() >= n // 3, 300)
    faulted = time.monotonic()
    bench.cluster.kill("w1")
    dispatched = run.dispatched()
    done = until(lambda: run.finished(set(dispatched)), TAKEOVER_BOUND_SECONDS + 120)
    until(run.complete, 300)
    held = run.taken_over(dispatched)
    sent = run.sent_by(held, {address(bench, "w1")})
    return run.result("worker host killed (every process, SIGKILL)", duplicates_bound=len(held),
                      takeover_s=None if done is None else done - faulted, takeover_bound_s=TAKEOVER_BOUND_SECONDS,
                      note=f"Dispatched at the kill: {len(dispatched)}, of them held by w1 (taken over): {len(held)}, "
                           f"sent by w1 before it died: {sent}; takeover: from the kill until all {len(dispatched)} "
                           f"ended")


def worker_partitioned(bench: Bench, n: int) -> Result:
    """w1's link down (its processes alive) until the others have done what it held, then up again. Bound: what
    w1 held; a request it wrote during the partition reaches the receiver when the link is back (TCP
    retransmits it), so every held delivery may arrive twice."""
    run = Run(bench, n, bench.hook)
    until(lambda: run.successes() >= n // 3, 300)
    faulted = time.monotonic()
    bench.cluster.link("w1", up=False)
    dispatched = run.dispatched()
    done = until(lambda: run.finished(set(dispatched)), TAKEOVER_BOUND_SECONDS + 120)
    restored_at = time.time()
    bench.cluster.link("w1", up=True)
    partitioned_for = time.monotonic() - faulted
    until(run.complete, 300)
    services.workers_answer(current_app, bench.cluster, ["w1"])
    held = run.taken_over(dispatched)
    after = sum(1 for at, sender, _, _ in run.requests() if sender == address(bench, "w1") and at >= restored_at)
    return run.result("worker host partitioned (link down, then restored)", duplicates_bound=len(held),
                      takeover_s=None if done is None else done - faulted, takeover_bound_s=TAKEOVER_BOUND_SECONDS,
                      note=f"Dispatched at the cut: {len(dispatched)}, of them held by w1 (taken over): {len(held)}; "
                           f"link down {partitioned_for:.1f} s; w1's requests that reached the receiver after the "
                           f"link came back: {after}; w1 answered a ping again")


def database_cut(bench: Bench, n: int) -> Result:
    """The database host's link down for DATABASE_CUT_SECONDS: every host waits on it, nothing is lost. Bound:
    every claim held at the cut (a claim whose lease ran out meanwhile may be taken over and sent again)."""
    run = Run(bench, n, bench.hook)
    until(lambda: run.successes() >= n // 3, 300)
    dispatched = run.dispatched()
    bench.cluster.link("db", up=False)
    time.sleep(DATABASE_CUT_SECONDS)  # the outage itself: its length is the fault being injected
    bench.cluster.link("db", up=True)
    restored, before = time.monotonic(), run.successes()
    next_success = until(lambda: run.successes() > before, 120)
    until(run.complete, 300)
    return run.result(f"database host's link cut for {DATABASE_CUT_SECONDS} s", duplicates_bound=len(dispatched),
                      takeover_s=None if next_success is None else next_success - restored, takeover_bound_s=None,
                      note=f"Dispatched at the cut: {len(dispatched)}, taken over after it: "
                           f"{len(run.taken_over(dispatched))}; time: from the link back up to the next Success")


def broker_restarted(bench: Bench, n: int) -> Result:
    """Redis killed and started again, empty: the wake-ups it held are gone, the deliveries are not."""
    run = Run(bench, n, bench.hook)
    until(lambda: run.successes() >= n // 3, 300)
    bench.cluster.kill("broker")
    services.redis_start(bench.cluster, bench.folder)
    restarted, before = time.monotonic(), run.successes()
    next_success = until(lambda: run.successes() > before, 120)
    until(run.complete, 300)
    services.workers_answer(current_app, bench.cluster, WORKERS)
    return run.result("broker host restarted empty", duplicates_bound=None,
                      takeover_s=None if next_success is None else next_success - restarted, takeover_bound_s=None,
                      note="time: from the restart to the next Success; the workers answer pings again")


def beat_killed(bench: Bench, n: int) -> Result:
    """The beat host's processes killed, then work only periodic jobs find: retries that come due (the pump)
    and a time-based action (workflows.fire_due)."""
    from django.utils import timezone

    from workflows.models import ActionRun

    bench.cluster.kill("beat")
    run = Run(bench, n, bench.flaky, extra=1)
    action_run = ActionRun.objects.create(rule=bench.action.rule, action=bench.action, record=bench.deal,
                                          record_ref=f"Deals #{bench.deal.pk}", event="create",
                                          due_at=timezone.now() + datetime.timedelta(seconds=2))
    until(run.complete, RETRY_SECONDS + 90)
    late = retries_late(run.deliveries.filter(webhook=bench.flaky))
    action_run.refresh_from_db()
    retried = run.deliveries.filter(webhook=bench.flaky, status="success").count()
    return run.result("beat host killed (retries due, a time-based action, the pump)", duplicates_bound=None,
                      takeover_s=late, takeover_bound_s=None,
                      note=f"{retried} of {n} retries delivered, the time-based action {action_run.get_status_display()}"
                           f"; the Procfile {'has a' if bench.has_beat else 'has no'} beat line; time: the latest "
                           f"retry's second attempt after its due time")


def retries_late(deliveries) -> float | None:
    """The longest wait of a retry after it came due (its first attempt's end + RETRY_SECONDS), or None if not
    every retry was made."""
    from dispatcher.models import Attempt

    attempts: dict[int, list] = {}
    for delivery_id, number, started, duration_ms in (Attempt.objects.filter(delivery__in=deliveries)
                                                      .values_list("delivery", "number", "started_at", "duration_ms")):
        attempts.setdefault(delivery_id, [None, None])[min(number, 2) - 1] = (started, duration_ms)
    first_and_second = [pair for pair in attempts.values() if pair[0] is not None]
    if not first_and_second or any(second is None for _, second in first_and_second):
        return None
    return max((second[0] - first[0]).total_seconds() - first[1] / 1000 - RETRY_SECONDS
               for first, second in first_and_second)


SCENARIOS: dict[str, Callable[[Bench, int], Result]] = {
    "killed": worker_killed, "partitioned": worker_partitioned, "database": database_cut,
    "broker": broker_restarted, "beat": beat_killed,
}
