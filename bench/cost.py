"""The cost of a delivery, beside the rate (issue 27): what the engine's processes and PostgreSQL spend for
it. bench/throughput.py, slow_receiver.py, latency.py and lone.py meter each scenario with a Meter:

    meter = cost.Meter(workers)          # workers started with common.Workers(metered=True)
    meter.start()                        # waits until PostgreSQL's statistics are current, then snapshots
    ...                                  # the scenario
    meter.stop()                         # CPU and statement counts now, when the work is done
    fields = meter.result(deliveries=n)  # database statistics, once they are flushed: the row's cost fields

The fields (docs/internals/benchmarks-cost.md says how each is measured and what it leaves out):
cpu_worker_ms_per_delivery, cpu_postgres_ms_per_delivery, cpu_total_ms_per_delivery,
transactions_per_delivery, statements_per_delivery, worker_transactions_per_delivery,
rows_written_per_delivery, hot_update_share, and cost_detail (per table, other backends, the meter's own).

Before and after: each metered benchmark takes --against REV (a commit, or a folder holding another
checkout): it exports REV's tracked files with `git archive` into a temporary folder (the repository and
its work tree are not touched), runs the same benchmark with the same arguments on that code and then on
this checkout, one after the other with the same receivers (each side starts its own, as configured here),
and prints both with after/before ratios. Nothing here imports the product at module level: --code-dir
points the benchmark's imports and processes at another checkout.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import common
from bench.metered_worker import StatementCounter, read_counts

TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.02  # how often PostgreSQL's processes are read while a scenario runs (a drain's
# connection may live less than 100 ms)
# PostgreSQL 15 flushes a backend's statistics when it goes idle at most once a second, else within
# PGSTAT_IDLE_INTERVAL (10 s); a backend that exits flushes at once.
STATS_SETTLE_SECONDS = 11.0
ENGINE_TABLES = "dispatcher_"  # the tables the rows-written and HOT figures sum: the dispatcher app's
METERED = ("throughput", "slow_receiver", "latency", "lone")  # the benchmarks that take --against
# "postgres: [cluster: ]user database host(port) activity", the title PostgreSQL gives a client backend.
BACKEND_TITLE = re.compile(r"^postgres: (?:\S+: )?\S+ (\S+) [^ (]+\((\d+)\)")


def add_arguments(parser) -> None:
    parser.add_argument("--against", metavar="REV", help="also run this benchmark on REV (a commit, or a folder "
                                                         "with another checkout) and print both, with ratios")
    parser.add_argument("--code-dir", type=Path, help=argparse.SUPPRESS)  # --against's run on the other code


def use_code_dir(code_dir: Path | None) -> None:
    """Run the product from another checkout (--against's "before" side); its keys are this checkout's.
    Also the working directory: Celery's Django fixup puts it first on sys.path when the app loads."""
    if code_dir:
        common.CODE_DIR = code_dir.resolve()
        os.environ.setdefault("VAR_DIR", str(common.BASE_DIR / "var"))
        os.chdir(common.CODE_DIR)


# --- /proc ------------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command (field 3 on), or None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _on_cpu_seconds(pid: int) -> float | None:
    """A single-threaded process's CPU time (user + system): /proc/<pid>/schedstat's, in nanoseconds, else
    utime + stime from /proc/<pid>/stat, in clock ticks (10 ms: too coarse for a backend's few ms)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        fields = _stat(pid)
        return None if fields is None else (int(fields[11]) + int(fields[12])) / TICKS


def _ticks_with_children(pid: int) -> int | None:
    """utime + stime of the process and of its children it has waited for (cutime + cstime)."""
    fields = _stat(pid)
    return None if fields is None else sum(int(value) for value in fields[11:15])


def _children(pid: int) -> list[int]:
    children = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += [int(child) for child in (task / "children").read_text().split()]
    except OSError:
        pass
    return children


def _tree(roots: list[int]) -> list[int]:
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += _children(pid)
    return found


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _local_ports(inodes: set[str], server_port: int) -> set[int]:
    """The local ports of those sockets that are connected to server_port (/proc/net/tcp, tcp6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[9] in inodes and int(fields[2].rsplit(":", 1)[1], 16) == server_port:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class _Backends:
    """The CPU of PostgreSQL's processes while a scenario runs, read from /proc every SAMPLE_SECONDS: the
    client backends of the bench database, each marked "worker" when its client is one of the worker
    processes, else "client"; the server's own processes ("server": postmaster, checkpointer, WAL writer,
    autovacuum...; server-wide); other databases' backends ("ignored", read only to share out what ended).

    A backend that ends is reaped by the postmaster, whose children's time (cutime + cstime) then grows by
    all the CPU it used: what it grew by in a sample interval goes to the processes that disappeared in it
    (their last sample, and the rest shared equally between them); growth with none gone (a process that
    lived less than an interval, never seen) is "unseen". Engine drains that open a connection per task
    make such short-lived backends common, so this matters for the lone and latency figures."""

    def __init__(self, postmaster: int, database: str, server_port: int, workers: list[int], exclude: int) -> None:
        self.postmaster, self.database, self.server_port = postmaster, database, server_port
        self.workers, self.exclude = workers, exclude
        self.start: dict[int, float] = {}  # CPU seconds at the meter's start, of the processes alive then
        self.last: dict[int, float] = {}  # CPU seconds at the latest sample
        self.kind: dict[int, str] = {}
        self.used: dict[str, float] = {"worker": 0.0, "client": 0.0, "server": 0.0, "ignored": 0.0, "unseen": 0.0}
        self.ended = 0  # client backends of the bench database that ended
        self.reaped = self._reaped()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.sample()
        self.start = dict(self.last)

    def _reaped(self) -> float:
        fields = _stat(self.postmaster)
        return 0.0 if fields is None else (int(fields[13]) + int(fields[14])) / TICKS  # cutime + cstime

    def _classify(self, pid: int) -> str | None:
        """The process's kind, or None while a new backend has not yet read who connects (it still bears
        the postmaster's command line)."""
        title = _title(pid)
        match = BACKEND_TITLE.match(title)
        if match is None:
            return "server" if pid == self.postmaster or title.startswith("postgres: ") else None
        if match.group(1) != self.database or pid == self.exclude:
            return "ignored"  # another database's backend (another benchmark, a test run), or the meter's own
        ports = _local_ports(set().union(*(_socket_inodes(p) for p in _tree(self.workers))), self.server_port)
        return "worker" if int(match.group(2)) in ports else "client"

    def sample(self) -> None:
        reaped = self._reaped()  # before the children: a child reaped in between is then in neither
        children = _children(self.postmaster)
        for pid in [self.postmaster, *children]:
            if pid not in self.kind and (kind := self._classify(pid)) is not None:
                self.kind[pid] = kind
            if pid in self.kind and (seconds := _on_cpu_seconds(pid)) is not None:
                self.last[pid] = seconds
        alive = set(children) | {self.postmaster}
        gone = [pid for pid in self.last if pid not in alive]
        growth, self.reaped = reaped - self.reaped, reaped
        if not gone:
            self.used["unseen"] += max(growth, 0.0)
            return
        rest = max(growth - sum(self.last[pid] for pid in gone), 0.0) / len(gone)
        for pid in gone:  # forgotten, so that a process given the same pid later counts as new
            kind = self.kind.pop(pid)
            self.used[kind] += self.last.pop(pid) + rest - self.start.pop(pid, 0.0)
            self.ended += kind in ("worker", "client")

    def run(self) -> None:
        self.thread = threading.Thread(target=self._loop, daemon=True, name="cost-meter")
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopping.wait(SAMPLE_SECONDS):
            self.sample()

    def stop(self) -> dict[str, float]:
        """CPU seconds used since the start by kind, "unseen", and how many client backends ended."""
        self.stopping.set()
        if self.thread:
            self.thread.join()
        self.sample()
        used = dict(self.used)
        for pid, seconds in self.last.items():
            used[self.kind[pid]] += seconds - self.start.get(pid, 0.0)
        used["ended"] = self.ended
        return used


# --- the meter --------------------------------------------------------------------------------------
STATS_QUERY = """
SELECT (SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()),
       (SELECT coalesce(json_object_agg(relname, json_build_array(n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del)),
                        '{}') FROM pg_stat_user_tables)
"""


class Meter:
    """Worker CPU, PostgreSQL CPU, transactions, statements and rows written over one scenario."""

    def __init__(self, workers: "common.Workers") -> None:
        import psycopg
        from django.db import connection

        if not workers.meter_dir:
            raise ValueError("the workers were not started with metered=True")
        self.workers = workers
        settings = connection.settings_dict
        self.database = settings["NAME"]
        self.server_port = int(settings.get("PORT") or 5432)
        self.own = psycopg.connect(host=settings["HOST"], port=self.server_port, user=settings["USER"],
                                   password=settings.get("PASSWORD") or None, dbname=self.database,
                                   autocommit=True)
        self.own_statements = 0
        self.backend = self._sql("SELECT pg_backend_pid()")[0]
        self.postmaster = int(_stat(self.backend)[1])
        self.script = StatementCounter(skip=self.own)  # this process's (the benchmark's enqueues and polls)
        self.script.activate()

    def _sql(self, sql: str) -> tuple:
        self.own_statements += 1
        return self.own.execute(sql).fetchone()

    def _flush_script(self) -> None:
        """This process's pending statistics, flushed when its statement ends (PostgreSQL 15)."""
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")

    def _database_stats(self) -> tuple[int, dict]:
        self._flush_script()
        self._sql("SELECT pg_stat_clear_snapshot(), pg_stat_force_next_flush()")
        transactions, tables = self._sql(STATS_QUERY)
        return transactions, tables

    def start(self, *, settle: bool = True) -> None:
        """Snapshots; first waits until the statistics of what ran before (workers starting, a warm-up)
        are flushed, unless nothing ran since the previous meter's result."""
        if settle:
            time.sleep(STATS_SETTLE_SECONDS)
        self._flush_script()
        self._sql("SELECT pg_stat_clear_snapshot(), pg_stat_force_next_flush()")
        self.script.statements = self.script.transactions = 0
        self.own_statements = 0
        self.transactions, self.tables = self._sql(STATS_QUERY)
        self.counts = read_counts(self.workers.meter_dir)
        self.worker_cpu = self._worker_ticks()
        self.backends = _Backends(self.postmaster, self.database, self.server_port,
                                  [p.pid for p in self.workers.processes], self.backend)
        self.backends.run()
        self.started = time.perf_counter()

    def _worker_ticks(self) -> dict[int, int]:
        return {pid: ticks for pid in _tree([p.pid for p in self.workers.processes])
                if (ticks := _ticks_with_children(pid)) is not None}

    def stop(self) -> None:
        """CPU and the workers' statement counts as they are now (call it when the scenario's work is done)."""
        self.wall = time.perf_counter() - self.started
        worker_cpu = self._worker_ticks()
        self.worker_seconds = sum(ticks - self.worker_cpu.get(pid, 0) for pid, ticks in worker_cpu.items()) / TICKS
        self.postgres = self.backends.stop()
        counts = read_counts(self.workers.meter_dir)
        self.statements = sum(s - self.counts.get(pid, (0, 0))[0] for pid, (s, _) in counts.items())
        self.worker_transactions = sum(t - self.counts.get(pid, (0, 0))[1] for pid, (_, t) in counts.items())
        self.script_statements_at_stop = self.script.statements

    def result(self, *, deliveries: int) -> dict:
        """The cost fields of a result row, per delivery; call it before stopping the workers (what they do
        as they stop is not the scenario's). PostgreSQL's figures are read once the backends have flushed
        their statistics (STATS_SETTLE_SECONDS), the workers paused meanwhile (SIGSTOP to their process
        groups, SIGCONT after) so that what they would do after stop() is not counted."""
        running = [process for process in self.workers.processes if process.poll() is None]
        for process in running:
            os.killpg(process.pid, signal.SIGSTOP)
        try:
            time.sleep(STATS_SETTLE_SECONDS)
            transactions, tables = self._database_stats()
        finally:
            for process in running:
                os.killpg(process.pid, signal.SIGCONT)
        meter = self.own_statements - 1  # the final read itself is not counted in what it reads
        script = self.script.transactions
        self.own.close()
        self.script.deactivate()
        database = transactions - self.transactions - meter - script
        written = {name: [after - before for after, before in zip(values, self.tables.get(name, [0] * 4), strict=True)]
                   for name, values in tables.items() if name.startswith(ENGINE_TABLES)}
        inserted, updated, hot, deleted = (sum(values[i] for values in written.values()) for i in range(4))
        worker, postgres = self.worker_seconds * 1000 / deliveries, self.postgres["worker"] * 1000 / deliveries
        return {
            "deliveries": deliveries,
            "cpu_worker_ms_per_delivery": worker,
            "cpu_postgres_ms_per_delivery": postgres,
            "cpu_total_ms_per_delivery": worker + postgres,
            "transactions_per_delivery": database / deliveries,
            "statements_per_delivery": self.statements / deliveries,
            "worker_transactions_per_delivery": self.worker_transactions / deliveries,
            "rows_written_per_delivery": (inserted + updated + deleted) / deliveries,
            "hot_update_share": hot / updated if updated else None,
            "cost_detail": {
                "wall_seconds": self.wall,
                "cpu_postgres_other_backends_ms_per_delivery": self.postgres["client"] * 1000 / deliveries,
                "cpu_postgres_server_processes_ms_per_delivery": self.postgres["server"] * 1000 / deliveries,
                "cpu_postgres_unseen_ms_per_delivery": self.postgres["unseen"] * 1000 / deliveries,
                "cpu_postgres_other_databases_ms_per_delivery": self.postgres["ignored"] * 1000 / deliveries,
                "backends_ended_during_run": self.postgres["ended"],
                "transactions_database": transactions - self.transactions,
                "transactions_meter": meter, "transactions_script": script,
                "statements_script": self.script_statements_at_stop,
                "engine_tables_per_delivery": {
                    name: dict(zip(("ins", "upd", "hot_upd", "del"), (v / deliveries for v in values), strict=True))
                    for name, values in sorted(written.items()) if any(values)},
            },
        }


def metered(row: dict, cost: dict | None) -> dict:
    """A result row with the cost fields of its scenario."""
    return {**row, **cost} if cost else row


# --- before and after -------------------------------------------------------------------------------
def _checkout(rev: str) -> tuple[Path, str, bool]:
    """(folder, label, made here): an existing folder as it is, else REV's tracked files via git archive."""
    if Path(rev).is_dir():
        return Path(rev).resolve(), str(rev), False
    commit = subprocess.run(["git", "rev-parse", "--verify", f"{rev}^{{commit}}"], cwd=common.BASE_DIR,
                            capture_output=True, text=True, check=True).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix=f"bench-against-{commit[:10]}-"))
    archive = subprocess.Popen(["git", "archive", "--format=tar", commit], cwd=common.BASE_DIR,
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(folder)], stdin=archive.stdout, check=True)
    if archive.wait():
        raise RuntimeError(f"git archive {commit} failed")
    return folder, f"{rev} ({commit[:10]})" if rev != commit else commit[:10], True


def _arguments_without(argv: list[str], *options: str) -> list[str]:
    kept, skip = [], False
    for argument in argv:
        if skip:
            skip = False
        elif argument in options:
            skip = True
        elif not any(argument.startswith(f"{option}=") for option in options):
            kept.append(argument)
    return kept


def against(script: str, argv: list[str], rev: str, json_path: Path | None) -> None:
    """Run `script argv` on REV's code and on this checkout, one after the other; report both and ratios."""
    folder, label, made = _checkout(rev)
    runs: dict[str, list[dict]] = {}
    try:
        for side, code in (("before", folder), ("after", common.BASE_DIR)):
            with tempfile.NamedTemporaryFile(suffix=".json") as part:
                print(f"--- {Path(script).stem}, {side}: {label if side == 'before' else 'this checkout'}", flush=True)
                done = subprocess.run([sys.executable, script, *_arguments_without(argv, "--against", "--json"),
                                       "--code-dir", str(code), "--json", part.name], cwd=common.BASE_DIR)
                text = Path(part.name).read_text()
                runs[side] = json.loads(text) if not done.returncode and text else [
                    common.row(f"{Path(script).stem}: the benchmark failed on {side}'s code (exit {done.returncode})",
                               0, "", passed=False)]
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
    common.report(compare(runs["before"], runs["after"], label), json_path,
                  header=f"before: {label}; after: this checkout ({Path(script).stem}, same arguments, one run each)")


COMPARED = ["cpu_worker_ms_per_delivery", "cpu_postgres_ms_per_delivery", "cpu_total_ms_per_delivery",
            "transactions_per_delivery", "statements_per_delivery", "worker_transactions_per_delivery",
            "rows_written_per_delivery", "hot_update_share"]


def _ratio(after: float | None, before: float | None) -> float | None:
    return after / before if after is not None and before else None


def compare(before: list[dict], after: list[dict], label: str) -> list[dict]:
    """Each row of both runs, and for each figure in both an "after / before" row: the value's ratio, and
    each cost field's."""
    earlier = {row["figure"]: row for row in before}
    rows = []
    for row in after:
        old = earlier.pop(row["figure"], None)
        if old is None:
            rows.append(row)
            continue
        rows += [{**old, "figure": f"before ({label}): {old['figure']}"}, row]
        ratio = common.row(f"after / before: {row['figure']}", _ratio(row["value"], old["value"]), "x",
                           note="" if "cpu_total_ms_per_delivery" not in row else "cost columns: after / before")
        ratio["compare"] = "after/before"
        if "cpu_total_ms_per_delivery" in row and "cpu_total_ms_per_delivery" in old:
            ratio.update({key: _ratio(row.get(key), old.get(key)) for key in COMPARED})
            ratio["deliveries"] = row["deliveries"]
        rows.append(ratio)
    rows += [{**old, "figure": f"before ({label}): {old['figure']}"} for old in earlier.values()]
    return rows
