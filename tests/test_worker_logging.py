"""LOG_FORMAT=json reaches the Celery worker too (issue 16): its lines are JSON objects like the web's."""
import json
import subprocess
import threading

from tests.e2e.conftest import wait_for
from tests.processes import ROOT, process_env


def test_the_celery_worker_logs_json_lines_with_log_format_json(tmp_path):
    env = process_env(tmp_path / "db.sqlite3", LOG_FORMAT="json")
    # A queue nobody sends to: the worker starts, says so, and takes nobody's tasks.
    worker = subprocess.Popen(["celery", "-A", "config", "worker", "--pool", "solo", "-Q", "log-format-probe",
                               "--loglevel", "INFO", "--without-mingle", "--without-gossip", "-n", "probe@%h"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(worker.stdout.readline, "")), daemon=True).start()
    try:
        ready = wait_for(lambda: [line for line in lines if "ready" in line], timeout=60, what="the worker to start")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    record = json.loads(ready[0])
    assert record["level"] == "INFO" and "ready" in record["message"] and record["logger"].startswith("celery")
