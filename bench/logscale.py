"""Scale of the log (issue 7, item 5): the dispatch rate and the admin log page (filtered by webhook and
status) with a large table of finished deliveries, against the same with a small one, in the same run.

    .venv/bin/python bench/logscale.py [--rows 1000000] [--quick] [--json FILE]

PostgreSQL (database webhooks_logscale, recreated). Finished deliveries are inserted with SQL
(generate_series), with one attempt each, and the table analysed, as a real log would be.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

SMALL = 1_000


def fill(hook, deal, upto: int) -> None:
    """Grow the log to `upto` finished deliveries (Success, spread over the last 90 days), with their attempts."""
    from django.db import connection

    from dispatcher.models import Delivery, RetryPolicy

    have = Delivery.objects.count()
    if upto <= have:
        return
    with connection.cursor() as cursor:
        cursor.execute("""
            INSERT INTO dispatcher_delivery (public_id, organization_id, webhook_id, webhook_name, record_id, record_ref,
                source, trigger, retry_policy_id, status, status_reason, attempt_count, cycle_start, resent_by,
                request_sealed, request_display, last_status_code, last_error_class, last_duration_ms, created_at,
                finished_at, ordering_key)
            SELECT gen_random_uuid(), %s, %s, %s, %s, %s, 'workflow', 'Bench rule (Deals create)', %s,
                CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'success' END, '', 1, 0, '', '',
                'POST http://127.0.0.1/hook', 200, '', 3,
                now() - (g %% 7776000) * interval '1 second', now() - (g %% 7776000) * interval '1 second', ''
            FROM generate_series(%s, %s) AS g""",
            [hook.organization_id, hook.pk, hook.name, deal.pk, f"Deals #{deal.pk}", RetryPolicy.default_id(),
             have + 1, upto])
        cursor.execute("""
            INSERT INTO dispatcher_attempt (delivery_id, number, started_at, duration_ms, status_code, error_class,
                error_message, response_headers, response_body, response_truncated, captured, outcome, cleaned)
            SELECT d.id, 1, d.created_at, 3, 200, '', '', '{}', '{"ok": true}', false, '{}', d.status, ''
            FROM dispatcher_delivery d LEFT JOIN dispatcher_attempt a ON a.delivery_id = d.id WHERE a.id IS NULL""")
        cursor.execute("ANALYZE dispatcher_delivery; ANALYZE dispatcher_attempt")


def dispatch_rate(hook, deal, n: int) -> float:
    """Deliveries per second through the delivery engine in this process (claim, render, sign, send, record)."""
    from django.db import transaction

    from dispatcher import delivery as delivery_engine

    with transaction.atomic():
        delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(n)])
    started = time.perf_counter()
    done = delivery_engine.deliveries_drain(batch=20, budget_seconds=600)
    return done / (time.perf_counter() - started)


def page_ms(client, hook, repeat: int) -> float:
    url = f"/admin/dispatcher/delivery/?webhook__id__exact={hook.pk}&status__exact=success"
    client.get(url)  # warm caches
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    parser.add_argument("--rows", type=int, default=None, help="large log size (default 1000000; --quick 100000)")
    args = parser.parse_args()
    rows_large = args.rows or (100_000 if args.quick else 1_000_000)
    n = 300 if args.quick else 1000
    common.postgres_environment("webhooks_logscale")
    common.django_ready()
    from django.contrib.auth.models import User
    from django.test import Client

    receiver = common.Receiver()
    hook, deal = common.bench_webhook(receiver.url())
    User.objects.create_superuser("bench", "bench@example.com", "bench")
    client = Client(SERVER_NAME="localhost")
    client.force_login(User.objects.get(username="bench"))

    fill(hook, deal, SMALL)
    small_rate, small_page = dispatch_rate(hook, deal, n), page_ms(client, hook, 15)
    fill(hook, deal, rows_large)
    large_rate, large_page = dispatch_rate(hook, deal, n), page_ms(client, hook, 15)
    receiver.stop()
    label = f"{rows_large:,}"
    rows = [
        common.row(f"log scale: dispatch rate, {SMALL:,} rows (baseline)", small_rate, "deliv/s", small_rate),
        common.row(f"log scale: dispatch rate, {label} rows", large_rate, "deliv/s", small_rate,
                   ratio=small_rate / large_rate, target="<= 1.25x", passed=small_rate / large_rate <= 1.25,
                   note="ratio: time per delivery, large log / small log"),
        common.row(f"log scale: admin log page, {SMALL:,} rows (baseline)", small_page, "ms", small_page),
        common.row(f"log scale: admin log page, {label} rows", large_page, "ms", small_page, target="<= 1.25x",
                   passed=large_page / small_page <= 1.25, note="filtered by webhook and status; median of 15"),
    ]
    common.report(rows, args.json, header=f"receiver: {receiver.label}; single process, batch 20")


if __name__ == "__main__":
    main()
