"""No single scheduler (issue 30): every process that runs beat claims each job's run in the database
(config/scheduler.py, dispatcher/ops/periodic.py), so several of them send each due run once, and any one goes on
alone. Here schedulers run in this process, on a Celery app of their own whose messages stay in memory (kombu's
memory transport) where the test counts them; tests/e2e/test_no_single_scheduler.py runs real beat processes.
"""
import datetime
import json
import subprocess
import sys
import threading
import uuid

import pytest
from celery import Celery
from celery.schedules import crontab
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone

from config.celery import app as project_app
from config.scheduler import ClaimingScheduler
from dispatcher.models import PeriodicJob
from tests.processes import ROOT, SETTINGS, process_env

pytestmark = pytest.mark.django_db


@pytest.fixture
def beat_app():
    """A Celery app whose schedule the test sets, sending to a queue of its own in this process's memory."""
    app = Celery("scheduler-tests", set_as_current=False)
    app.conf.broker_url = "memory://"
    app.queue = f"periodic-{uuid.uuid4().hex[:8]}"
    app.conf.beat_schedule = {"probe": {"task": "tests.probe", "schedule": 60.0, "options": {"queue": app.queue}}}
    yield app
    app.close()


def sent(app: Celery) -> list[str]:
    """The tasks sent to the app's queue since the last call (taken off the queue)."""
    names = []
    with app.connection_for_write() as broker:
        channel = broker.default_channel
        channel.queue_declare(queue=app.queue)
        while (message := channel.basic_get(queue=app.queue, no_ack=True)) is not None:
            names.append(message.headers["task"])
    return names


def make_due(name: str = "probe") -> None:
    """Time passes: the job's due time is now (the database's clock, as the schedulers read it)."""
    assert PeriodicJob.objects.filter(name=name).update(due_at=Now()) == 1


def test_the_table_is_synced_from_celery_beat_schedule_when_a_scheduler_starts():
    ClaimingScheduler(app=project_app)
    jobs = dict(PeriodicJob.objects.values_list("name", "interval_seconds"))
    assert jobs == {name: float(entry["schedule"]) for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
    assert jobs["dispatcher-pump"] == settings.WEBHOOK_PUMP_INTERVAL


def test_a_changed_schedule_changes_the_table(beat_app):
    ClaimingScheduler(app=beat_app)
    first = PeriodicJob.objects.get(name="probe")
    beat_app.conf.beat_schedule = {"probe": {"task": "tests.probe", "schedule": 3600.0},
                                   "new": {"task": "tests.new", "schedule": 5.0}}
    ClaimingScheduler(app=beat_app)
    probe, new = PeriodicJob.objects.order_by("name").reverse()
    assert (probe.interval_seconds, probe.due_at) == (3600.0, first.due_at)  # not due later than it was
    assert new.interval_seconds == 5.0 and new.due_at <= timezone.now()  # due at once
    PeriodicJob.objects.filter(name="probe").update(due_at=Now() + datetime.timedelta(hours=1))
    beat_app.conf.beat_schedule = {"probe": {"task": "tests.probe", "schedule": 10.0}}
    ClaimingScheduler(app=beat_app)
    probe = PeriodicJob.objects.get(name="probe")
    assert probe.interval_seconds == 10.0
    assert probe.due_at <= timezone.now() + datetime.timedelta(seconds=10)  # within the shorter interval
    # "new" is not this scheduler's, but it may be another's (a rolling deploy): kept until nobody runs it.
    assert PeriodicJob.objects.filter(name="new").exists()
    PeriodicJob.objects.filter(name="new").update(due_at=Now() - datetime.timedelta(days=2))
    ClaimingScheduler(app=beat_app)
    assert list(PeriodicJob.objects.values_list("name", flat=True)) == ["probe"]


def test_an_older_scheduler_starting_late_does_not_stop_the_new_jobs_and_a_lost_row_comes_back(beat_app):
    beat_app.conf.beat_schedule = {"probe": {"task": "tests.probe", "schedule": 60.0, "options": {"queue": beat_app.queue}},
                                   "new": {"task": "tests.new", "schedule": 60.0, "options": {"queue": beat_app.queue}}}
    new_version = ClaimingScheduler(app=beat_app)
    old_app = Celery("scheduler-tests-old", set_as_current=False)
    old_app.conf.broker_url = "memory://"
    old_app.conf.beat_schedule = {"probe": {"task": "tests.probe", "schedule": 60.0}}
    ClaimingScheduler(app=old_app)  # restarted after the new ones: its schedule lacks "new"
    assert sorted(PeriodicJob.objects.values_list("name", flat=True)) == ["new", "probe"]
    new_version.tick()
    assert sorted(sent(beat_app)) == ["tests.new", "tests.probe"]
    PeriodicJob.objects.filter(name="new").delete()  # gone all the same (by hand)
    new_version.tick()
    assert PeriodicJob.objects.filter(name="new").exists() and sent(beat_app) == ["tests.new"]
    old_app.close()


def test_a_crontab_entry_is_refused_at_start(beat_app):
    beat_app.conf.beat_schedule = {"nightly": {"task": "tests.nightly", "schedule": crontab(hour=3, minute=0)}}
    with pytest.raises(ImproperlyConfigured, match="'nightly'.*not an interval"):
        ClaimingScheduler(app=beat_app)


def test_two_schedulers_send_each_due_run_once_and_either_goes_on_alone(beat_app):
    first, second = ClaimingScheduler(app=beat_app), ClaimingScheduler(app=beat_app)
    second.host = "other-host:1"
    assert first.tick() > 0 and second.tick() > 0
    assert sent(beat_app) == ["tests.probe"]
    assert PeriodicJob.objects.get().last_host == first.host
    assert first.tick() > 0 and second.tick() > 0 and sent(beat_app) == []  # not due again yet

    make_due()
    assert second.tick() > 0 and first.tick() > 0
    assert sent(beat_app) == ["tests.probe"]
    assert PeriodicJob.objects.get().last_host == "other-host:1"

    for _ in range(3):  # the first one's host died: the other sends every run from now on
        make_due()
        second.tick()
        assert sent(beat_app) == ["tests.probe"]


def test_the_next_run_is_one_interval_after_the_due_time_and_the_wait_says_when(beat_app):
    scheduler = ClaimingScheduler(app=beat_app)
    due_at = PeriodicJob.objects.get().due_at
    wait = scheduler.tick()
    job = PeriodicJob.objects.get()
    assert (job.due_at - due_at).total_seconds() == 60.0
    assert 0 < wait <= 30.0  # ClaimingScheduler.max_interval: it looks again within half a minute
    assert job.last_run_at >= due_at


def test_a_run_whose_task_cannot_be_sent_is_due_again(beat_app):
    beat_app.conf.beat_schedule["probe"]["options"]["serializer"] = "not-installed"
    scheduler = ClaimingScheduler(app=beat_app)
    before = PeriodicJob.objects.get()
    assert scheduler.tick() == scheduler.retry_seconds
    after = PeriodicJob.objects.get()
    assert (after.due_at, after.last_run_at, after.last_host) == (before.due_at, None, "")
    assert sent(beat_app) == []


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_schedulers_ticking_at_the_same_moment_send_a_due_run_once(beat_app):
    """Threads with connections of their own race for the same due run, round after round."""
    if connection.vendor != "postgresql":
        pytest.skip("threads share no in-memory SQLite test database; the SQLite race runs in processes below")
    rounds, schedulers = 20, [ClaimingScheduler(app=beat_app) for _ in range(3)]
    start, done = threading.Barrier(len(schedulers) + 1), threading.Barrier(len(schedulers) + 1)

    def run(scheduler: ClaimingScheduler) -> None:
        try:
            for _ in range(rounds):
                start.wait(timeout=30)
                scheduler.tick()
                done.wait(timeout=30)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(scheduler,)) for scheduler in schedulers]
    for thread in threads:
        thread.start()
    sent(beat_app)
    per_round = []
    for _ in range(rounds):
        make_due()
        start.wait(timeout=30)
        done.wait(timeout=30)
        per_round.append(len(sent(beat_app)))
    for thread in threads:
        thread.join(timeout=30)
    assert per_round == [1] * rounds


SQLITE_SCHEDULER = SETTINGS + """
import sys
from config.celery import app
from config.scheduler import ClaimingScheduler
from dispatcher.models import PeriodicJob
if sys.argv[1] == "create":
    with connection.schema_editor() as editor:
        editor.create_model(PeriodicJob)
    sys.exit(0)
if sys.argv[1] == "runs":
    with app.connection_for_write() as broker:
        print(PeriodicJob.objects.get().runs, broker.default_channel.queue_declare(queue="probe", passive=True)
              .message_count)
    sys.exit(0)
app.conf.beat_schedule = {"probe": {"task": "tests.probe", "schedule": 0.005, "options": {"queue": "probe"}}}
scheduler = ClaimingScheduler(app=app)
print("ready", flush=True)
sys.stdin.readline()  # the test says go when both processes are ready
for _ in range(int(sys.argv[1])):
    scheduler.tick()
"""


def test_on_sqlite_and_the_file_system_broker_two_scheduler_processes_send_each_due_run_once(tmp_path):
    """Command 1's embedded default: a SQLite file and the file-system broker, shared by two processes that
    start ticking together, as fast as they can, on a job due every 5 ms."""
    env = process_env(tmp_path / "db.sqlite3", VAR_DIR=str(tmp_path / "var"), CELERY_BROKER_URL="filesystem://",
                      DJANGO_DEBUG="true")

    def start(*args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", SQLITE_SCHEDULER, *args], cwd=ROOT, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    create = start("create")
    assert create.communicate(timeout=120) and create.returncode == 0
    processes = [start("150") for _ in range(2)]
    for process in processes:
        assert process.stdout.readline() == "ready\n", process.communicate(timeout=60)[1][-3000:]
    results = [process.communicate("go\n", timeout=300) for process in processes]
    for process, (_, err) in zip(processes, results, strict=True):
        assert process.returncode == 0 and "database is locked" not in err, err[-3000:]
    runs = [int(line.split(": run ")[1].split()[0]) for _, err in results for line in err.splitlines()
            if "periodic job probe: run " in line]
    total = start("runs").communicate(timeout=120)[0].split()
    assert sorted(runs) == list(range(1, int(total[0]) + 1))  # every run claimed was sent, by one process only
    assert int(total[1]) == len(runs)  # and its message is in the broker
    assert all("periodic job probe: run " in err for _, err in results)  # both took runs: they raced


def test_periodic_jobs_shows_each_jobs_last_run_and_who_ran_it(beat_app, capsys):
    call_command("periodic_jobs")
    assert "No periodic jobs yet" in capsys.readouterr().out
    scheduler = ClaimingScheduler(app=beat_app)
    scheduler.tick()
    call_command("periodic_jobs", "--json")
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["name"], row["interval_seconds"], row["last_host"]) == ("probe", 60.0, scheduler.host)
    call_command("periodic_jobs")
    table = capsys.readouterr().out
    assert "probe" in table and scheduler.host in table
