"""Real Celery worker processes against a real broker and the test database (PostgreSQL), on each stack:
Redis (CELERY_BROKER_URL), RabbitMQ (CELERY_BROKER_URL_AMQP) and, for the modules that set THROUGH_PGBOUNCER,
Redis with the workers behind a private PgBouncer in transaction pooling (DATABASE_POOLER=transaction). In CI
(CI set) a stack that cannot be had fails the test; elsewhere it is skipped, with the reason."""
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from kombu import Connection

from tests.pgbouncer import PgBouncer, pgbouncer_binary
from tests.processes import group_kill, group_stop

BASE_DIR = Path(__file__).resolve().parents[2]
STACKS = ("redis", "amqp", "pgbouncer")


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll until condition() is truthy: waiting on an observable state, never on a fixed delay."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _database_url(port: int | None = None) -> str:
    """The test database's URL for a worker: PostgreSQL's own port, or the pooler's."""
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = "127.0.0.1" if port else db.get("HOST") or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{port or db.get('PORT') or 5432}/{db['NAME']}"


def _unavailable(reason: str) -> NoReturn:
    """In CI a stack that cannot be had fails the test (the suite must run on every stack); elsewhere it is skipped."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_generate_tests(metafunc) -> None:
    """Every end-to-end test on Redis and on RabbitMQ; those of a module with THROUGH_PGBOUNCER behind PgBouncer
    too; a module's STACKS, if it has one, instead."""
    if "stack" in metafunc.fixturenames:
        through_pgbouncer = getattr(metafunc.module, "THROUGH_PGBOUNCER", False)
        default = [s for s in STACKS if s != "pgbouncer" or through_pgbouncer]
        metafunc.parametrize("stack", getattr(metafunc.module, "STACKS", default), indirect=True)


@dataclass(frozen=True)
class Stack:
    """The broker and database a test's workers use: `env` is what a worker's environment gets for them."""

    name: str
    broker_url: str
    env: dict[str, str] = field(default_factory=dict)


def amqp_url() -> str:
    """CELERY_BROKER_URL_AMQP; under `pytest -n`, its virtual host with the test process's name appended (as each
    gets a Redis database of its own), which must exist (rabbitmqctl add_vhost; bash .ci/run makes the first)."""
    url = os.environ.get("CELERY_BROKER_URL_AMQP", "")
    if not url.startswith(("amqp://", "pyamqp://")):
        _unavailable("end-to-end tests on RabbitMQ need CELERY_BROKER_URL_AMQP=amqp://user:password@host:5672/vhost "
                     "(bash .ci/run sets it)")
    if (xdist := os.environ.get("PYTEST_XDIST_WORKER", "")).startswith("gw"):
        parts = urlsplit(url)
        vhost = parts.path[1:] if parts.path[1:] not in ("", "/") else "e2e"  # "/": the default vhost
        url = urlunsplit(parts._replace(path=f"/{vhost}-{xdist}"))
    try:
        with Connection(url, connect_timeout=3) as probe:
            probe.ensure_connection(max_retries=1)
    except Exception as error:  # noqa: BLE001 - kombu's and amqp's errors alike: refused, no vhost, no access
        _unavailable(f"RabbitMQ is unreachable at {Connection(url).as_uri()}: {error!r} (a missing virtual host: "
                     "rabbitmqctl add_vhost NAME; rabbitmqctl set_permissions -p NAME USER '.*' '.*' '.*')")
    return url


@pytest.fixture(scope="session")
def pgbouncer(tmp_path_factory) -> Iterator[PgBouncer]:
    """A private PgBouncer in transaction pooling in front of the test database's server, for the session."""
    binary = pgbouncer_binary()
    if binary is None:
        _unavailable("pgbouncer is not installed (apt-get install -y pgbouncer; or set PGBOUNCER to its path)")
    db = connection.settings_dict
    bouncer = PgBouncer(binary, tmp_path_factory.mktemp("pgbouncer"), db_host=db.get("HOST") or "127.0.0.1",
                        db_port=int(db.get("PORT") or 5432), user=db.get("USER") or "postgres",
                        password=db.get("PASSWORD") or "")
    yield bouncer
    bouncer.stop()  # before the test database is dropped: its server connections go with it


def queues_purge(*names: str) -> int:
    """Empty these queues of the broker the test uses (declared first: on RabbitMQ a queue no worker has
    declared yet does not exist); returns how many messages were removed."""
    removed = 0
    with current_app.connection_for_write() as broker:
        for name in names:
            queue = current_app.amqp.queues[name](broker.default_channel)
            queue.declare()
            removed += queue.purge() or 0
    return removed


@pytest.fixture
def stack(request) -> Iterator[Stack]:
    """The broker and database of this test's parameter; the test's own process sends to that broker too."""
    name = getattr(request, "param", "redis")  # tests elsewhere (tests/faults) get Redis
    if connection.vendor != "postgresql":
        pytest.skip("end-to-end tests need PostgreSQL and Redis (CI provides them: bash .ci/run)")
    if name == "amqp":
        broker_url = amqp_url()
    elif settings.CELERY_BROKER_URL.startswith("redis://"):
        broker_url = settings.CELERY_BROKER_URL
    else:
        pytest.skip("end-to-end tests need PostgreSQL and Redis (CI provides them: bash .ci/run)")
    env = {"DATABASE_URL": _database_url(), "CELERY_BROKER_URL": broker_url}
    if name == "pgbouncer":
        env.update(DATABASE_URL=_database_url(request.getfixturevalue("pgbouncer").port),
                   DATABASE_POOLER="transaction")
    with _broker_of_this_process(broker_url):
        yield Stack(name, broker_url, env)


@contextlib.contextmanager
def _broker_of_this_process(url: str) -> Iterator[None]:
    """The test process's Celery app on this broker meanwhile (Celery reads CELERY_BROKER_URL from the
    environment before its configuration), on the way in and back on the way out."""
    saved = os.environ.get("CELERY_BROKER_URL"), current_app.conf.broker_url
    _broker_use(url, url)
    try:
        yield
    finally:
        _broker_use(*saved)


def _broker_use(environ_url: str | None, conf_url: str | None) -> None:
    if environ_url is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = environ_url
    current_app.conf.broker_url = conf_url
    # Celery keeps its connection pool and its producer pool once made, and would go on publishing to the
    # other broker: both forgotten, to be looked up again for this one (as Celery does in a forked child,
    # _after_fork). Not closed: they are kombu's, per broker URL, and are found again when it comes back.
    current_app._pool = None
    current_app.amqp._producer_pool = None


class Worker:
    """One `celery worker` process (and its pool children), in its own process group so it can be killed."""

    def __init__(self, env: dict[str, str], concurrency: int, folder: Path, beat: bool = False) -> None:
        self.name = f"e2e-{uuid.uuid4().hex[:8]}@localhost"
        self.log = open(folder / f"{self.name}.log", "w")  # in the test's tmp_path: pytest keeps the last runs
        # With beat, the worker runs the pump itself (celery -B), as a one-machine deployment would.
        schedule = ["-B", "--schedule", str(folder / f"{self.name}-beat")] if beat else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "deliveries", "-n", self.name,
             "--concurrency", str(concurrency), "--loglevel", "INFO", "--without-mingle", "--without-gossip",
             *schedule],
            cwd=BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for(self._ready, timeout=60, what=f"worker {self.name} to answer a ping")
        except BaseException:
            self.stop()  # never leave a worker behind: it would take tasks from the next test
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker exited with {self.process.returncode}; see {self.log.name}")
        with current_app.connection_for_write() as connection:  # a new connection: pooled ones may be stale
            return bool(current_app.control.ping(destination=[self.name], timeout=0.5, connection=connection))

    def kill(self) -> None:
        """SIGKILL to the worker and its pool: nothing gets to clean up, as when a machine dies."""
        group_kill(self.process)

    def stop(self) -> None:
        group_stop(self.process)
        self.log.close()


@pytest.fixture
def start_worker(tmp_path, receiver, stack):
    """Start workers sharing this test's database, broker and settings; all are stopped afterwards."""
    queues_purge("deliveries")
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    env = {
        **os.environ,
        **stack.env,
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "WEBHOOK_ALLOW_LOOPBACK": "true",
        "WEBHOOK_ALLOWED_PORTS": "*",
        "EMAIL_URL": f"filemail:///{mail_dir}",  # four slashes: an absolute path
        "DATABASE_CONN_MAX_AGE": "0",
    }
    workers: list[Worker] = []

    def start(concurrency: int = 2, beat: bool = False, **settings_env: str) -> Worker:
        workers.append(Worker({**env, **settings_env}, concurrency, tmp_path, beat))
        return workers[-1]

    start.mail_dir = mail_dir
    start.env = env
    start.stack = stack
    yield start
    for worker in workers:
        worker.stop()
