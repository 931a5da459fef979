"""CPU and statements per delivery of the engine's drain, in this process (issue 27): what the thread that
owns the database connection, the whole worker process and its PostgreSQL backend spend per delivery.

    .venv/bin/python bench/profile_store.py [--n 2000] [--receiver fast|slow] [--repeat 3]
                                            [--profile FILE] [--top 30] [--database NAME] [--json FILE]

N due deliveries of three webhooks (the 10-field JSON benchmark webhook; one with Basic authentication, a
secret header and a secret custom parameter, whose answers are masked; one form-encoded) for a few deals,
sent to a real local receiver in its own process (fast: nginx answering at once; slow: the asyncio
receiver of bench/slow_receiver.py, 100 ms, where batches fill up), drained by the engine's public
``deliveries_drain`` in this process after a warm-up drain (caches, imports, keep-alive connections).

Per delivery it reports: CPU of this process (time.process_time: the drain's thread and the sender pool's
event loop), CPU of the drain's thread alone (time.thread_time), CPU of the PostgreSQL backend serving
the connection (/proc), statements (counted by an execute wrapper, with a breakdown by kind) and
transactions (pg_stat_database of the bench database, which nothing else uses). With --profile, one more
run is made under cProfile (the drain's thread, wall-clock: psycopg's wait and the queue's get are waits
for PostgreSQL and the sender pool, not CPU; a CPU timer would cost a system call per call and distort the
profile more; that run's figures are not reported) and the top frames by own time are printed and the
profile written to FILE (read it with pstats).
The database (default bench_profile_store) is dropped and created again; wake-ups go to an in-memory broker.
"""
import argparse
import collections
import cProfile
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

CHUNK = 500  # deliveries enqueued per transaction
WARM_UP = 300  # deliveries drained before measuring
TICKS = os.sysconf("SC_CLK_TCK")


def seed_webhooks(url: str) -> tuple[list, list]:
    """Three webhooks of the demo organization and the deals they are sent for."""
    from crm.models import Record
    from dispatcher.models import AuthType, ContentType, Webhook
    from tests.factories import webhook_create

    plain, deal = common.bench_webhook(url)
    entity = [(f"f{i}", f"${{Deals.{label}}}") for i, label in enumerate(common.FIELDS)]
    secret = webhook_create(module=plain.module, name="Bench secrets", url=url, entity=entity,
                            auth_type=AuthType.BASIC, auth_username="bench", auth_password="pa ss/wörd&1",
                            custom=[("api_key", "k-3f9a7c1e5b")], headers=[("X-Api-Token", "tok_0a1b2c3d4e", True)])
    form = webhook_create(module=plain.module, name="Bench form", url=url, entity=entity[:6],
                          content_type=ContentType.FORM)
    hooks = list(Webhook.objects.select_related("organization__edition", "module")
                 .filter(pk__in=[plain.pk, secret.pk, form.pk]).order_by("pk"))
    deals = list(Record.objects.select_related("module", "owner").filter(module=deal.module).order_by("pk")[:5])
    return hooks, deals


def enqueue(hooks: list, deals: list, n: int) -> None:
    from django.db import transaction

    from dispatcher.delivery import Enqueue, deliveries_enqueue

    items = [Enqueue(hooks[i % len(hooks)], deals[i % len(deals)]) for i in range(n)]
    for offset in range(0, n, CHUNK):
        with transaction.atomic():
            deliveries_enqueue(items[offset:offset + CHUNK])


class Statements:
    """Every statement the connection executes, counted by kind (verb and table)."""

    TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)

    def __init__(self) -> None:
        self.kinds: collections.Counter[str] = collections.Counter()
        self.by_text: dict[str, str] = {}

    def __call__(self, execute, sql, params, many, context):
        kind = self.by_text.get(sql)
        if kind is None:
            verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
            table = self.TABLE.search(sql)
            kind = self.by_text[sql] = f"{verb} {table.group(1) if table else ''}".strip()
        self.kinds[kind] += 1
        return execute(sql, params, many, context)


def backend_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def transactions_committed() -> int:
    """Transactions of the bench database so far (this backend's pending counts flushed first)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:  # a transaction of its own: the flush happened when the backend went idle
        cursor.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def measure(hooks: list, deals: list, n: int, batch: int) -> dict:
    """Enqueue n deliveries, drain them, and return what the drain cost."""
    from django.db import connection

    from dispatcher.delivery import deliveries_drain
    from dispatcher.models import Delivery

    enqueue(hooks, deals, n)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    base = transactions_committed()
    calibration = transactions_committed() - base  # what transactions_committed itself adds
    statements = Statements()
    first_done = Delivery.objects.filter(status="success").count()
    transactions_before = transactions_committed()
    pg_before, process_before, thread_before = backend_cpu_seconds(backend), time.process_time(), time.thread_time()
    wall_before = time.perf_counter()
    with connection.execute_wrapper(statements):
        attempted = deliveries_drain(batch=batch, budget_seconds=600)
    wall = time.perf_counter() - wall_before
    thread, process = time.thread_time() - thread_before, time.process_time() - process_before
    pg = backend_cpu_seconds(backend) - pg_before
    transactions = transactions_committed() - transactions_before - calibration
    succeeded = Delivery.objects.filter(status="success").count() - first_done
    if succeeded != n:
        raise SystemExit(f"{succeeded} of {n} deliveries succeeded (attempted {attempted}): the harness is broken")
    return {"n": n, "wall_s": wall, "process_ms": 1000 * process / n, "thread_ms": 1000 * thread / n,
            "postgres_ms": 1000 * pg / n, "total_ms": 1000 * (process + pg) / n,
            "statements": sum(statements.kinds.values()) / n, "transactions": transactions / n,
            "kinds": {kind: count / n for kind, count in statements.kinds.most_common()},
            "batch": n / max(statements.kinds.get("INSERT dispatcher_attempt", 0), 1)}


def profile(hooks: list, deals: list, n: int, batch: int, path: Path, top: int) -> None:
    from dispatcher.delivery import deliveries_drain

    enqueue(hooks, deals, n)
    profiler = cProfile.Profile()
    profiler.enable()
    deliveries_drain(batch=batch, budget_seconds=600)
    profiler.disable()
    profiler.dump_stats(path)
    print(f"\ncProfile of the drain's thread ({n} deliveries), top {top} by own time; written to {path}")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="deliveries per run (default 2000; --quick 500)")
    parser.add_argument("--receiver", choices=["fast", "slow"], default="fast",
                        help="fast: nginx answering at once; slow: the 100 ms asyncio receiver (full batches)")
    parser.add_argument("--repeat", type=int, default=None, help="measured runs (default 3; --quick 1); medians")
    parser.add_argument("--batch", type=int, default=100, help="claim size (WEBHOOK_DRAIN_BATCH's default: 100)")
    parser.add_argument("--profile", type=Path, help="one more run under cProfile, written to this file")
    parser.add_argument("--top", type=int, default=30, help="frames of the profile printed")
    parser.add_argument("--database", default="bench_profile_store", help="PostgreSQL database (dropped, created)")
    args = parser.parse_args()
    n, repeat = args.n or (500 if args.quick else 2000), args.repeat or (1 if args.quick else 3)

    os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")  # wake-ups are not what this measures
    common.postgres_environment(args.database)
    common.django_ready()
    if args.receiver == "slow":
        from bench.slow_receiver import SlowReceiver

        receiver = SlowReceiver()
        label = "asyncio, 100 ms"
    else:
        receiver = common.Receiver()
        label = receiver.label
    try:
        hooks, deals = seed_webhooks(receiver.url("/hook"))
        from dispatcher.delivery import deliveries_drain

        enqueue(hooks, deals, WARM_UP)
        deliveries_drain(batch=args.batch, budget_seconds=600)
        runs = [measure(hooks, deals, n, args.batch) for _ in range(repeat)]
        if args.profile:
            profile(hooks, deals, n, args.batch, args.profile, args.top)
    finally:
        receiver.stop()

    def median(key: str) -> float:
        return statistics.median(run[key] for run in runs)

    rows = [
        common.row("CPU per delivery: worker process + PostgreSQL backend", median("total_ms"), "ms", target="<= 1.0",
                   passed=median("total_ms") <= 1.0),
        common.row("CPU per delivery: worker process (drain + sender pool)", median("process_ms"), "ms"),
        common.row("CPU per delivery: the drain's thread (owns the connection)", median("thread_ms"), "ms"),
        common.row("CPU per delivery: PostgreSQL backend", median("postgres_ms"), "ms"),
        common.row("statements per delivery", median("statements"), "stmts"),
        common.row("transactions per delivery", median("transactions"), "xacts"),
        common.row("deliveries per stored batch (attempt inserts)", median("batch"), "deliv"),
        common.row("wall time per run", median("wall_s"), "s"),
    ]
    common.report(rows, args.json, header=f"{n} deliveries x {repeat} runs, receiver: {label}; medians")
    print("\nstatements per delivery by kind (last run):")
    for kind, count in runs[-1]["kinds"].items():
        print(f"  {count:8.3f}  {kind}")


if __name__ == "__main__":
    main()
