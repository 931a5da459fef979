"""Shared by the benchmarks: the local receiver, the PostgreSQL bench database, the 10-field webhook,
and the result rows every benchmark prints and writes as JSON for bench/run.py."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
CODE_DIR = BASE_DIR  # the checkout whose product the benchmark runs (bench/cost.py's --against sets another)
BODY = b'{"ok": true}'
FIELDS = ["Deal Name", "Amount", "Closing Date", "Stage", "Type", "Probability (%)", "Payment Due Date",
          "Deal Id", "Deal Owner", "Modified Time"]  # the 10 merge fields of the benchmark webhook


def add_arguments(parser) -> None:
    parser.add_argument("--quick", action="store_true", help="smaller runs (CI); ratios are reported, not asserted")
    parser.add_argument("--json", type=Path, help="also write the rows to this file")


def row(figure: str, value: float | None, unit: str, baseline: float | None = None, *, ratio: float | None = None,
        target: str = "", passed: bool | None = None, note: str = "") -> dict:
    """One line of the results table: a figure, its baseline from the same run, and the target."""
    if ratio is None and baseline:
        ratio = value / baseline
    return {"figure": figure, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
            "target": target, "pass": passed, "note": note}


def report(rows: list[dict], json_path: Path | None, header: str = "") -> None:
    if header:
        print(header)
    print_table(rows)
    print_cost_table(rows)
    if json_path:
        json_path.write_text(json.dumps(rows, indent=2))


def number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"


def print_table(rows: list[dict]) -> None:
    print(f"{'figure':58} {'value':>12} {'unit':9} {'baseline':>10} {'ratio':>7} {'target':>14} {'':4}")
    for r in rows:
        verdict = "" if r["pass"] is None else "pass" if r["pass"] else "FAIL"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        print(f"{r['figure'][:58]:58} {number(r['value']):>12} {r['unit'][:9]:9} {number(r['baseline']):>10} "
              f"{ratio:>7} {r['target'][:14]:>14} {verdict:4}")
        if r.get("note"):
            print(f"    {r['note']}")


# The cost fields of a metered row (bench/cost.py), as the cost table shows them.
COST_COLUMNS = [("cpu_worker_ms_per_delivery", "worker CPU ms"), ("cpu_postgres_ms_per_delivery", "PostgreSQL CPU ms"),
                ("cpu_total_ms_per_delivery", "CPU ms"), ("transactions_per_delivery", "transactions"),
                ("statements_per_delivery", "statements"), ("rows_written_per_delivery", "rows written"),
                ("hot_update_share", "HOT updates")]


def cost_cell(r: dict, key: str) -> str:
    """One cost figure per delivery as the tables show it; after/before rows show ratios."""
    value = r.get(key)
    if value is None:
        return ""
    if r.get("compare"):
        return f"{value:.2f}x"
    return f"{value:.0%}" if key == "hot_update_share" else number(value)


def print_cost_table(rows: list[dict]) -> None:
    metered = [r for r in rows if "cpu_total_ms_per_delivery" in r]
    if not metered:
        return
    print(f"\ncost per delivery (bench/cost.py)\n{'figure':58} {'deliv':>6} "
          + " ".join(f"{label[:12]:>12}" for _, label in COST_COLUMNS))
    for r in metered:
        print(f"{r['figure'][:58]:58} {r.get('deliveries', ''):>6} "
              + " ".join(f"{cost_cell(r, key):>12}" for key, _ in COST_COLUMNS))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_port(port: int) -> None:
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


class Receiver:
    """nginx from Debian's packages answering a fixed small JSON body (keep-alive on); a Python server only
    when nginx is absent, and then labelled. With access_log, nginx logs "<msec> <request_uri>" per request;
    /big answers big_body_bytes of data."""

    def __init__(self, *, access_log: bool = False, big_body_bytes: int = 0,
                 log_format: str = "$msec $request_uri") -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="bench-receiver-"))
        self.log_path = self.folder / "access.log"
        nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if big_body_bytes:
            with open(self.folder / "big", "wb") as big:
                big.truncate(big_body_bytes)
        if nginx:
            log = f"log_format t '{log_format}'; access_log {self.log_path} t;" if access_log else "access_log off;"
            (self.folder / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {self.folder}/nginx.pid; error_log {self.folder}/error.log;
events {{ worker_connections 1024; }}
http {{ {log} keepalive_requests 1000000; client_body_temp_path {self.folder};
  server {{ listen 127.0.0.1:{self.port};
    location = /big {{ default_type application/json; root {self.folder}; try_files /big =404; }}
    location / {{ default_type application/json; return 200 '{BODY.decode()}'; }} }} }}
""")
            self.process = subprocess.Popen([nginx, "-c", str(self.folder / "nginx.conf"), "-p", str(self.folder)])
            self.label = "nginx"
            self.stop = self.process.terminate
        else:
            self.label = "python (nginx not installed: the receiver may be the bottleneck)"
            self.stop = self._python(access_log)
        wait_port(self.port)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines() if self.log_path.exists() else []

    def _python(self, access_log: bool):
        log_path = self.log_path

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if access_log:
                    with open(log_path, "a") as log:
                        log.write(f"{time.time():.3f} {self.path}\n")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.write(BODY)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server.shutdown


def postgres_environment(database: str) -> None:
    """Point Django at a fresh PostgreSQL database of this name and at Redis; loopback allowed for the receiver."""
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {database}")
        admin.execute("CHECKPOINT")  # the previous benchmark's writes are flushed now, not during this one
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    os.environ.update({"WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_ALLOWED_PORTS": "*", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "config.settings", "DATABASE_CONN_MAX_AGE": "600"})


def django_ready() -> None:
    sys.path.insert(0, str(CODE_DIR))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def bench_webhook(url: str, **attributes):
    """The demo organization with no daily limit, and a 10-field JSON webhook on Deals; returns (webhook, deal)."""
    from crm.models import Edition, Record
    from dispatcher.config_io.demo import demo_load
    from dispatcher.models import Webhook
    from tests.factories import webhook_create

    organization = demo_load()
    Edition.objects.filter(pk=organization.edition_id).update(daily_call_limit=10**9, calls_per_licence=10**9)
    deals = organization.modules.get(api_name="Deals")
    deal = Record.objects.filter(module=deals).first()
    hook = webhook_create(module=deals, name="Bench", url=url,
                          entity=[(f"f{i}", f"${{Deals.{label}}}") for i, label in enumerate(FIELDS)], **attributes)
    return Webhook.objects.select_related("organization", "module").get(pk=hook.pk), deal


class Workers:
    """`celery worker` processes on the deliveries queue, started and stopped by a benchmark. Metered, they
    count their SQL statements for bench/cost.py (bench/metered_worker.py); sql_log lists them too."""

    def __init__(self, *, count: int = 1, concurrency: int = 4, env: dict | None = None, tag: str = "bench",
                 beat: bool = False, metered: bool = False, sql_log: Path | None = None) -> None:
        from celery import current_app

        self.names = [f"{tag}{w}-{concurrency}-{os.urandom(3).hex()}@{socket.gethostname()}" for w in range(count)]
        schedule = tempfile.mkdtemp(prefix="bench-beat-")
        self.meter_dir = tempfile.mkdtemp(prefix="bench-meter-") if metered else None
        env = env or {**os.environ}
        celery = [sys.executable, "-m", "celery"]
        if self.meter_dir:
            env = {**env, "BENCH_METER_DIR": self.meter_dir, "BENCH_SQL_LOG": str(sql_log or "")}
            celery = [sys.executable, str(BASE_DIR / "bench" / "metered_worker.py")]
        self.processes = [subprocess.Popen(
            [*celery, "-A", "config", "worker", "-Q", "deliveries", "-n", name,
             "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-mingle", "--without-gossip",
             *(["-B", "--schedule", f"{schedule}/beat"] if beat and index == 0 else [])],
            cwd=CODE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        ) for index, name in enumerate(self.names)]
        if (env or os.environ).get("CELERY_BROKER_URL", "").startswith("filesystem"):
            time.sleep(3)  # the file-system broker cannot broadcast a ping
        else:
            try:
                while not self._answering(current_app):
                    pass
            except BaseException:
                self.kill()
                raise

    def _answering(self, app) -> bool:
        with app.connection_for_write() as connection:  # a new connection: pooled ones may be stale
            return len(app.control.ping(destination=self.names, timeout=0.5, connection=connection)) == len(self.names)

    def pids(self) -> list[int]:
        """The pool processes (children of each worker), where deliveries run."""
        children = []
        for process in self.processes:
            path = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            children += [int(pid) for pid in path.read_text().split()] if path.exists() else []
        return children

    def kill(self) -> None:
        """SIGKILL to every worker and its pool processes, as when a machine dies."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        self._forget_counts()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()  # warm shutdown: the worker lets its pool finish
        for process in self.processes:
            process.wait()
        self._forget_counts()

    def _forget_counts(self) -> None:
        if self.meter_dir:
            shutil.rmtree(self.meter_dir, ignore_errors=True)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
