"""The embedded default under a small team's load, for a long time (issue 16): command 1 exactly as printed
(scripts/dev.sh: SQLite, the file-system broker, web + worker + beat under honcho), in a state folder of its
own, while records are created through the REST API at a steady rate (each fires the demo's commission
rule: an instant delivery and a time-based one; the demo's receivers do not resolve, so every delivery also
goes through its retry). It must survive the whole run: no process exits, no 5xx, no "database is locked",
no broker message that cannot be decoded.

    .venv/bin/python bench/embedded_soak.py [--minutes 15] [--rate 8] [--port 8791]

Prints a table and writes bench/embedded_soak.md; exits 1 when the product did not survive.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BAD = {"JSONDecodeError": "broker message not decodable", "database is locked": "SQLite lock error",
       "Traceback": "traceback in any process"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=8.0, help="API requests per second")
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="embedded-soak-"))
    env = {**{k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}},
           "VAR_DIR": str(state), "PORT": str(args.port), "DEMO_ADMIN_PASSWORD": "soak-password"}
    stack = subprocess.Popen(["bash", "scripts/dev.sh"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(stack.stdout.readline, "")), daemon=True).start()
    base = f"http://127.0.0.1:{args.port}"
    try:
        key = _wait_started(base, state, stack)
        statuses, latencies = _load(base, key, args.minutes * 60, args.rate, stack)
        deliveries = _deliveries(state, env)
    finally:
        os.killpg(stack.pid, signal.SIGTERM)
        try:
            stack.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
    found = {meaning: sum(marker in line for line in lines) for marker, meaning in BAD.items()}
    survived = stack.returncode in (0, -signal.SIGTERM, 143) and not any(found.values()) and set(statuses) == {201}
    rows = [("minutes", f"{args.minutes:g}"), ("API requests", sum(statuses.values())),
            ("API answers", ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))),
            ("API p50 / p99 (ms)", _percentiles(latencies)),
            ("deliveries by status", ", ".join(f"{k}: {v}" for k, v in sorted(deliveries.items()))),
            *((meaning, count) for meaning, count in found.items()),
            ("stack still running at the end", "yes" if stack.returncode in (-15, 143, 0) else "no"),
            ("survived", "yes" if survived else "NO")]
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)
    print(table)
    (ROOT / "bench" / "embedded_soak.md").write_text(table + "\n")
    return 0 if survived else 1


def _wait_started(base: str, state: Path, stack: subprocess.Popen) -> str:
    deadline = time.monotonic() + 600  # a fresh .venv may be installed first
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            raise SystemExit("command 1 exited while starting")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200 and (state / "api-key").exists():
                return (state / "api-key").read_text().strip()
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit("command 1 did not start within 10 minutes")


def _load(base: str, key: str, seconds: float, rate: float, stack) -> tuple[Counter, list[float]]:
    statuses: Counter = Counter()
    latencies: list[float] = []
    session = requests.Session()
    started = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - started) < seconds and stack.poll() is None:
        if sent > elapsed * rate:
            time.sleep(min(0.05, sent / rate - elapsed))
            continue
        sent += 1
        begun = time.monotonic()
        try:
            response = session.post(f"{base}/api/v1/records/Deals/", timeout=30, headers={"X-API-Key": key, "Content-Type": "application/json"},
                                    data=json.dumps({"Deal_Name": f"Soak {sent}", "Type": "New Business",
                                                     "Stage": "Closed Won", "Amount": str(sent)}))
            statuses[response.status_code] += 1
        except requests.RequestException:
            statuses[0] += 1
        latencies.append((time.monotonic() - begun) * 1000)
    return statuses, latencies


def _deliveries(state: Path, env: dict) -> dict:
    code = ("import django, os, json; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings'; django.setup(); "
            "from django.db.models import Count; from dispatcher.models import Delivery; "
            "print(json.dumps({r['status']: r['n'] for r in Delivery.objects.values('status')"
            ".annotate(n=Count('id'))}))")
    out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-200:]}


def _percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[len(ordered) // 2]:.0f} / {ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]:.0f}"


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    sys.exit(main())
