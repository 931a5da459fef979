"""No single scheduler (issue 30), with real processes on each stack (Redis, RabbitMQ, PostgreSQL directly and
behind PgBouncer in transaction pooling): two `celery beat` send each run of every periodic job once between
them, and when the host of the worker whose embedded beat (`-B`, as the Procfile runs it) sent the last run
dies, the other worker's sends the next ones."""
import datetime
import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from celery import current_app
from django.db.models import Sum
from django.db.models.functions import Now

from dispatcher.models import PeriodicJob
from tests.e2e.conftest import BASE_DIR, wait_for
from tests.processes import group_stop

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
THROUGH_PGBOUNCER = True  # the claims are single statements: they work in transaction pooling too

PUMP = "dispatcher-pump"
FAST = {"WEBHOOK_PUMP_INTERVAL": "0.1"}  # a run every 100 ms: many due times within seconds


class Beat:
    """One `celery beat` process, as an operator would run several."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO"],
                cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def runs_sent(self) -> list[tuple[str, int, str]]:
        """(job, run, task) of every run this process logged as sent."""
        sent = []
        for line in self.log().splitlines():
            if "periodic job " in line and " sent (task " in line:
                job, rest = line.split("periodic job ", 1)[1].split(": run ", 1)
                sent.append((job, int(rest.split()[0]), rest.split("(task ", 1)[1].split(",")[0]))
        return sent

    def stop(self) -> None:
        group_stop(self.process)


@pytest.fixture
def start_beat(start_worker, tmp_path):
    """`celery beat` processes on this test's database and broker (start_worker's environment); no worker
    takes their messages, so the test counts them in the broker."""
    beats: list[Beat] = []

    def start(**settings_env: str) -> Beat:
        beats.append(Beat({**start_worker.env, **settings_env}, tmp_path / f"beat-{len(beats)}.log"))
        return beats[-1]

    yield start
    for beat in beats:
        beat.stop()


def pump_runs() -> int:
    return PeriodicJob.objects.filter(name=PUMP).values_list("runs", flat=True).first() or 0


def queued_tasks() -> Counter:
    """The task names of the messages waiting in the deliveries queue (taken off it)."""
    names: Counter = Counter()
    with current_app.connection_for_write() as broker:
        while (message := broker.default_channel.basic_get(queue="deliveries", no_ack=True)) is not None:
            names[message.headers["task"]] += 1
    return names


def test_two_beat_processes_send_each_run_once(start_beat):
    beats = [start_beat(**FAST), start_beat(**FAST)]
    wait_for(lambda: all("synced with CELERY_BEAT_SCHEDULE" in beat.log() for beat in beats), timeout=60,
             what="both beats to start")
    first = wait_for(pump_runs, timeout=60, what="a first run of the pump")
    wait_for(lambda: pump_runs() >= first + 30, timeout=60, what="30 more runs of the pump")
    assert all(beat.process.poll() is None for beat in beats)

    # No run is due any more: a claim taken before this statement still sends its task, none after it can.
    PeriodicJob.objects.update(due_at=Now() + datetime.timedelta(hours=1))
    claimed = PeriodicJob.objects.aggregate(total=Sum("runs"))["total"]
    wait_for(lambda: sum(len(beat.runs_sent()) for beat in beats) == claimed, timeout=30,
             what="every run claimed to be logged as sent")
    for beat in beats:
        beat.stop()

    sent = [run for beat in beats for run in beat.runs_sent()]
    runs = dict(PeriodicJob.objects.values_list("name", "runs"))
    for name, count in runs.items():
        assert sorted(run for job, run, _ in sent if job == name) == list(range(1, count + 1)), name
    assert queued_tasks() == Counter(task for _, _, task in sent)  # one message per run, none more


def test_when_the_host_whose_scheduler_ran_last_dies_another_runs_the_next(start_worker):
    workers = [start_worker(beat=True, **FAST), start_worker(beat=True, **FAST)]
    job = wait_for(lambda: PeriodicJob.objects.filter(name=PUMP, runs__gte=3).first(), timeout=60,
                   what="the pump to run")
    host, pid = job.last_host.rsplit(":", 1)
    assert host == socket.gethostname()
    [victim] = [worker for worker in workers if worker.process.pid == os.getpgid(int(pid))]  # its embedded beat
    victim.kill()  # SIGKILL to the worker and its beat: the host is gone

    after_kill = PeriodicJob.objects.get(name=PUMP)
    later = wait_for(lambda: PeriodicJob.objects.filter(name=PUMP, runs__gte=after_kill.runs + 3)
                     .exclude(last_host=job.last_host).first(), timeout=60, what="another scheduler to run the pump")
    [survivor] = [worker for worker in workers if worker is not victim]
    assert os.getpgid(int(later.last_host.rsplit(":", 1)[1])) == survivor.process.pid
    assert later.last_run_at > after_kill.last_run_at
