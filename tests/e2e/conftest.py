"""A real Celery worker process against the real broker (Redis) and the test database (PostgreSQL)."""
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]


def wait_for(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition"):
    """Poll until condition() is truthy: waiting on an observable state, never on a fixed delay."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _database_url() -> str:
    db = connection.settings_dict
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


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
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def start_worker(tmp_path, receiver):
    """Start workers sharing this test's database, broker and settings; all are stopped afterwards."""
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("end-to-end tests need PostgreSQL and Redis (CI provides them: bash .ci/run)")
    with current_app.connection_for_write() as broker:
        broker.default_channel.queue_purge("deliveries")
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
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
    yield start
    for worker in workers:
        worker.stop()
