"""Isolation between organizations that share the delivery engine (issue 25): what one organization's load
does to another's deliveries.

    .venv/bin/python bench/isolation.py [--quick] [--only SCENARIO ...] [--json FILE]

Two worker processes, started with the Procfile's worker command (its embedded scheduler runs the pump), on
PostgreSQL (database webhooks_isolation, recreated, dropped at the end) and Redis (CELERY_BROKER_URL);
receivers in a process of this script's own (asyncio): /fast answers at once, /slow after 100 ms, /hang never
(the read timeout, 10 s, ends it), /trickle sends its answer one byte every 5 s (the total timeout, 30 s,
ends it), /big-json answers a 1 MB JSON document at once.

In every scenario organization B makes 30 deliveries (--quick: 8), one a second, to /fast while organization
A does what the scenario says; the figure is B's wait from a delivery's creation to its first attempt:

    baseline   A does nothing
    bulk       A: 20,000 deliveries to the 100 ms receiver (--quick: 1,000)
    hang       A: 600 deliveries to 4 paths that hang to the read timeout (--quick: 40)
    trickle    A: 600 deliveries to 4 paths that send one byte every 5 s (--quick: 40)
    channels   A: 5 channels to trickling receivers, one bulk API call of 60 records (--quick: 10)
    capture    A: 40 deliveries whose webhook captures `$..*` from a 1 MB JSON answer (--quick: 10): the
               capture-heavy organization (captures run off the drain loop once issue 25's capture part lands)
    mix        A: 2,000 deliveries, every tenth to a path that hangs, the rest to the 100 ms one (--quick: 300)

Target per scenario: B's p99 <= 2 s and <= 2x B's p99 in the baseline, measured in the same run (the baseline
always runs first). Also printed: how many of A's deliveries were attempted (and succeeded) within a few
minutes (--quick: 15 s) after B's last one; a receiver that hangs is asked a few requests at a time by
design, so A's hanging deliveries take long. Each scenario starts new worker processes (the per-process
destination limits start afresh) and new organizations, and ends by killing the workers and deleting the
deliveries. A full run writes its rows into bench/results.json (replacing earlier isolation rows) and
bench/results.md; --quick writes var/bench-isolation-quick.json; --json FILE writes the rows there instead.
Everything started (receiver, workers, the database) is stopped or dropped on the way out.
"""
import argparse
import asyncio
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

DATABASE = "webhooks_isolation"
SLOW_SECONDS = 0.1  # the realistic receiver's answer time
TRICKLE_SECONDS = 5.0  # between two bytes of a trickling answer (under the 10 s read timeout)
TARGET_P99_SECONDS = 2.0
TARGET_RATIO = 2.0


# --- the receiver (its own process) -------------------------------------------------------------------------
def _big_json() -> bytes:
    items = [{"id": i, "name": f"item {i}", "tags": ["a", "b", "c"], "price": {"amount": i * 1.5, "currency": "EUR"}}
             for i in range(12_000)]
    return json.dumps({"data": items}).encode()


async def _serve(port: int) -> None:
    big = _big_json()

    def answer(body: bytes) -> bytes:
        return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body)

    fast, big_answer = answer(common.BODY), answer(big)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if length:
                    await reader.readexactly(length)
                path = head.split(b" ", 2)[1]
                if path.startswith(b"/hang"):
                    await asyncio.sleep(3600)  # never answers: the read timeout ends it
                elif path.startswith(b"/trickle"):
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n")
                    while True:  # the total timeout ends it
                        await writer.drain()
                        await asyncio.sleep(TRICKLE_SECONDS)
                        writer.write(b" ")
                elif path.startswith(b"/big-json"):
                    writer.write(big_answer)
                else:
                    if path.startswith(b"/slow"):
                        await asyncio.sleep(SLOW_SECONDS)
                    writer.write(fast)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


class Receivers:
    def __init__(self) -> None:
        self.port = common.free_port()
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(self.port)])
        common.wait_port(self.port)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


# --- the worker processes: the Procfile's worker (its scheduler embedded) -----------------------------------------------
def procfile_command(name: str) -> str:
    for line in (common.BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise RuntimeError(f"no {name} line in the Procfile")


class ProcfileWorkers:
    """The Procfile's worker (2 processes, with its embedded scheduler for the pump) and a node name to ping."""

    def __init__(self, folder: Path) -> None:
        from celery import current_app

        self.name = f"isolation-{os.urandom(3).hex()}@localhost"
        env = {**os.environ, "WORKER_CONCURRENCY": "2",
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        worker = f"{procfile_command('worker')} -n {self.name}"
        self.logs = [open(folder / "worker.log", "w")]
        self.processes = [subprocess.Popen(["bash", "-c", f"exec {worker}"], cwd=common.BASE_DIR, env=env,
                                           stdout=self.logs[0], stderr=subprocess.STDOUT, start_new_session=True)]
        try:
            deadline = time.monotonic() + 120
            while not self._answering(current_app):
                if time.monotonic() > deadline or any(p.poll() is not None for p in self.processes):
                    raise RuntimeError(f"the worker did not start; see {folder}/worker.log")
        except BaseException:
            self.kill()
            raise

    def _answering(self, app) -> bool:
        with app.connection_for_write() as connection:
            return bool(app.control.ping(destination=[self.name], timeout=0.5, connection=connection))

    def kill(self) -> None:
        """SIGKILL to the worker, its pool processes and its scheduler: what they had in flight is deleted next."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for log in self.logs:
            log.close()


def broker_purge() -> None:
    """Wake-ups left by an earlier run or scenario would wake workers for deliveries that are gone."""
    from celery import current_app

    with current_app.connection_for_write() as connection:
        for queue in ("deliveries", "celery"):
            connection.default_channel.queue_purge(queue)


# --- organizations and what they send ------------------------------------------------------------------
def organization(name: str):
    """A new organization (no daily limit) with its owner and a deal."""
    from crm import services as crm_services
    from crm.models import CrmUser, Edition

    edition = Edition.objects.get(code="enterprise")
    Edition.objects.filter(pk=edition.pk).update(daily_call_limit=10**9, calls_per_licence=10**9)
    org = crm_services.organization_create(name=name, edition=Edition.objects.get(pk=edition.pk), user_licences=10,
                                           time_zone="Europe/Amsterdam", currency_code="EUR")
    owner = CrmUser.objects.create(organization=org, last_name=name, email=f"{name.lower().replace(' ', '.')}@example.com",
                                   is_admin=True)
    deals = org.modules.get(api_name="Deals")
    deal = crm_services.record_create(module=deals, owner=owner, values={"Deal_Name": name})
    return org, owner, deal


def hook(org, url: str, name: str):
    from tests.factories import webhook_create

    return webhook_create(module=org.modules.get(api_name="Deals"), name=name, url=url,
                          entity=[("deal", "${Deals.Deal Name}"), ("amount", "${Deals.Amount}")])


def enqueue_round_robin(deal, hooks: list, n: int, chunk: int = 500) -> None:
    """n deliveries, spread over the hooks in turn, committed in chunks (as events arrive)."""
    from django.db import transaction

    from dispatcher import delivery as delivery_engine

    for offset in range(0, n, chunk):
        with transaction.atomic():
            delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hooks[i % len(hooks)], deal)
                                                for i in range(offset, min(n, offset + chunk))])


@dataclass
class Scenario:
    name: str
    what: str  # with {n}: how many (deliveries, records) A makes
    sizes: tuple[int, int]  # n in a full run, with --quick
    load: Callable[[object, object, object, Receivers, int], None]  # (organization, owner, deal, receivers, n)

    def n(self, quick: bool) -> int:
        return self.sizes[1] if quick else self.sizes[0]

    def title(self, quick: bool) -> str:
        return self.what.format(n=self.n(quick))


def load_nothing(org, owner, deal, receivers, n) -> None:
    return None


def load_bulk(org, owner, deal, receivers, n) -> None:
    enqueue_round_robin(deal, [hook(org, receivers.url("/slow"), "Bulk")], n)


def load_hang(org, owner, deal, receivers, n) -> None:
    hooks = [hook(org, receivers.url(f"/hang/{i}"), f"Hanging {i}") for i in range(1, 5)]
    enqueue_round_robin(deal, hooks, n)


def load_trickle(org, owner, deal, receivers, n) -> None:
    hooks = [hook(org, receivers.url(f"/trickle/{i}"), f"Trickling {i}") for i in range(1, 5)]
    enqueue_round_robin(deal, hooks, n)


def load_channels(org, owner, deal, receivers, n) -> None:
    """5 channels on Deals.create to trickling receivers, then one bulk API call: every record makes 5
    notifications."""
    from django.test import Client

    from crm import services as crm_services
    from dispatcher.senders.channels import channel_create

    for i in range(1, 6):
        channel_create(organization=org, owner=owner, events=["Deals.create"], notify_url=receivers.url(f"/trickle/c{i}"))
    _, key = crm_services.api_key_create(user=owner, name="Bench bulk")
    records = [{"Deal_Name": f"Bulk {i}", "Amount": 100 + i} for i in range(n)]
    answer = Client(HTTP_HOST="localhost").post("/api/v1/records/Deals/bulk/", data=json.dumps(records),
                                                content_type="application/json", HTTP_X_API_KEY=key)
    if answer.status_code != 201:
        raise RuntimeError(f"the bulk API call answered {answer.status_code}: {answer.content[:300]!r}")


def load_capture(org, owner, deal, receivers, n) -> None:
    """The capture-heavy organization: a webhook whose capture `$..*` runs over a 1 MB JSON answer."""
    from crm.models import Field
    from dispatcher.models import Capture

    capturing = hook(org, receivers.url("/big-json"), "Capturing")
    capturing.capture_response, capturing.capture_type = True, "JSONPATH"
    capturing.save()
    field = Field.objects.create(module=capturing.module, label="Everything", api_name="Everything")
    Capture.objects.create(webhook=capturing, when="success", expression="$..*", field=field)
    enqueue_round_robin(deal, [capturing], n)


def load_mix(org, owner, deal, receivers, n) -> None:
    hooks = [hook(org, receivers.url("/slow"), f"Mixed {i}") for i in range(9)]
    hooks.append(hook(org, receivers.url("/hang/mix"), "Mixed hanging"))
    enqueue_round_robin(deal, hooks, n)


SCENARIOS = [
    Scenario("baseline", "A does nothing", (0, 0), load_nothing),
    Scenario("bulk", "A: {n:,} deliveries to a 100 ms receiver", (20_000, 1_000), load_bulk),
    Scenario("hang", "A: {n:,} deliveries to 4 paths that hang to the read timeout", (600, 40), load_hang),
    Scenario("trickle", "A: {n:,} deliveries to 4 paths that send a byte every 5 s", (600, 40), load_trickle),
    Scenario("channels", "A: 5 trickling channels, a bulk API call of {n} records", (60, 10), load_channels),
    Scenario("capture", "A: {n} deliveries capturing $..* from a 1 MB JSON answer", (40, 10), load_capture),
    Scenario("mix", "A: {n:,} deliveries, every tenth to a hanging path", (2_000, 300), load_mix),
]


# --- one scenario --------------------------------------------------------------------------------------
@dataclass
class Measured:
    times: list[float]  # B's creation -> first attempt, seconds
    b_made: int
    a_made: int
    a_attempted: int
    a_success: int
    worker_errors: int  # tracebacks and ERROR lines in the worker's log

    def p(self, fraction: float) -> float:
        if len(self.times) < self.b_made:
            return float("inf")  # some of B's deliveries never had an attempt
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def in_thread(work: Callable[[], None]) -> tuple[threading.Thread, list[BaseException]]:
    from django.db import connection

    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def b_trickle(hook_b, deal_b, n: int) -> list[int]:
    """n deliveries, one a second, each in its own transaction (as the API writes them)."""
    from dispatcher import delivery as delivery_engine

    ids = []
    started = time.monotonic()
    for i in range(n):
        time.sleep(max(0.0, started + i + 1 - time.monotonic()))  # pacing the load, not synchronisation
        ids.append(delivery_engine.delivery_enqueue(webhook=hook_b, record=deal_b).pk)
    return ids


def first_attempt_waits(ids: list[int]) -> list[float]:
    from dispatcher.models import Attempt, Delivery

    created = dict(Delivery.objects.filter(pk__in=ids).values_list("pk", "created_at"))
    started = dict(Attempt.objects.filter(delivery__in=ids, number=1).values_list("delivery_id", "started_at"))
    return [(started[pk] - created[pk]).total_seconds() for pk in ids if pk in started]


def wait_until(condition: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def run_scenario(scenario: Scenario, receivers: Receivers, b, folder: Path, quick: bool) -> Measured:
    from dispatcher.models import Attempt, Delivery

    hook_b, deal_b = b
    org_a, owner_a, deal_a = organization(f"A {scenario.name}")
    broker_purge()
    workers = ProcfileWorkers(folder)
    try:
        loader, errors = in_thread(lambda: scenario.load(org_a, owner_a, deal_a, receivers, scenario.n(quick)))
        b_ids = b_trickle(hook_b, deal_b, 8 if quick else 30)
        loader.join()
        if errors:
            raise errors[0]
        wait_until(lambda: len(first_attempt_waits(b_ids)) == len(b_ids), 120)
        times = first_attempt_waits(b_ids)
        a_rows = Delivery.objects.filter(organization=org_a)
        made = a_rows.count()

        def attempted() -> int:  # an attempt stored: answered, timed out or cut
            return Attempt.objects.filter(delivery__organization=org_a).values("delivery").distinct().count()

        wait_until(lambda: attempted() == made, 15 if quick else 240)
        return Measured(times, len(b_ids), made, attempted(), a_rows.filter(status="success").count(),
                        worker_errors=0)
    finally:
        workers.kill()
        Delivery.objects.all().delete()
        broker_purge()


def worker_errors(folder: Path) -> int:
    log = (folder / "worker.log").read_text(errors="replace").splitlines()
    return sum(1 for line in log if "Traceback" in line or " ERROR" in line or "ERROR/" in line)


def rows_of(results: dict[str, Measured], quick: bool) -> list[dict]:
    base = results["baseline"]
    base_p99 = base.p(0.99)
    rows = []
    for scenario in SCENARIOS:
        if scenario.name not in results:
            continue
        m = results[scenario.name]
        p50, p99 = m.p(0.5), m.p(0.99)
        a_note = "" if scenario.name == "baseline" else (
            f"; A: {m.a_attempted:,} of {m.a_made:,} attempted{' (all)' if m.a_attempted == m.a_made else ''}, "
            f"{m.a_success:,} Success")
        rows.append(common.row(
            f"isolation: {scenario.title(quick)}: B's creation→first attempt p99", p99, "s",
            None if scenario.name == "baseline" else base_p99,
            target="" if scenario.name == "baseline" else f"<= {TARGET_P99_SECONDS:.0f} s, <= {TARGET_RATIO:.0f}x",
            passed=None if scenario.name == "baseline" else p99 <= TARGET_P99_SECONDS and p99 <= TARGET_RATIO * base_p99,
            note=f"B: {len(m.times)} of {m.b_made} attempted, p50 {p50:.2f} s{a_note}; worker log: "
                 f"{m.worker_errors} errors{'; quick run' if quick else ''}"))
    return rows


def results_merge(rows: list[dict], seconds: float) -> Path:
    """Into bench/results.json (the table of docs/internals/benchmarks.md), replacing this benchmark's earlier
    rows."""
    from bench.table import markdown

    path = common.BASE_DIR / "bench" / "results.json"
    results = json.loads(path.read_text())
    results["rows"] = [r for r in results["rows"] if not r["figure"].startswith("isolation:")] + rows
    results.setdefault("seconds", {})["isolation"] = round(seconds, 1)
    path.write_text(json.dumps(results, indent=2))
    path.with_suffix(".md").write_text(markdown(results))
    return path


def database_drop() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    names = [s.name for s in SCENARIOS]
    parser.add_argument("--only", nargs="+", choices=names[1:], default=names[1:],
                        help="scenarios to run (the baseline always runs first)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return asyncio.run(_serve(args.serve))
    started = time.monotonic()
    common.postgres_environment(DATABASE)
    common.django_ready()
    folder = Path(tempfile.mkdtemp(prefix="bench-isolation-"))  # the workers' logs, kept only if a scenario fails
    receivers = Receivers()
    results: dict[str, Measured] = {}
    try:
        org_b, _, deal_b = organization("B")
        b = (hook(org_b, receivers.url("/fast"), "B fast"), deal_b)
        for scenario in SCENARIOS:
            if scenario.name == "baseline" or scenario.name in args.only:
                print(f"--- {scenario.name}: {scenario.title(args.quick)}", flush=True)
                results[scenario.name] = run_scenario(scenario, receivers, b, folder, args.quick)
                results[scenario.name].worker_errors = worker_errors(folder)
                if results[scenario.name].worker_errors:
                    shutil.copy(folder / "worker.log", folder / f"worker-{scenario.name}.log")
    except BaseException:
        print(f"worker logs kept in {folder}", file=sys.stderr)
        raise
    else:
        if any(m.worker_errors for m in results.values()):
            print(f"worker logs with errors kept in {folder}")
        else:
            shutil.rmtree(folder)
    finally:
        receivers.stop()
        database_drop()
    rows = rows_of(results, args.quick)
    when = datetime.date.today().isoformat()
    common.report(rows, args.json, header=f"{when}: {os.cpu_count()} cores; 2 worker processes (Procfile), "
                                          f"PostgreSQL, Redis; B's deliveries {'8' if args.quick else '30'} at 1/s")
    if args.json is None:
        if args.quick:
            out = common.BASE_DIR / "var" / "bench-isolation-quick.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=2))
        else:
            out = results_merge(rows, time.monotonic() - started)
        print(f"written to {out}")


if __name__ == "__main__":
    main()
