"""Every pool or none: a worker starts with prefork (the Procfile's) or solo, and refuses a pool that runs
several drain loops in one process (threads, gevent, eventlet), which would share one sender pool and drop
each other's results (docs/internals/design/worker-pools.md)."""
import subprocess

import pytest
from celery.concurrency import get_implementation

from config.celery import worker_pool_refusal
from tests.processes import ROOT, process_env


@pytest.mark.parametrize("name", ["prefork", "processes", "solo"])
def test_prefork_and_solo_are_accepted(name):
    assert worker_pool_refusal(get_implementation(name)) is None
    assert worker_pool_refusal(name) is None  # as worker_pool names it


@pytest.mark.parametrize("name", ["threads", "gevent", "eventlet"])
def test_a_pool_that_shares_a_process_between_drain_loops_is_refused_by_name(name):
    assert worker_pool_refusal(name).startswith(f"The Celery worker refuses to start with the {name} pool")


def test_a_worker_started_with_the_threads_pool_exits_and_says_which_pool_to_use(tmp_path):
    """The real command: it must exit on its own (a worker that started would run until the timeout)."""
    done = subprocess.run(
        ["celery", "-A", "config", "worker", "-P", "threads", "-Q", "pool-refusal-probe", "--loglevel", "INFO"],
        cwd=ROOT, env=process_env(tmp_path / "db.sqlite3"), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "The Celery worker refuses to start with the threads pool" in output, output[-2000:]
    assert "Start it with -P prefork (the Procfile's default" in output
    assert "celery@" not in done.stdout  # it never got as far as its banner
