"""A cluster on one machine (issue 30): test hosts as Linux network namespaces joined by veth links, and the
faults of a real installation injected across them. As root:

    .venv/bin/python bench/cluster.py [--quick] [--only killed partitioned database broker beat] [--n N]
                                      [--json FILE] [--keep-logs]

Hosts (bench/cluster_hosts.py; addresses 10.77.0.x on a bridge of their own, this script is the control host
10.77.0.1): db (its own PostgreSQL, initdb'd from /usr/lib/postgresql/*/bin in a scratch folder), broker
(Redis, no persistence), w1 and w2 (the Procfile's worker line, WORKER_CONCURRENCY=2), beat (the Procfile's
beat line, if it has one), recv (a receiver answering after 100 ms, on a global address the address guard
accepts). Each process runs with the host's name as its host name and a VAR_DIR of its own; the keys are
generated for the run and shared through the environment.

Scenarios (each: deliveries enqueued at once, --n of them (3,000; --quick 600), the fault once a third
succeeded; bench/cluster_scenarios.py):

    killed       every process of w1 killed (SIGKILL); w2 takes over what it held once the lease runs out
    partitioned  w1's link down, its processes alive, until w2 has done what w1 held; then up again
    database     the database host's link down for 10 s
    broker       the broker host's Redis killed and started again, empty
    beat         the beat host killed; then retries that come due (a flaky webhook's, after 10 s), a
                 time-based action due in 2 s: only periodic jobs (the pump, workflows.fire_due) find them

Counted per scenario: delivered (Success, and answered 200 by the receiver), lost, deliveries with two Success
attempts in the log, duplicates (requests the receiver answered 200 beyond the first per delivery) and their
bound (the claims the faulted hosts held at the fault: Dispatched then, ended by another worker after their
lease; for the database cut, every claim held at the cut), and the takeover time (from the fault until
everything Dispatched at it ended; bound: the lease plus the database's idle_in_transaction_session_timeout)
or, for the database and the broker, the time to the next Success.

One table is printed; a full run merges its rows into bench/results.json and bench/results.md (the table of
docs/internals/benchmarks.md, "A cluster on one machine"); --quick writes var/bench-cluster-quick.json;
--json FILE writes the rows there instead. Everything it starts it stops, on failure and Ctrl-C too: the
processes in each namespace are killed and the namespaces deleted (logs kept with --keep-logs or a failure).
The exit status is 1 if a scenario fails.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from celery import current_app

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import cluster_report, cluster_scenarios, cluster_services as services, common
from bench.cluster_hosts import Cluster, Host
from bench.cluster_scenarios import Bench, SCENARIOS, WORKERS

HOSTS = [Host("db", "10.77.0.2"), Host("broker", "10.77.0.3"), Host("w1", "10.77.0.11"),
         Host("w2", "10.77.0.12"), Host("beat", "10.77.0.13"), Host("recv", "10.77.0.20")]
# The product's settings on every host (and in this script): short request timeouts and lease, so a takeover
# is seconds; the pump every second; no retry jitter (a retry's due time is known); the idle-in-transaction
# timeout left to the database host's postgresql.conf (bench/cluster_services.py: POSTGRES_CONF).
SETTINGS = {
    "WEBHOOK_CONNECT_TIMEOUT": "1", "WEBHOOK_READ_TIMEOUT": "2", "WEBHOOK_TOTAL_TIMEOUT": "3",
    "WEBHOOK_LEASE_SECONDS": str(cluster_scenarios.LEASE_SECONDS),
    "WEBHOOK_PUMP_INTERVAL": str(cluster_scenarios.PUMP_SECONDS), "WORKFLOW_TICK_SECONDS": "2",
    "WEBHOOK_RETRY_JITTER": "0", "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT": "0", "WORKER_CONCURRENCY": "2",
    "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONUNBUFFERED": "1",
}


def stop_on_signal(number: int, frame) -> None:
    raise KeyboardInterrupt(f"signal {number}")  # the finally blocks tear the cluster down


def cluster_start(cluster: Cluster, folder: Path) -> Bench:
    """Hosts, services, the product's database and the bench data; the workers and beat last."""
    cluster.build()
    database_url = services.postgres_start(cluster, folder)
    broker_url = services.redis_start(cluster, folder)
    receiver_url, receiver_log = services.receiver_start(cluster, folder)
    os.environ.update({**SETTINGS, **services.product_keys(), "DATABASE_URL": database_url,
                       "CELERY_BROKER_URL": broker_url, "VAR_DIR": str(folder / "control")})
    env = dict(os.environ)
    common.django_ready()  # migrations, from the control host
    bench = cluster_scenarios.bench_data(cluster, folder, env, receiver_url, receiver_log)
    for name in WORKERS:
        services.worker_start(cluster, folder, env, name)
    bench.has_beat = services.beat_start(cluster, folder, env)
    services.workers_answer(current_app, bench.cluster, WORKERS)
    return bench


def run(names: list[str], n: int, folder: Path) -> list[cluster_report.Result]:
    cluster = Cluster(HOSTS, folder)
    results = []
    try:
        bench = cluster_start(cluster, folder)
        for name in names:
            cluster_scenarios.hosts_up(bench)
            print(f"--- {name}", flush=True)
            results.append(SCENARIOS[name](bench, n))
            results[-1].name = name
            print("    " + " | ".join(cluster_report.cells(results[-1])), flush=True)
    finally:
        cluster.teardown()
    return results


def rows_merged(results: list[cluster_report.Result]) -> list[dict]:
    """This run's rows, and an earlier full run's for the scenarios not run now, in the scenarios' order."""
    path = common.BASE_DIR / "bench" / "results.json"
    stored = {r["cluster"]["name"]: r for r in json.loads(path.read_text())["rows"]
              if r["figure"].startswith(cluster_report.PREFIX)}
    stored.update({result.name: cluster_report.row(result) for result in results})
    return [stored[name] for name in SCENARIOS if name in stored]


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    parser.add_argument("--n", type=int, help="deliveries per scenario (default 3000; --quick 600)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the hosts' logs and data folder")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/cluster.py needs root (ip netns, unshare, runuser)")
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: a shell may start it ignored
        signal.signal(number, stop_on_signal)
    n = args.n or (600 if args.quick else 3000)
    folder = Path(tempfile.mkdtemp(prefix="whcl-"))
    folder.chmod(0o755)  # PostgreSQL runs as postgres in folder/db
    started, results = time.monotonic(), []
    try:
        results = run(args.only, n, folder)
    finally:
        kept = args.keep_logs or len(results) < len(args.only) or not all(r.passed for r in results)
        if kept:
            print(f"logs kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder)
    print(f"\n{datetime.date.today().isoformat()}: {os.cpu_count()} cores; hosts db, broker, w1, w2 (Procfile "
          f"worker, concurrency 2), beat, recv (100 ms); {n} deliveries per scenario; lease "
          f"{cluster_scenarios.LEASE_SECONDS} s, idle_in_transaction_session_timeout "
          f"{cluster_scenarios.IDLE_IN_TRANSACTION_SECONDS} s")
    cluster_report.print_table(results)
    rows = [cluster_report.row(result) for result in results]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    elif args.quick:
        out = common.BASE_DIR / "var" / "bench-cluster-quick.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(rows, indent=2))
    else:
        cluster_report.results_merge(common.BASE_DIR / "bench" / "results.json", rows_merged(results),
                                     time.monotonic() - started)
    sys.exit(0 if all(r.passed for r in results) else 1)


if __name__ == "__main__":
    main()
