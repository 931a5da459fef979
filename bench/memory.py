"""Worker memory (issue 7, item 6): RSS of the worker's pool processes over many deliveries, and the peak
RSS while one delivery receives a 100 MB answer (the client reads WEBHOOK_MAX_RESPONSE_BYTES of it).

    .venv/bin/python bench/memory.py [--n 100000] [--quick] [--json FILE]

PostgreSQL (database webhooks_memory, recreated), Redis, a real `celery worker` with 2 pool processes,
nginx answering a small JSON body (and a 100 MB file on /big). Baseline: RSS after a warm-up of 1,000.
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

WARM_UP = 1_000
BIG = 100 * 1024 * 1024


def deliver(hook, deal, n: int) -> None:
    from django.db import transaction

    from dispatcher import delivery as delivery_engine
    from dispatcher.models import Delivery

    first = Delivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    for offset in range(0, n, 1000):
        with transaction.atomic():
            delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(min(1000, n - offset))])
    ended = Delivery.objects.filter(pk__gt=first, status__in=["success", "failed"])
    while ended.count() < n:
        time.sleep(0.2)


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="deliveries (default 100000; --quick 5000)")
    args = parser.parse_args()
    n = args.n or (5_000 if args.quick else 100_000)
    common.postgres_environment("webhooks_memory")
    common.django_ready()
    from django.conf import settings

    from tests.factories import webhook_create

    receiver = common.Receiver(big_body_bytes=BIG)
    hook, deal = common.bench_webhook(receiver.url())
    big = webhook_create(module=hook.module, name="Bench big", url=receiver.url("/big"), method="GET")
    workers = common.Workers(count=1, concurrency=2, tag="memory")
    try:
        deliver(hook, deal, WARM_UP)
        pids = workers.pids()
        before = {pid: common.rss_mb(pid) for pid in pids}
        deliver(hook, deal, n)
        after = {pid: common.rss_mb(pid) for pid in pids if Path(f"/proc/{pid}").exists()}
        growth = max(after[pid] - before[pid] for pid in after)
        rss_before_big = {pid: common.rss_mb(pid) for pid in after}
        deliver(big, deal, 1)
        big_growth = max(peak_mb(pid) - rss_before_big[pid] for pid in after)
    finally:
        workers.stop()
        receiver.stop()
    cap_mb = settings.WEBHOOK_MAX_RESPONSE_BYTES / 1024 / 1024
    baseline = max(before.values())
    rows = [
        common.row(f"memory: pool process RSS after {WARM_UP:,} deliveries (baseline)", baseline, "MB", baseline),
        common.row(f"memory: RSS growth over {n:,} more deliveries", growth, "MB",
                   target="< 50 MB", passed=growth < 50, note=f"largest growth of the {len(after)} pool processes"),
        common.row("memory: peak RSS rise for a 100 MB answer", big_growth, "MB",
                   target=f"<= {cap_mb + 10:g} MB", passed=big_growth <= cap_mb + 10,
                   note=f"cap WEBHOOK_MAX_RESPONSE_BYTES = {cap_mb:g} MB; VmHWM minus RSS before"),
    ]
    common.report(rows, args.json, header=f"receiver: {receiver.label}")


if __name__ == "__main__":
    main()
