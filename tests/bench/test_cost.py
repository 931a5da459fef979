"""The benchmarks' cost meter (bench/cost.py, bench/metered_worker.py): what it counts on a real PostgreSQL
connection, how it tells the workers' backends from the others, and how its figures reach the tables."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection, transaction

from bench import common, cost
from bench.metered_worker import StatementCounter
from bench.table import markdown


def postgresql_here() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the meter reads PostgreSQL's statistics (DATABASE_URL is not PostgreSQL)")
    if connection.settings_dict["HOST"] not in ("127.0.0.1", "localhost") or not Path("/proc/self/stat").exists():
        pytest.skip("the meter reads the PostgreSQL server's processes in /proc: the server must be local")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keeps the migrated rows for later tests
def test_the_counter_counts_statements_and_the_transactions_they_begin():
    postgresql_here()
    counter = StatementCounter()
    counter.activate()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # autocommit: a transaction of its own
            cursor.execute("SELECT 2")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT 3")  # begins the block's transaction
            cursor.execute("SELECT 4")
        connection.connection.execute("SELECT 5")  # a raw psycopg call, outside Django's cursors
    finally:
        counter.deactivate()
    assert (counter.statements, counter.transactions) == (5, 4)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # keeps the migrated rows for later tests
def test_a_backend_is_the_workers_when_its_client_is_a_worker_process():
    postgresql_here()
    settings = connection.settings_dict
    script = ("import sys, psycopg\n"
              f"c = psycopg.connect(host={settings['HOST']!r}, port={int(settings['PORT'] or 5432)}, "
              f"user={settings['USER']!r}, password={settings['PASSWORD'] or None!r}, dbname={settings['NAME']!r}, "
              "autocommit=True)\n"
              "for _ in range(500): c.execute('SELECT count(*) FROM pg_class').fetchone()\n"
              "print(c.info.backend_pid, flush=True)\n"
              "sys.stdin.read()\n")
    worker = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        worker_backend = int(worker.stdout.readline())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            own_backend = cursor.fetchone()[0]
        postmaster = int(cost._stat(own_backend)[1])
        backends = cost._Backends(postmaster, settings["NAME"], int(settings["PORT"] or 5432), [worker.pid],
                                  exclude=-1)
        assert backends.kind[worker_backend] == "worker"
        assert backends.kind[own_backend] == "client"
        assert backends.kind[postmaster] == "server"
        assert backends.last[worker_backend] > 0  # its 500 statements used some CPU
    finally:
        worker.stdin.close()
        worker.wait()


def test_a_backend_title_gives_its_database_and_client_port():
    for title in ("postgres: 15/main: postgres webhooks_bench 127.0.0.1(54321) idle",
                  "postgres: bench webhooks_bench 127.0.0.1(54321) UPDATE"):
        assert cost.BACKEND_TITLE.match(title).groups() == ("webhooks_bench", "54321")
    assert cost.BACKEND_TITLE.match("postgres: 15/main: walwriter") is None


def metered_row(figure: str, value: float, cpu: float, hot: float) -> dict:
    return cost.metered(common.row(figure, value, "deliv/s"), {
        "deliveries": 100, "cpu_worker_ms_per_delivery": cpu * 0.75, "cpu_postgres_ms_per_delivery": cpu * 0.25,
        "cpu_total_ms_per_delivery": cpu, "transactions_per_delivery": 2.0, "statements_per_delivery": 3.0,
        "worker_transactions_per_delivery": 2.0, "rows_written_per_delivery": 4.0, "hot_update_share": hot,
        "cost_detail": {}})


def test_before_and_after_rows_come_with_the_ratio_of_each_cost_column():
    before = [metered_row("throughput: dispatcher", 400.0, 2.0, 0.25), common.row("baseline loop", 800.0, "deliv/s")]
    after = [metered_row("throughput: dispatcher", 600.0, 1.0, 0.5), common.row("baseline loop", 800.0, "deliv/s")]
    rows = cost.compare(before, after, "HEAD~1 (abc)")
    assert [row["figure"] for row in rows] == [
        "before (HEAD~1 (abc)): throughput: dispatcher", "throughput: dispatcher",
        "after / before: throughput: dispatcher",
        "before (HEAD~1 (abc)): baseline loop", "baseline loop", "after / before: baseline loop"]
    ratio = rows[2]
    assert (ratio["value"], ratio["cpu_total_ms_per_delivery"], ratio["hot_update_share"]) == (1.5, 0.5, 2.0)
    assert "cpu_total_ms_per_delivery" not in rows[5]  # no cost columns where neither side has them

    table = markdown({"machine": {"date": "2026-12-05", "cores": 2, "cpu": "x", "memory_gib": 1, "python": "3.11",
                                  "postgresql": "15", "redis": "7"}, "quick": True, "rows": rows})
    assert "| throughput: dispatcher | 100 | 0.750 | 0.250 | 1.00 | 2.00 | 3.00 | 4.00 | 50% |" in table
    assert ("| after / before: throughput: dispatcher | 100 | 0.50x | 0.50x | 0.50x | 1.00x | 1.00x | 1.00x | 2.00x |"
            in table)


def test_against_runs_both_sides_with_the_arguments_given_but_its_own():
    argv = ["--quick", "--against", "HEAD~1", "--json", "out.json", "--n", "3", "--against=HEAD~2"]
    assert cost._arguments_without(argv, "--against", "--json") == ["--quick", "--n", "3"]


def test_another_checkout_is_imported_and_run_from_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "CODE_DIR", common.BASE_DIR)
    monkeypatch.setenv("VAR_DIR", "")
    monkeypatch.delenv("VAR_DIR")  # and set again as it was after the test
    monkeypatch.chdir(os.getcwd())  # restored after the test: use_code_dir changes the working directory
    cost.use_code_dir(tmp_path)
    assert (common.CODE_DIR, Path.cwd(), os.environ["VAR_DIR"]) == (tmp_path, tmp_path, str(common.BASE_DIR / "var"))
