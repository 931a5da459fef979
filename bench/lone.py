"""What one delivery on its own costs the engine (issue 27: "a few statements per batch, not twenty per
delivery"): a worker started as the Procfile runs it (`celery worker`, 2 pool processes, on PostgreSQL and
Redis) is warmed up and left idle; then ONE delivery at a time is enqueued the product's way
(delivery_enqueue in its own transaction, as the API writes an event) to nginx, and the statements and
transactions the worker's processes execute for it are counted, from the enqueue until the worker has been
quiet for QUIET_SECONDS after the delivery's Success (its follow-ups included).

    .venv/bin/python bench/lone.py [--n 20] [--warm 10] [--quick] [--json FILE] [--against REV]

The worker runs through bench/metered_worker.py, which counts every statement its processes send through
psycopg (a transaction: a statement sent while its connection had none open) and lists them, so the
product has no hook for this. Statements a worker runs while idle (a loop that polls) are measured over
the settle window before the lone deliveries and subtracted, at that rate, from each lone delivery's
window (the row's note gives both). The rows are medians over --n lone deliveries; the median one's
statements are listed in the first row ("sql_statements") and printed. The first row also has the cost
fields of bench/cost.py over the --n deliveries, and the third row the transactions PostgreSQL counted
(pg_stat_database) per lone delivery: more than the worker sends when it opens a connection (its start-up
is a transaction) or listens for wake-ups (each NOTIFY is read in a transaction by every listener).
--against REV runs the same on REV's code and reports both. The database (webhooks_lone) is dropped and
created again.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, cost
from bench.metered_worker import read_counts

QUIET_SECONDS = 0.5  # the worker sent no statement for this long after the Success: it is done with the delivery
LINGER_SECONDS = 3.0  # but at most this long after the Success (a loop that polls while idle is never quiet)
POLL_SECONDS = 0.01


def worker_totals(workers: "common.Workers") -> tuple[int, int]:
    counts = read_counts(workers.meter_dir)
    return sum(s for s, _ in counts.values()), sum(t for _, t in counts.values())


def logged(log: Path, offset: int, since: float) -> list[dict]:
    """The statements logged after offset: ms since the enqueue, process, whether it began a transaction."""
    lines = []
    with open(log, "rb") as handle:
        handle.seek(offset)
        for line in handle.read().decode(errors="replace").splitlines():
            at, pid, begins, sql = line.split("\t", 3)
            lines.append({"ms": round((float(at) - since) * 1000, 1), "pid": int(pid), "begins_transaction": begins == "T",
                          "sql": sql[:400]})
    return lines


def lone(hook, deal, workers: "common.Workers", log: Path) -> dict:
    """Enqueue one delivery in its own transaction; what the worker ran for it, until it was quiet."""
    from django.db import transaction

    from dispatcher import delivery as delivery_engine
    from dispatcher.models import Delivery

    before, offset = worker_totals(workers), log.stat().st_size
    enqueued = time.time()
    with transaction.atomic():
        pk = delivery_engine.delivery_enqueue(webhook=hook, record=deal).pk
    succeeded, success_ms = None, 0.0
    totals, changed = before, time.monotonic()
    deadline = changed + 60
    while True:
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        if (current := worker_totals(workers)) != totals:
            totals, changed = current, now
        if succeeded is None and Delivery.objects.filter(pk=pk, status="success").exists():
            succeeded = now
            success_ms = (time.time() - enqueued) * 1000
        if succeeded is not None and (now - changed >= QUIET_SECONDS or now - succeeded >= LINGER_SECONDS):
            break
        if succeeded is None and now > deadline:
            raise RuntimeError(f"delivery {pk} did not succeed within a minute")
    return {"statements": totals[0] - before[0], "transactions": totals[1] - before[1],
            "window": time.time() - enqueued, "success_ms": success_ms, "lines": logged(log, offset, enqueued)}


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    cost.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="lone deliveries measured (default 20; --quick 5)")
    parser.add_argument("--warm", type=int, default=None, help="lone deliveries first, not measured (default 10; "
                                                               "--quick 4): caches, connections, both pool processes")
    args = parser.parse_args()
    if args.against:
        return cost.against(__file__, sys.argv[1:], args.against, args.json)
    cost.use_code_dir(args.code_dir)
    n, warm = args.n or (5 if args.quick else 20), args.warm or (4 if args.quick else 10)
    common.postgres_environment("webhooks_lone")
    common.django_ready()

    receiver = common.Receiver()
    hook, deal = common.bench_webhook(receiver.url())
    # As the API has them: the webhook with its organization and edition, the record with its module.
    hook = type(hook).objects.select_related("organization__edition", "module").get(pk=hook.pk)
    deal = type(deal).objects.select_related("module").get(pk=deal.pk)
    log = Path(tempfile.mkdtemp(prefix="bench-lone-")) / "statements.log"
    log.touch()
    workers = common.Workers(count=1, concurrency=int(os.environ.get("WORKER_CONCURRENCY", 2)), tag="lone",
                             metered=True, sql_log=log)
    try:
        for _ in range(warm):
            lone(hook, deal, workers, log)
        idle_from, (idle_statements, idle_transactions) = time.monotonic(), worker_totals(workers)
        meter = cost.Meter(workers)
        meter.start()  # waits STATS_SETTLE_SECONDS with the worker idle: the idle rate is measured meanwhile
        idle_seconds = time.monotonic() - idle_from
        statements, transactions = worker_totals(workers)
        idle_statements, idle_transactions = statements - idle_statements, transactions - idle_transactions
        samples = [lone(hook, deal, workers, log) for _ in range(n)]
        meter.stop()
        run_cost = meter.result(deliveries=n)
    finally:
        workers.stop()
        receiver.stop()
        shutil.rmtree(log.parent, ignore_errors=True)
    rows = report(samples, run_cost, idle_statements / idle_seconds, idle_transactions / idle_seconds)
    common.report(rows, args.json, header=f"receiver: {receiver.label}; {n} lone deliveries after {warm} not measured; "
                                          f"{os.cpu_count()} cores")
    print(f"\nthe statements of the median lone delivery ({rows[0]['value']:.0f}), ms from its enqueue:")
    for line in rows[0]["sql_statements"]:
        print(f"  {line['ms']:8.1f} {line['pid']:>7} {'T' if line['begins_transaction'] else ' '} {line['sql'][:150]}")
    return None


def report(samples: list[dict], run_cost: dict, idle_statements: float, idle_transactions: float) -> list[dict]:
    """The rows: statements and transactions per lone delivery (medians, the idle rate subtracted)."""
    for sample in samples:
        sample["net_statements"] = sample["statements"] - idle_statements * sample["window"]
        sample["net_transactions"] = sample["transactions"] - idle_transactions * sample["window"]
    median = sorted(samples, key=lambda sample: sample["net_statements"])[len(samples) // 2]
    window = statistics.median(sample["window"] for sample in samples) * 1000
    note = (f"median of {len(samples)}; raw {statistics.median(s['statements'] for s in samples):.0f} in a window of "
            f"{window:.0f} ms (enqueue to quiet); idle worker {idle_statements:.2f} statements/s; enqueue→Success "
            f"{statistics.median(s['success_ms'] for s in samples):.1f} ms")
    first = cost.metered(common.row("lone delivery: statements the worker runs for it", median["net_statements"],
                                    "stmts", target="<= 6", passed=median["net_statements"] <= 6, note=note), run_cost)
    first["sql_statements"] = median["lines"]
    return [
        first,
        common.row("lone delivery: transactions the worker runs for it",
                   statistics.median(sample["net_transactions"] for sample in samples), "xacts",
                   note=f"idle worker {idle_transactions:.2f} transactions/s"),
        common.row("lone delivery: transactions PostgreSQL counted per lone delivery",
                   run_cost["transactions_per_delivery"], "xacts",
                   note="pg_stat_database of the bench database, the benchmark's own transactions taken out"),
    ]


if __name__ == "__main__":
    main()
