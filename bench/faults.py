"""Long fault runs (issue 8): real workers, Redis, PostgreSQL and nginx; faults injected while deliveries
flow; a table of each fault, how often it was injected, deliveries sent, lost (must be 0), duplicated,
and time to recover. tests/faults/ runs shorter versions of the same in CI.

    .venv/bin/python bench/faults.py [--n 5000] [--kills 10] [--quick] [--json FILE]

- worker killed: SIGKILL to the worker and its pool at random moments (after a random number of
  successes), a new worker started each time; again with WEBHOOK_ATTEMPT_FLUSH_SECONDS=0;
- broker lost: Redis flushed and every client disconnected (what a restart without persistence does);
- database unavailable: the workers reach PostgreSQL through a proxy that drops every connection and
  refuses new ones for 10 seconds.

Lost: deliveries not ended in Success, or whose webhook-id the receiver never logged. Duplicated: receiver
requests beyond one per delivery. Recovery: from the end of a fault to the next stored Success.
"""
import argparse
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

# Short timeouts and leases: work a dead worker held is taken over in seconds.
FAST = {"WEBHOOK_CONNECT_TIMEOUT": "1", "WEBHOOK_READ_TIMEOUT": "2", "WEBHOOK_TOTAL_TIMEOUT": "3",
        "WEBHOOK_LEASE_SECONDS": "5", "WEBHOOK_PUMP_INTERVAL": "0.5", "WEBHOOK_DRAIN_SECONDS": "10"}
CONCURRENCY = 4


class Run:
    """n deliveries enqueued at once; counts what the database and the receiver saw."""

    def __init__(self, hook, deal, receiver: "common.Receiver", n: int) -> None:
        from django.db import transaction

        from dispatcher import delivery as delivery_engine
        from dispatcher.models import Delivery

        self.receiver, self.n = receiver, n
        self.first_log_line = len(receiver.log_lines())
        first = Delivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for start in range(0, n, 500):
            with transaction.atomic():
                delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(min(500, n - start))])
        self.deliveries = Delivery.objects.filter(pk__gt=first)
        self.recoveries: list[float] = []

    def successes(self) -> int:
        return self.deliveries.filter(status="success").count()

    def wait(self, condition, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError("timed out: the run did not recover")
            time.sleep(0.1)

    def fault_over(self) -> None:
        """The fault has ended: time until the next delivery succeeds."""
        ended, before = time.monotonic(), self.successes()
        if before < self.n:
            self.wait(lambda: self.successes() > before)
            self.recoveries.append(time.monotonic() - ended)

    def result(self, fault: str, injected: int) -> dict:
        self.wait(lambda: self.successes() == self.n or not self.deliveries.exclude(
            status__in=["success", "failed", "limit_reached", "cancelled"]).exists())
        ids = Counter(line.split(" ", 1)[1] for line in self.receiver.log_lines()[self.first_log_line:])
        expected = {f"msg_{public_id.hex}" for public_id in self.deliveries.values_list("public_id", flat=True)}
        lost = self.n - self.successes() + len(expected - set(ids))
        duplicated = sum(ids.values()) - len(ids)
        recovery = max(self.recoveries) if self.recoveries else 0.0
        return {"fault": fault, "injected": injected, "sent": self.n, "lost": lost, "duplicated": duplicated,
                "recovery_s": recovery}


def worker_killed(hook, deal, receiver, n: int, kills: int, env: dict, label: str = "worker killed (SIGKILL)") -> dict:
    run = Run(hook, deal, receiver, n)
    rng = random.Random(7)
    workers = common.Workers(concurrency=CONCURRENCY, env=env, tag="faults", beat=True)
    for _ in range(kills):
        target = run.successes() + rng.randrange(n // (kills * 4), n // kills)
        run.wait(lambda target=target: run.successes() >= min(target, n))
        workers.kill()
        workers = common.Workers(concurrency=CONCURRENCY, env=env, tag="faults", beat=True)
        run.fault_over()
    result = run.result(label, kills)
    workers.stop()
    return result


def broker_lost(hook, deal, receiver, n: int, env: dict) -> dict:
    import redis

    run = Run(hook, deal, receiver, n)
    workers = common.Workers(concurrency=CONCURRENCY, env=env, tag="faults", beat=True)
    run.wait(lambda: run.successes() >= n // 3)
    broker = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    broker.flushdb()
    broker.execute_command("CLIENT", "KILL", "TYPE", "normal")
    run.fault_over()
    result = run.result("broker lost (Redis flushed, clients dropped)", 1)
    workers.stop()
    return result


def database_unavailable(hook, deal, receiver, n: int, env: dict, seconds: float) -> dict:
    from tests.faults.proxy import CuttableProxy

    proxy = CuttableProxy(("127.0.0.1", 5432))
    run = Run(hook, deal, receiver, n)
    proxied = {**env, "DATABASE_URL": env["DATABASE_URL"].replace(":5432/", f":{proxy.port}/"),
               "DATABASE_CONN_MAX_AGE": "0"}
    workers = common.Workers(concurrency=CONCURRENCY, env=proxied, tag="faults", beat=True)
    run.wait(lambda: run.successes() >= n // 3)
    proxy.cut()
    time.sleep(seconds)  # the outage itself: a fixed length is the fault being injected
    proxy.restore()
    run.fault_over()
    result = run.result(f"database unavailable for {seconds:g} s", 1)
    workers.stop()
    proxy.close()
    return result


def markdown(results: list[dict]) -> str:
    """The table for docs/internals/faults.md ("Fault and abuse suite")."""
    from django.conf import settings

    lines = [f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, nginx receiver; worker concurrency {CONCURRENCY}, "
             f"`WEBHOOK_DRAIN_BATCH` {settings.WEBHOOK_DRAIN_BATCH}, lease {FAST['WEBHOOK_LEASE_SECONDS']} s:", "",
             "| fault | injected | deliveries sent | lost | duplicated | time to recover |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['fault']} | {r['injected']} | {r['sent']:,} | {r['lost']} | {r['duplicated']} | "
              f"{r['recovery_s']:.1f} s |" for r in results]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="deliveries per fault (default 5000; --quick 500)")
    parser.add_argument("--kills", type=int, default=None, help="worker kills (default 10; --quick 3)")
    args = parser.parse_args()
    n, kills = args.n or (500 if args.quick else 5000), args.kills or (3 if args.quick else 10)
    common.postgres_environment("webhooks_faults")
    os.environ.update(FAST)
    common.django_ready()
    receiver = common.Receiver(access_log=True, log_format="$msec $http_webhook_id")
    hook, deal = common.bench_webhook(receiver.url())
    env = {**os.environ}
    results = []
    try:
        results.append(worker_killed(hook, deal, receiver, n, kills, env))
        results.append(worker_killed(hook, deal, receiver, n, kills, {**env, "WEBHOOK_ATTEMPT_FLUSH_SECONDS": "0"},
                                     "worker killed, each attempt stored as it ends"))
        results.append(broker_lost(hook, deal, receiver, n, env))
        results.append(database_unavailable(hook, deal, receiver, n, env, seconds=3 if args.quick else 10))
    finally:
        receiver.stop()
    print(f"receiver: {receiver.label}; worker concurrency {CONCURRENCY}")
    print(f"{'fault':48} {'injected':>8} {'sent':>6} {'lost':>5} {'duplicated':>10} {'recovery (s)':>12}")
    for r in results:
        print(f"{r['fault']:48} {r['injected']:>8} {r['sent']:>6} {r['lost']:>5} {r['duplicated']:>10} "
              f"{r['recovery_s']:>12.1f}")
    rows = [common.row(f"faults: {r['fault']}, lost", r["lost"], "deliv", target="0", passed=r["lost"] == 0,
                       note=f"{r['injected']} injected, {r['sent']} sent, {r['duplicated']} duplicated, "
                            f"recovered in {r['recovery_s']:.1f} s") for r in results]
    if args.json:
        common.report(rows, args.json)
    if not args.quick:
        (common.BASE_DIR / "bench" / "faults.md").write_text(markdown(results))
    sys.exit(0 if all(r["lost"] == 0 for r in results) else 1)


if __name__ == "__main__":
    main()
