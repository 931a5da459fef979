"""`celery` with every SQL statement of its processes counted, for the benchmarks' cost meter (bench/cost.py).

    .venv/bin/python bench/metered_worker.py -A config worker ...   (the arguments of `celery`)

The benchmarks start workers through this instead of `python -m celery` (bench/common.py's Workers), so
that the product needs no benchmark hook: before Celery starts, psycopg's Cursor.execute and executemany
(and the async ones) are wrapped to count each statement, whoever sends it (Django's cursors, raw
connections, a LISTEN connection of the engine's own); the pool processes inherit the wrapping when they
fork. Each process keeps its counts in a file of its own, <BENCH_METER_DIR>/<pid>, two 64-bit integers
in shared memory (statements, transactions), which the benchmark reads while the worker runs; with
BENCH_SQL_LOG set, each statement is also appended to that file as one line (time, pid, "T" when it
began a transaction, the SQL on one line), for bench/lone.py's listing.

A transaction is counted when a statement is sent while its connection has none open (autocommit, or the
first statement after which psycopg has sent BEGIN): what PostgreSQL counts too. BEGIN and COMMIT, which
psycopg sends itself, are not statements here; a COPY, and the FETCHes of a server-side cursor, are not
counted.

This file imports nothing of the benchmarks or of the product: bench/cost.py may run a worker from
another checkout of the project (--against), whose bench/ is older.
"""
import mmap
import os
import struct
import sys
import threading
import time
from pathlib import Path

COUNTS = struct.Struct("qq")  # statements, transactions
IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open on the connection
_active: list["StatementCounter"] = []  # the counters every statement of this process is shown to
_unwrapped: dict = {}  # psycopg's own methods, while they are wrapped


class StatementCounter:
    """Counts the statements this process sends and the transactions they begin; in shared memory when
    given a folder (one file per process, made again after a fork), else in this object. Statements on
    the connection `skip` (the meter's own) are left out."""

    def __init__(self, folder: str | None = None, log: str | None = None, skip: object = None) -> None:
        self.folder, self.log, self.skip = folder, log, skip
        self.pid = 0
        self.counts: mmap.mmap | None = None
        self.log_fd = -1
        self.lock = threading.Lock()
        self.statements = self.transactions = 0

    def _for_this_process(self) -> None:
        self.pid = os.getpid()
        self.statements = self.transactions = 0
        if self.folder:
            descriptor = os.open(os.path.join(self.folder, str(self.pid)), os.O_RDWR | os.O_CREAT, 0o644)
            os.ftruncate(descriptor, COUNTS.size)
            self.counts = mmap.mmap(descriptor, COUNTS.size)
            os.close(descriptor)
        if self.log:
            self.log_fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def seen(self, connection, query, many: int) -> None:
        if connection is self.skip:
            return
        begins = connection.info.transaction_status == IDLE
        with self.lock:
            if self.pid != os.getpid():  # the first statement of this process (a pool process forked since)
                self._for_this_process()
            self.statements += many
            self.transactions += begins
            if self.counts is not None:
                COUNTS.pack_into(self.counts, 0, self.statements, self.transactions)
        if self.log_fd >= 0:
            text = " ".join((query.decode(errors="replace") if isinstance(query, bytes) else str(query)).split())
            os.write(self.log_fd, f"{time.time():.6f}\t{self.pid}\t{'T' if begins else ''}\t{text}\n".encode())

    def activate(self) -> None:
        _wrap_psycopg()
        _active.append(self)

    def deactivate(self) -> None:
        _active.remove(self)
        if not _active:
            for (cursor_class, name), method in _unwrapped.items():
                setattr(cursor_class, name, method)
            _unwrapped.clear()


def _seen(cursor, query, many: int) -> None:
    for counter in _active:
        counter.seen(cursor.connection, query, many)


def _wrap_psycopg() -> None:
    """While a counter is active, psycopg's cursors show each statement to the counters before sending it."""
    import psycopg

    if _unwrapped:
        return
    for cursor_class in (psycopg.Cursor, psycopg.AsyncCursor):
        for name in ("execute", "executemany"):
            _unwrapped[cursor_class, name] = cursor_class.__dict__[name]
    _unwrapped[psycopg.ServerCursor, "execute"] = psycopg.ServerCursor.__dict__["execute"]
    execute, executemany = psycopg.Cursor.execute, psycopg.Cursor.executemany
    execute_async, executemany_async = psycopg.AsyncCursor.execute, psycopg.AsyncCursor.executemany
    execute_server = psycopg.ServerCursor.execute  # Django's QuerySet.iterator(): DECLARE (its FETCHes not seen)

    def counted_execute(self, query, params=None, **kwargs):
        _seen(self, query, 1)
        return execute(self, query, params, **kwargs)

    def counted_executemany(self, query, params_seq, **kwargs):
        params_seq = list(params_seq)
        _seen(self, query, len(params_seq))
        return executemany(self, query, params_seq, **kwargs)

    def counted_execute_server(self, query, params=None, **kwargs):
        _seen(self, query, 1)
        return execute_server(self, query, params, **kwargs)

    async def counted_execute_async(self, query, params=None, **kwargs):
        _seen(self, query, 1)
        return await execute_async(self, query, params, **kwargs)

    async def counted_executemany_async(self, query, params_seq, **kwargs):
        params_seq = list(params_seq)
        _seen(self, query, len(params_seq))
        return await executemany_async(self, query, params_seq, **kwargs)

    psycopg.Cursor.execute, psycopg.Cursor.executemany = counted_execute, counted_executemany
    psycopg.AsyncCursor.execute, psycopg.AsyncCursor.executemany = counted_execute_async, counted_executemany_async
    psycopg.ServerCursor.execute = counted_execute_server


def _new_locks() -> None:
    for counter in _active:  # a lock held by another thread at the fork would never be released in the child
        counter.lock = threading.Lock()


os.register_at_fork(after_in_child=_new_locks)


def read_counts(folder: str | Path) -> dict[int, tuple[int, int]]:
    """(statements, transactions) of each process that sent a statement, by pid, as they are now."""
    counts = {}
    for path in Path(folder).iterdir():
        data = path.read_bytes()
        if path.name.isdigit() and len(data) == COUNTS.size:
            counts[int(path.name)] = COUNTS.unpack(data)
    return counts


def main() -> None:
    sys.path[0] = os.getcwd()  # the project's code (the worker's cwd), not bench/, as `python -m celery` has it
    StatementCounter(os.environ["BENCH_METER_DIR"], os.environ.get("BENCH_SQL_LOG") or None).activate()
    from celery.__main__ import main as celery

    sys.argv[0] = "celery"
    celery()


if __name__ == "__main__":
    main()
