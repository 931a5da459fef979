"""End-to-end delivery throughput against a single-threaded requests loop measured in the same run (issue 7, item 1).

    .venv/bin/python bench/throughput.py [--n 20000] [--workers 1] [--concurrency 4] [--batch 50 20]
                                         [--repeat 3] [--quick] [--json FILE] [--against REV]

N deliveries of a signed 10-field JSON webhook, from the enqueue (committed in chunks of 500, as events
arrive) to the last stored Success attempt, through real Celery worker processes, Redis and PostgreSQL
(database webhooks_bench, recreated): rendering, signing, quota, attempt rows and all. Baseline: one
requests.Session in one thread sending the same pre-rendered requests to the same nginx receiver.
Also: the same loop with http.client, and the embedded default (SQLite, file-system broker). The
dispatcher runs with WEBHOOK_DRAIN_BATCH 100 (the default) and 50, three times each; the ratio is the median
of the runs, each against the requests loop measured again beside it (the machine's speed drifts).
Each dispatcher row also has the cost of its run per delivery (bench/cost.py: worker and PostgreSQL CPU,
transactions, statements, rows written, HOT updates), from the enqueue of the first chunk to the last
Success; --against REV runs the same on REV's code and reports both with ratios.
"""
import argparse
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, cost

CHUNK = 500


def dispatch(hook, deal, n: int, workers: "common.Workers") -> tuple[float, float, dict | None]:
    """Enqueue n deliveries in committed chunks; returns (enqueue→success, commit of the last chunk→success)
    rates and, with metered workers, the cost of the run from the first enqueue to the last Success."""
    from django.db import transaction

    from dispatcher import delivery as delivery_engine
    from dispatcher.models import Delivery

    first = Delivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    meter = cost.Meter(workers) if workers.meter_dir else None
    if meter:
        meter.start()
    started = time.perf_counter()
    for offset in range(0, n, CHUNK):
        with transaction.atomic():
            delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(min(CHUNK, n - offset))])
    committed = time.perf_counter()
    done = Delivery.objects.filter(pk__gt=first, status="success")
    while done.count() < n:
        time.sleep(0.05)
    finished = time.perf_counter()
    if meter is None:
        return n / (finished - started), n / (finished - committed), None
    meter.stop()
    return n / (finished - started), n / (finished - committed), meter.result(deliveries=n)


def embedded(args) -> None:
    """The embedded default in its own process: SQLite and the file-system broker."""
    folder = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    os.environ.update({"DATABASE_URL": f"sqlite:///{folder}/db.sqlite3", "CELERY_BROKER_URL": "filesystem://",
                       "WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_ALLOWED_PORTS": "*", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "config.settings"})
    common.django_ready()
    hook, deal = common.bench_webhook(f"http://127.0.0.1:{args.port}/hook")
    workers = common.Workers(count=1, concurrency=2, tag="embedded", beat=True)  # as the Procfile runs it
    try:
        rate, _, _ = dispatch(hook, deal, args.n, workers)
    finally:
        workers.stop()
    print(json.dumps({"rate": rate}))


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    cost.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="deliveries (default 20000; --quick 1000)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (celery worker commands)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[2],
                        help="pool size(s) per worker (default 2, the Procfile's WORKER_CONCURRENCY)")
    parser.add_argument("--batch", type=int, nargs="+", default=[100, 50],
                        help="WEBHOOK_DRAIN_BATCH value(s) to run with (default: 100, the default, and 50)")
    parser.add_argument("--repeat", type=int, default=None, help="runs of each configuration (default 3; --quick 1)")
    parser.add_argument("--embedded", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    n = args.n or (1000 if args.quick else 20_000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    if args.embedded:
        args.n = n
        cost.use_code_dir(args.code_dir)
        return embedded(args)
    if args.against:
        return cost.against(__file__, sys.argv[1:], args.against, args.json)
    cost.use_code_dir(args.code_dir)
    common.postgres_environment("webhooks_bench")
    common.django_ready()
    import requests
    from celery import current_app
    from django.conf import settings

    from dispatcher.rendering.request import webhook_render_request

    receiver = common.Receiver()
    hook, deal = common.bench_webhook(receiver.url())
    prepared = [webhook_render_request(webhook=hook, record=deal, message_id=f"msg_{i}") for i in range(n)]

    session = requests.Session()

    def requests_loop() -> float:
        started = time.perf_counter()
        for request in prepared:
            _ = session.request(request.method, request.url, headers=request.headers, data=request.body).content
        return n / (time.perf_counter() - started)

    connection = http.client.HTTPConnection("127.0.0.1", receiver.port)
    started = time.perf_counter()
    for request in prepared:
        connection.request(request.method, "/hook", body=request.body, headers=request.headers)
        connection.getresponse().read()
    raw = n / (time.perf_counter() - started)
    baselines, dispatched = [requests_loop()], []
    for concurrency, batch in itertools.product(args.concurrency, args.batch):
        runs = []
        for _ in range(args.repeat):
            with current_app.connection_for_write() as broker:
                broker.default_channel.queue_purge("deliveries")
            workers = common.Workers(count=args.workers, concurrency=concurrency,
                                     env={**os.environ, "WEBHOOK_DRAIN_BATCH": str(batch)}, metered=True)
            try:
                enqueue_rate, commit_rate, run_cost = dispatch(hook, deal, n, workers)
            finally:
                workers.stop()
            baselines.append(requests_loop())  # measured again beside each run: the machine's speed drifts
            runs.append((enqueue_rate / baselines[-1], enqueue_rate, commit_rate, run_cost))
        median = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
        dispatched.append((f"{args.workers}x{concurrency} proc, batch {batch}", batch, median))
    baseline = statistics.median(baselines)
    rows = [
        common.row("throughput: baseline, requests.Session loop, 1 thread", baseline, "deliv/s", baseline,
                   note=f"median of {len(baselines)} loops, one beside each dispatcher run"),
        common.row("throughput: reference, http.client loop, 1 thread", raw, "deliv/s", baseline),
    ]
    default = settings.WEBHOOK_DRAIN_BATCH
    for label, batch, (ratio, enqueue_rate, commit_rate, run_cost) in dispatched:
        rows.append(cost.metered(common.row(
            f"throughput: dispatcher {label}, enqueue→Success", enqueue_rate, "deliv/s", baseline, ratio=ratio,
            target=">= 1.0x" if batch == default else "", passed=ratio >= 1.0 if batch == default else None,
            note=f"the median of {args.repeat} runs, each against the loop measured beside it; its cost"
            if args.repeat > 1 else ""), run_cost))
        rows.append(common.row(f"throughput: dispatcher {label}, last commit→Success", commit_rate, "deliv/s",
                               baseline))
    small = max(n // 10, 200)
    result = subprocess.run([sys.executable, __file__, "--embedded", "--n", str(small), "--port", str(receiver.port),
                             *(["--code-dir", str(args.code_dir)] if args.code_dir else [])],
                            capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                  if k not in ("DATABASE_URL", "CELERY_BROKER_URL")})
    receiver.stop()
    try:
        embedded_rate = json.loads(result.stdout.strip().splitlines()[-1])["rate"]
        rows.append(common.row(f"throughput: embedded default (SQLite, file broker), N={small}", embedded_rate,
                               "deliv/s", baseline))
    except (IndexError, ValueError, KeyError):
        print(result.stdout[-2000:], result.stderr[-2000:], file=sys.stderr)
    common.report(rows, args.json, header=f"receiver: {receiver.label}; N = {n}; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
