"""End-to-end delivery throughput against a single-threaded requests loop measured in the same run.

    .venv/bin/python bench/throughput.py [--n 2000] [--workers 1] [--concurrency 4 8]

Needs PostgreSQL and Redis (DATABASE_URL / CELERY_BROKER_URL, default: the local ones); uses its own
database ``webhooks_bench`` (dropped and created). The receiver is nginx from Debian's packages when
installed (answering a fixed small JSON body, keep-alive on), else a Python server, which is labelled.
Each dispatcher row times N deliveries from the committing enqueue to the last stored Success attempt,
through real Celery worker processes: rendering, signing, quota, attempt rows and all.
"""
import argparse
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
BENCH_DB = "webhooks_bench"
os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{BENCH_DB}")
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
os.environ.update({"WEBHOOK_ALLOW_LOOPBACK": "true", "WEBHOOK_ALLOWED_PORTS": "*", "DJANGO_SETTINGS_MODULE": "config.settings",
                   "LOG_LEVEL": "WARNING", "DATABASE_CONN_MAX_AGE": "600"})
BODY = b'{"ok": true}'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_receiver() -> tuple[int, str, callable]:
    port = free_port()
    nginx = shutil.which("nginx") or (Path("/usr/sbin/nginx") if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        folder = Path(tempfile.mkdtemp())
        (folder / "nginx.conf").write_text(f"""
worker_processes 1; daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {folder};
  server {{ listen 127.0.0.1:{port}; location / {{ default_type application/json; return 200 '{BODY.decode()}'; }} }} }}
""")
        process = subprocess.Popen([str(nginx), "-c", str(folder / "nginx.conf"), "-p", str(folder)])
        wait_port(port)
        return port, "nginx", process.terminate

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return port, "python (nginx not installed: receiver may be the bottleneck)", server.shutdown


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def reset_database() -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {BENCH_DB}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=1, help="worker processes (celery worker commands)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 8], help="pool size(s) to compare")
    args = parser.parse_args()
    reset_database()
    import django

    django.setup()
    from celery import current_app
    from django.core.management import call_command
    from django.db import transaction
    import requests

    call_command("migrate", verbosity=0)
    from crm.models import Edition, Record
    from dispatcher import outbox
    from dispatcher.demo import demo_load
    from dispatcher.models import Delivery, Webhook
    from dispatcher.rendering.request import webhook_render_request
    from tests.factories import webhook_create

    port, receiver_label, stop_receiver = start_receiver()
    organization = demo_load()
    Edition.objects.filter(pk=organization.edition_id).update(daily_call_limit=10**9, calls_per_licence=10**9)
    deals = organization.modules.get(api_name="Deals")
    deal = Record.objects.filter(module=deals).first()
    labels = ["Deal Name", "Amount", "Closing Date", "Stage", "Type", "Probability (%)", "Payment Due Date",
              "Deal Id", "Deal Owner", "Modified Time"]
    hook = webhook_create(module=deals, name="Bench", url=f"http://127.0.0.1:{port}/hook",
                          entity=[(f"f{i}", f"${{Deals.{label}}}") for i, label in enumerate(labels)])
    hook = Webhook.objects.select_related("organization", "module").get(pk=hook.pk)
    prepared = [webhook_render_request(webhook=hook, record=deal, message_id=f"msg_{i}") for i in range(args.n)]

    rows = []
    session = requests.Session()
    started = time.perf_counter()
    for request in prepared:
        _ = session.request(request.method, request.url, headers=request.headers, data=request.body).content
    baseline = args.n / (time.perf_counter() - started)
    rows.append(("baseline: requests.Session, one thread", baseline))

    connection = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    for request in prepared:
        connection.request(request.method, "/hook", body=request.body, headers=request.headers)
        connection.getresponse().read()
    rows.append(("reference: http.client, one thread", args.n / (time.perf_counter() - started)))

    env = {**os.environ}
    for concurrency in args.concurrency:
        with current_app.connection_for_write() as broker:
            broker.default_channel.queue_purge("deliveries")
        workers = [subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "deliveries", "-n", f"bench{w}-{concurrency}@%h",
             "--concurrency", str(concurrency), "--loglevel", "WARNING", "--without-mingle", "--without-gossip"],
            cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ) for w in range(args.workers)]
        names = [f"bench{w}-{concurrency}@{socket.gethostname()}" for w in range(args.workers)]
        while len(current_app.control.ping(destination=names, timeout=0.5)) < len(names):
            pass
        started = time.perf_counter()
        with transaction.atomic():
            ids = [outbox.delivery_enqueue(webhook=hook, record=deal).pk for _ in range(args.n)]
        committed = time.perf_counter()
        while Delivery.objects.filter(pk__in=ids, status="success").count() < args.n:
            time.sleep(0.05)
        finished = time.perf_counter()
        label = f"dispatcher: {args.workers} worker(s) x {concurrency} processes"
        rows.append((f"{label}, enqueue to success", args.n / (finished - started)))
        rows.append((f"{label}, commit to success", args.n / (finished - committed)))
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait()
    stop_receiver()

    print(f"\nreceiver: {receiver_label}; N = {args.n}; {os.cpu_count()} cores")
    print(f"{'case':66} {'deliveries/s':>13} {'x baseline':>11}")
    for label, rate in rows:
        print(f"{label:66} {rate:13.0f} {rate / baseline:11.2f}")


if __name__ == "__main__":
    main()
