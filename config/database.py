"""The database connection's options, from the settings config/settings.py reads (the environment is read
there only, so the configuration reference lists every variable).

- SQLite (the embedded default): web, worker and scheduler share one file: wait for locks instead of failing.
  A transaction takes the write lock when it begins (IMMEDIATE): a deferred one that reads, then writes,
  fails at once when another process writes, instead of waiting. WAL lets readers go on while one writes.
- PostgreSQL: a process whose connection dies without a word (a host crash, a network partition) would keep
  the rows it had locked for as long as the server keeps its session (hours), and other workers' claims
  (SKIP LOCKED) would pass them by. The server ends a session idle inside a transaction after
  DATABASE_IDLE_IN_TRANSACTION_TIMEOUT, which rolls it back and frees its rows (docs/operate/scaling.md): no
  transaction of the product waits on a receiver between two statements. Keepalives and tcp_user_timeout let
  a process notice a database it cannot reach instead of waiting on it forever. Behind a pooler the session
  timeouts cannot be sent (a pooler refuses startup options: they are refused here, to be set on the role); in
  transaction pooling
  Django's iterator() must not open a WITH HOLD cursor, which would outlive the transaction the pooler lends.
"""
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

SQLITE = "django.db.backends.sqlite3"
POSTGRESQL = "django.db.backends.postgresql"


def database_prepare(database: dict[str, Any], *, pooler: str, keepalives: tuple[int, int, int],
                     idle_in_transaction_timeout: float, statement_timeout: float, tcp_user_timeout: float) -> None:
    """Fill in the OPTIONS of a DATABASES entry (what DATABASE_URL gave wins) for its engine."""
    options = database.setdefault("OPTIONS", {})
    if database["ENGINE"] == SQLITE:
        Path(database["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        options.setdefault("timeout", 20)
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("init_command", "PRAGMA journal_mode=WAL;")
    elif database["ENGINE"] == POSTGRESQL:
        given = options.get("options", "")  # `?options=-c …` in DATABASE_URL wins for what it names
        timeouts = {"idle_in_transaction_session_timeout": idle_in_transaction_timeout,
                    "statement_timeout": statement_timeout}  # seconds; 0 leaves the server's (or the role's)
        startup = [f"-c {name}={max(1, round(seconds * 1000))}" for name, seconds in timeouts.items()
                   if seconds > 0 and name not in given]
        if startup and pooler:
            raise ImproperlyConfigured(
                "DATABASE_IDLE_IN_TRANSACTION_TIMEOUT and DATABASE_STATEMENT_TIMEOUT cannot be sent through a pooler "
                f"(DATABASE_POOLER={pooler}: PgBouncer refuses startup options): set them on the role instead "
                "(ALTER ROLE … SET idle_in_transaction_session_timeout = …) and leave them 0 here.")
        if startup:
            options["options"] = " ".join([given, *startup]).strip()
        options.setdefault("keepalives", 1)
        options.setdefault("keepalives_idle", keepalives[0])
        options.setdefault("keepalives_interval", keepalives[1])
        options.setdefault("keepalives_count", keepalives[2])
        options.setdefault("tcp_user_timeout", round(1000 * tcp_user_timeout))
        if pooler == "transaction":
            database["DISABLE_SERVER_SIDE_CURSORS"] = True
