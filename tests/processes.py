"""Python processes on a SQLite file of their own, configured by config/settings.py as command 1 is."""
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SETTINGS = """
import django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()
from django.db import connection, transaction
"""


def process_env(database: Path, **extra_env: str) -> dict[str, str]:
    """This environment for a process of the product's own: a SQLite file of its own, none of the test
    process's per-worker or link settings, and the virtual environment's commands (gunicorn, celery) first."""
    env = {key: value for key, value in os.environ.items()
           if key not in {"DATABASE_URL", "PYTEST_XDIST_WORKER", "SITE_URL", "API_BASE_URL", "PORT"}}
    env.update(DATABASE_URL=f"sqlite:///{database}",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **extra_env)
    return env


def python(code: str, *args: str, database: Path, **extra_env: str) -> subprocess.Popen:
    env = process_env(database, **extra_env)
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def group_kill(process: subprocess.Popen) -> None:
    """SIGKILL to a process started with start_new_session and every process of its group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def group_stop(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM to the group, then SIGKILL if it is still there after grace seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            group_kill(process)
