"""The delivery engine against realistic receivers: one that answers 200 after 100 ms and can hold hundreds
of connections (an asyncio server, started and stopped here, in its own process), and one that never
answers. Baseline: an asyncio HTTP client with 200 requests in flight against the same receiver, measured
in the same run (what the machine allows).

    .venv/bin/python bench/slow_receiver.py [--n 3000] [--quick] [--json FILE] [--against REV]

Rows (targets from issue 15):
- 100 ms receiver: dispatcher, one worker with default settings (the Procfile's), enqueue→Success:
  >= 0.5x the async baseline;
- hanging receiver: 10% of deliveries go to a receiver that never answers, the rest to the 100 ms one; the
  fast deliveries' throughput >= 0.8x the run without the hanging receiver;
- fairness: one organization enqueues 20,000 deliveries while another enqueues one delivery a second;
  the second organization's p99 enqueue→Success < 2 s;
- one event per transaction: the per-event enqueue cost <= 2x a bare INSERT + COMMIT of the same row (both
  with no worker running, as issue 15 measured them: "the enqueue path manages ... alone"), and with a
  worker running, enqueue→Success within 10% of the enqueue rate.

Two rows say what bounds the first: the ceiling the defaults set against one receiver (processes x
WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION requests in flight / the answer time), and the same run with that
limit raised to a process's 100 (new worker processes, before the other scenarios leave work behind).

The 100 ms and hanging rows also have their cost per delivery (bench/cost.py; the hanging row's per fast
delivery, with what the hanging ones cost until the last fast one succeeded); --against REV runs the
same on REV's code and reports both with ratios.
"""
import argparse
import asyncio
import datetime
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, cost

DELAY = 0.1  # seconds the realistic receiver takes to answer
PROCESSES = int(os.environ.get("WORKER_CONCURRENCY", 2))  # the Procfile's worker processes
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n" + common.BODY


# --- the receiver (its own process) -------------------------------------------------------------------
async def _serve(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if length:
                    await reader.readexactly(length)
                if b" /hang" in head.split(b"\r\n", 1)[0]:
                    await asyncio.sleep(3600)  # never answers: the sender's timeout ends it
                await asyncio.sleep(DELAY)
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


class SlowReceiver:
    def __init__(self) -> None:
        self.port = common.free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port)])
        common.wait_port(self.port)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


# --- the baseline: an asyncio client, 200 requests in flight (its own process) -------------------------
async def _client(port: int, n: int, in_flight: int, body: bytes) -> float:
    request = (f"POST /hook HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    left = n

    async def one_connection() -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while left > 0:
            left -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(in_flight)))
    return n / (time.perf_counter() - started)


def async_baseline(port: int, n: int, body: bytes) -> float:
    result = subprocess.run([sys.executable, __file__, "--client", str(port), str(n), "200"], input=body,
                            capture_output=True, check=True)
    return float(result.stdout)


# --- the dispatcher ------------------------------------------------------------------------------------
def wait_success(ids: list[int], timeout: float = 900) -> float:
    from dispatcher.models import Delivery

    deadline = time.monotonic() + timeout
    rows = Delivery.objects.filter(pk__in=ids, status="success")
    while rows.count() < len(ids):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {rows.count()} of {len(ids)} succeeded in {timeout} s")
        time.sleep(0.05)
    return time.perf_counter()


def enqueue_chunks(items, chunk: int = 500) -> list[int]:
    from django.db import transaction

    from dispatcher import delivery as delivery_engine

    ids: list[int] = []
    for offset in range(0, len(items), chunk):
        with transaction.atomic():
            ids += [d.pk for d in delivery_engine.deliveries_enqueue(items[offset:offset + chunk])]
    return ids


def run_fast(hook, deal, n: int) -> float:
    """Enqueue→Success rate of n deliveries to the 100 ms receiver, one worker with default settings."""
    from dispatcher import delivery as delivery_engine

    started = time.perf_counter()
    ids = enqueue_chunks([delivery_engine.Enqueue(hook, deal) for _ in range(n)])
    return n / (wait_success(ids) - started)


def run_with_hanging(hook, hanging_hook, deal, n: int) -> tuple[float, int]:
    """The same, with every tenth delivery to a receiver that never answers: the fast ones' rate and number."""
    from dispatcher import delivery as delivery_engine

    items = [delivery_engine.Enqueue(hanging_hook if i % 10 == 9 else hook, deal) for i in range(n)]
    started = time.perf_counter()
    ids = enqueue_chunks(items)
    fast = [pk for pk, item in zip(ids, items, strict=True) if item.webhook is hook]
    return len(fast) / (wait_success(fast) - started), len(fast)


def second_organization(url: str):
    from crm import services as crm_services
    from crm.models import CrmUser, Edition
    from tests.factories import webhook_create

    organization = crm_services.organization_create(
        name="Second Org", edition=Edition.objects.get(code="enterprise"), user_licences=10,
        time_zone="Europe/Amsterdam", currency_code="EUR")
    owner = CrmUser.objects.create(organization=organization, last_name="Second", email="second@example.com")
    deals = organization.modules.get(api_name="Deals")
    deal = crm_services.record_create(module=deals, owner=owner, values={"Deal_Name": "Small"})
    return webhook_create(module=deals, name="Small org", url=url, entity=[("deal", "${Deals.Deal Name}")]), deal


def run_fairness(hook, deal, small_hook, small_deal, n: int) -> tuple[list[float], float]:
    """n deliveries of one organization enqueued at once; the other enqueues one a second meanwhile.
    Returns the second organization's enqueue→Success times (s) and the first's rate."""
    from dispatcher import delivery as delivery_engine
    from dispatcher.models import Delivery

    small_ids: list[int] = []
    stop = threading.Event()

    def one_a_second() -> None:
        from django.db import connection

        try:
            while True:  # the first at once: a short run (--quick) still measures one
                small_ids.append(delivery_engine.delivery_enqueue(webhook=small_hook, record=small_deal).pk)
                if stop.wait(1.0):
                    break
        finally:
            connection.close()

    trickle = threading.Thread(target=one_a_second)
    started = time.perf_counter()
    trickle.start()
    big = enqueue_chunks([delivery_engine.Enqueue(hook, deal) for _ in range(n)])
    finished = wait_success(big)
    stop.set()
    trickle.join()
    wait_success(small_ids)
    times = [(d.finished_at - d.created_at).total_seconds() for d in Delivery.objects.filter(pk__in=small_ids)]
    return times, n / (finished - started)


def run_enqueue_cost(hook, deal, n: int) -> tuple[float, float, float]:
    """The per-event enqueue cost alone, as issue 15 measured it (no worker running, so that neither side shares
    the cores with one): the rate of n deliveries each enqueued in its own transaction (as the API writes
    them), of a bare INSERT + COMMIT of the same row (autocommit: one round trip), and of that INSERT in an
    explicit transaction (BEGIN, INSERT, COMMIT). The rows it wrote are deleted and the broker wake-ups
    purged, so the next run starts clean."""
    from celery import current_app
    from django.db import connection, transaction

    from dispatcher.models import Delivery

    ids, enqueue_rate = enqueue_one_per_transaction(hook, deal, n)
    # The same row, written as plainly as PostgreSQL allows: queued (the same indexes as an enqueue), due in a
    # hundred years so that no worker would take it before it is deleted below.
    template = Delivery.objects.get(pk=ids[0])
    template.due_at = template.created_at + datetime.timedelta(days=36525)
    fields = [f for f in Delivery._meta.concrete_fields if f.column != "id"]
    columns = ", ".join(f.column for f in fields)
    sql = f"INSERT INTO dispatcher_delivery ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608 - column names from the model, values as parameters
    with connection.cursor() as cursor:
        started = time.perf_counter()
        for _ in range(n):
            template.public_id = uuid.uuid4()
            cursor.execute(sql, [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields])
        bare_rate = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(n):
            with transaction.atomic():
                template.public_id = uuid.uuid4()
                cursor.execute(sql, [f.get_db_prep_save(getattr(template, f.attname), connection) for f in fields])
        bare_in_transaction = n / (time.perf_counter() - started)
    Delivery.objects.filter(pk__gte=ids[0]).delete()  # the enqueued deliveries and the bare rows after them
    with current_app.connection_for_write() as broker:
        broker.default_channel.queue_purge("deliveries")
    return enqueue_rate, bare_rate, bare_in_transaction


def run_enqueue_to_success(hook, deal, n: int) -> tuple[float, float]:
    """With a worker running: the rate of n deliveries each enqueued in its own transaction, and enqueue→Success."""
    started = time.perf_counter()
    ids, enqueue_rate = enqueue_one_per_transaction(hook, deal, n)
    return enqueue_rate, n / (wait_success(ids) - started)


def enqueue_one_per_transaction(hook, deal, n: int) -> tuple[list[int], float]:
    """n deliveries, each enqueued in its own transaction as the API writes them: their ids, and the rate."""
    from django.db import transaction

    from dispatcher import delivery as delivery_engine

    # As the API has them: the webhook with its organization and edition, the record with its module.
    hook = type(hook).objects.select_related("organization__edition", "module").get(pk=hook.pk)
    deal = type(deal).objects.select_related("module").get(pk=deal.pk)
    ids = []
    started = time.perf_counter()
    for _ in range(n):
        with transaction.atomic():
            ids.append(delivery_engine.delivery_enqueue(webhook=hook, record=deal).pk)
    return ids, n / (time.perf_counter() - started)


def ceiling_row(fast: float, base: float) -> dict:
    """What the defaults allow at most against one receiver: each worker process keeps at most
    WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION requests in flight to one destination, each taking DELAY and a bit."""
    from django.conf import settings

    from dispatcher.models import Attempt

    durations = list(Attempt.objects.order_by("-pk").values_list("duration_ms", flat=True)[:1000])
    seconds = statistics.mean(durations) / 1000
    in_flight = PROCESSES * settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION
    ceiling = in_flight / seconds
    return common.row("100 ms receiver: ceiling of the defaults (requests in flight to one destination / answer "
                      "time)", ceiling, "deliv/s", base,
                      note=f"{PROCESSES} processes x WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION "
                           f"{settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION} = {in_flight} in flight, answers in "
                           f"{seconds * 1000:.0f} ms on average; the dispatcher reached {fast / ceiling:.0%} of it")


def uncapped_row(hook, deal, n: int, base: float) -> dict:
    """The same run with the per-destination limit as high as a process's (WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION
    = WEBHOOK_MAX_IN_FLIGHT, 100): what the engine does when the receiver's limit is not the bound."""
    env = {**os.environ, "WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION": "100"}
    workers = common.Workers(count=1, concurrency=PROCESSES, tag="uncapped",
                             beat=True, env=env)
    try:
        rate = run_fast(hook, deal, n)
    finally:
        workers.stop()
    return common.row(f"100 ms receiver: the same, WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION=100, N={n}", rate,
                      "deliv/s", base, note="not the defaults: shows what the per-destination limit costs here")


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    cost.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="deliveries per run (default 3000; --quick 1000)")
    parser.add_argument("--fair-n", type=int, default=None, help="the big organization's deliveries "
                                                                   "(default 20000; --quick 3000)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return asyncio.run(_serve(args.serve))
    if args.client:
        port, n, in_flight = args.client
        print(asyncio.run(_client(port, n, in_flight, sys.stdin.buffer.read())))
        return None
    if args.against:
        return cost.against(__file__, sys.argv[1:], args.against, args.json)
    cost.use_code_dir(args.code_dir)
    n = args.n or (1000 if args.quick else 3000)
    fair_n = args.fair_n or (3000 if args.quick else 20_000)
    common.postgres_environment("webhooks_slow")
    common.django_ready()
    from dispatcher.rendering.request import webhook_render_request
    from tests.factories import webhook_create

    receiver = SlowReceiver()
    hook, deal = common.bench_webhook(receiver.url("/hook"))
    hanging_hook = webhook_create(module=hook.module, name="Bench hanging", url=receiver.url("/hang"),
                                  entity=[(p.name, p.value) for p in hook.entity_parameters.all()])
    body = webhook_render_request(webhook=hook, record=deal, message_id="msg_bench").body
    rows = []
    workers = common.Workers(count=1, concurrency=PROCESSES, tag="slow",
                             beat=True, metered=True)
    try:
        baseline = async_baseline(receiver.port, n, body)
        meter = cost.Meter(workers)
        meter.start()
        fast = run_fast(hook, deal, n)
        meter.stop()
        fast_cost = meter.result(deliveries=n)
        baseline_after = async_baseline(receiver.port, n, body)
        base = statistics.mean([baseline, baseline_after])
        rows.append(common.row("100 ms receiver: baseline, asyncio client, 200 in flight", base, "deliv/s", base,
                               note=f"before and after the dispatcher run: {baseline:.0f} / {baseline_after:.0f}"))
        rows.append(cost.metered(common.row(
            f"100 ms receiver: dispatcher, 1 worker (defaults), N={n}, enqueue→Success", fast, "deliv/s", base,
            target=">= 0.5x", passed=fast / base >= 0.5), fast_cost))
        rows.append(common.row("100 ms receiver: CPU per delivery, worker + PostgreSQL", fast_cost["cpu_total_ms_per_delivery"],
                               "ms", None, target="<= 1.0 ms", passed=fast_cost["cpu_total_ms_per_delivery"] <= 1.0,
                               note=f"worker {fast_cost['cpu_worker_ms_per_delivery']:.2f} ms, PostgreSQL "
                                    f"{fast_cost['cpu_postgres_ms_per_delivery']:.2f} ms (bench/cost.py)"))
        rows.append(common.row("100 ms receiver: transactions per delivery (full batches)",
                               fast_cost["transactions_per_delivery"], "xacts", None, target="<= 0.1",
                               passed=fast_cost["transactions_per_delivery"] <= 0.1))
        rows.append(ceiling_row(fast, base))
        workers.stop()  # the same run with the limit lifted, on workers of its own, before anything is left over
        rows.append(uncapped_row(hook, deal, n, base))
        workers = common.Workers(count=1, concurrency=PROCESSES, tag="slow",
                                 beat=True, metered=True)
        meter = cost.Meter(workers)
        meter.start(settle=False)  # the previous meter's result waited for the statistics; nothing ran since
        with_hanging, fast_ones = run_with_hanging(hook, hanging_hook, deal, n)
        meter.stop()
        rows.append(cost.metered(common.row(
            "hanging receiver (10% of deliveries): the fast ones' enqueue→Success", with_hanging, "deliv/s", fast,
            target=">= 0.8x", passed=with_hanging / fast >= 0.8,
            note="baseline: the dispatcher run above, without the hanging receiver; cost per fast delivery"),
            meter.result(deliveries=fast_ones)))
        small_hook, small_deal = second_organization(receiver.url("/hook"))
        times, big_rate = run_fairness(hook, deal, small_hook, small_deal, fair_n)
        p50 = statistics.median(times)
        p99 = sorted(times)[min(len(times) - 1, int(len(times) * 0.99))]
        rows.append(common.row(f"fairness: 2nd organization's enqueue→Success p99 (1st enqueues {fair_n:,})", p99 * 1000,
                               "ms", None, target="< 2,000 ms", passed=p99 < 2,
                               note=f"{len(times)} deliveries, p50 {p50 * 1000:.0f} ms; the 1st organization's "
                                    f"{fair_n:,} at {big_rate:.0f}/s"))
        workers.stop()  # the enqueue cost alone, as its baseline is measured; then with a worker of its own
        enqueue_rate, bare_rate, bare_in_transaction = run_enqueue_cost(hook, deal, max(n // 2, 500))
        rows.append(common.row("one event per transaction: enqueue cost vs bare INSERT + COMMIT, alone", 1000 / enqueue_rate,
                               "ms/event", 1000 / bare_rate, target="<= 2x", passed=bare_rate / enqueue_rate <= 2,
                               note=f"no worker running (as issue 15 measured it): {enqueue_rate:.0f} events/s vs "
                                    f"{bare_rate:.0f} bare inserts/s (autocommit: one round trip); in an explicit "
                                    f"transaction (BEGIN, INSERT, COMMIT, as the API writes) {bare_in_transaction:.0f}"
                                    f"/s, {bare_in_transaction / enqueue_rate:.2f}x"))
        workers = common.Workers(count=1, concurrency=PROCESSES, tag="slow", beat=True)
        enqueue_rate, success_rate = run_enqueue_to_success(hook, deal, max(n // 2, 500))
        rows.append(common.row("one event per transaction: enqueue→Success with a worker running", success_rate,
                               "deliv/s", enqueue_rate, target=">= 0.9x", passed=success_rate / enqueue_rate >= 0.9,
                               note=f"baseline: the enqueue rate of the same run ({enqueue_rate:.0f}/s, the "
                                    f"worker sharing the cores)"))
    finally:
        workers.stop()
        receiver.stop()
    common.report(rows, args.json, header=f"receivers: asyncio, {DELAY * 1000:.0f} ms and never; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
