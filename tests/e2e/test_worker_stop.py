"""Ctrl-C on command 1 (issue 26): honcho sends SIGTERM to the worker's process group and SIGKILLs it after
KILL_WAIT seconds. A worker asked to stop while a drain holds requests in flight ends within that grace,
says what it did, and leaves every delivery it held stored or claimable again at once (not only after its
lease has run out)."""
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from honcho.manager import KILL_WAIT
from werkzeug import Response

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery.claims import deliveries_claim
from dispatcher.models import Delivery, DeliveryStatus
from tests.e2e.conftest import BASE_DIR, queues_purge, wait_for
from tests.factories import webhook_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

HELD = 3  # deliveries in flight when the worker is asked to stop


def procfile_command(name: str) -> str:
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"the Procfile has no {name} process")


class HoldingReceiver:
    """A receiver that holds every request until released (as one that hangs would), counting arrivals. It
    answers one request at a time: the others wait for it, in flight as far as the worker can tell."""

    def __init__(self, httpserver) -> None:
        self.arrived = 0
        self.release = threading.Event()
        self.lock = threading.Lock()
        httpserver.expect_request("/hold").respond_with_handler(self.handle)

    def handle(self, request) -> Response:
        with self.lock:
            self.arrived += 1
        self.release.wait(timeout=60)
        return Response("ok")


class ProcfileProcess:
    """A Procfile process started as honcho starts it: through a shell, in a session (process group) of its
    own, its output read from a pipe. Like honcho, it counts as stopped when that pipe closes, that is when
    every process of the group that holds it (the worker and its pool) has exited."""

    def __init__(self, command: str, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        log_path.write_bytes(b"")
        self.ended = threading.Event()
        self.popen = subprocess.Popen(command, shell=True, cwd=BASE_DIR, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._copy_output, daemon=True).start()

    def _copy_output(self) -> None:
        with open(self.log_path, "ab") as log:
            for line in iter(self.popen.stdout.readline, b""):
                log.write(line)
                log.flush()
        self.ended.set()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal_group(self, signum: int) -> None:
        """As honcho does: to the whole process group."""
        try:
            os.killpg(self.popen.pid, signum)
        except ProcessLookupError:
            pass


@pytest.fixture
def procfile_worker(receiver, tmp_path, stack):
    """The Procfile's worker process, on this test's database and broker."""
    queues_purge("deliveries", "celery")
    env = {**os.environ, **stack.env, "DJANGO_SECRET_KEY": settings.SECRET_KEY, "WEBHOOK_ALLOW_LOOPBACK": "true",
           "WEBHOOK_ALLOWED_PORTS": "*", "DATABASE_CONN_MAX_AGE": "0", "WORKER_CONCURRENCY": "1", "EMAIL_URL": "consolemail://"}
    worker = ProcfileProcess(procfile_command("worker"), env, tmp_path / "worker.log")
    try:
        wait_for(lambda: worker.ended.is_set() or " ready." in worker.log(), timeout=90,
                 what="the worker to be ready")
        assert not worker.ended.is_set(), worker.log()
        yield worker
    finally:
        if not worker.ended.is_set():
            worker.signal_group(signal.SIGKILL)
            worker.ended.wait(timeout=10)


def test_a_worker_asked_to_stop_hands_back_what_it_holds_within_honchos_grace(procfile_worker, receiver, modules,
                                                                              owner):
    worker = procfile_worker
    holding = HoldingReceiver(receiver)
    webhook = webhook_create(module=modules["Deals"], name="Hanging", url=receiver.url_for("/hold"))
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Stop"})
    with transaction.atomic():
        deliveries = delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(webhook, deal)
                                                         for _ in range(HELD)])
    ids = {d.pk for d in deliveries}
    try:
        wait_for(lambda: holding.arrived and Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.DISPATCHED)
                 .count() == HELD, timeout=60, what="the drain to have every delivery in flight")
        worker.signal_group(signal.SIGTERM)  # what honcho does on Ctrl-C
        if not worker.ended.wait(timeout=KILL_WAIT):
            pytest.fail(f"the worker was still running {KILL_WAIT} s after SIGTERM, when honcho SIGKILLs it:\n"
                        + worker.log()[-3000:])
    finally:
        holding.release.set()

    log = worker.log()
    assert f" drain.stop given_back={HELD} " in log, log[-3000:]
    stored = set(Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.SUCCESS).values_list("pk", flat=True))
    claimable = {pk for pk, _ in deliveries_claim(now=timezone.now(), limit=100)}
    assert stored | claimable == ids and not stored & claimable
    assert not Delivery.objects.filter(pk__in=claimable).exclude(attempts=None).exists()  # no attempt stored twice


def test_an_idle_worker_asked_to_stop_exits_within_honchos_grace(procfile_worker):
    """Its pool processes wait for the pool to close instead of dying of the group's SIGTERM, which could
    leave the main process waiting at exit for a lock a dead pool process held."""
    worker = procfile_worker
    worker.signal_group(signal.SIGTERM)
    if not worker.ended.wait(timeout=KILL_WAIT):
        pytest.fail(f"the idle worker was still running {KILL_WAIT} s after SIGTERM:\n" + worker.log()[-3000:])
    assert "worker.stopping how=Warm" in worker.log()
