"""No process runs without debug on keys that ship with the source, and `check --deploy` is clean with the
production settings docs/operate/deployment.md documents (issue 16). Each runs the real commands in processes of
their own."""
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from config.keys import INSECURE_SECRET_KEY
from tests.processes import ROOT, process_env

SHIPPED = INSECURE_SECRET_KEY
PRODUCTION = {
    "DJANGO_SECRET_KEY": "a-long-random-production-key-" + "x9Kq2" * 10, "WEBHOOK_SECRETS_KEYS": "",
    "DJANGO_ALLOWED_HOSTS": "crm.example.com", "DJANGO_CSRF_TRUSTED_ORIGINS": "https://crm.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "true", "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_BEHIND_TLS_PROXY": "true", "DJANGO_DEBUG": "false",
}


def run(command: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, env=process_env(tmp_path / "db.sqlite3", **env), capture_output=True,
                          text=True, timeout=180)


@pytest.mark.parametrize(("env", "refused"), [
    ({"DJANGO_SECRET_KEY": SHIPPED}, "dispatcher.E001"),
    ({"WEBHOOK_SECRETS_KEYS": ""}, "dispatcher.E002"),
    ({"WEBHOOK_EGRESS_PROXY": "socks5://proxy.internal:1080"}, "dispatcher.E003"),
])
def test_management_commands_and_check_deploy_refuse_known_keys(tmp_path, env, refused):
    for command in (["check"], ["check", "--deploy"], ["migrate", "--no-input"]):
        done = run([sys.executable, "manage.py", *command], tmp_path,
                   **{**PRODUCTION, "WEBHOOK_SECRETS_KEYS": Fernet.generate_key().decode(), **env})
        assert done.returncode != 0 and refused in done.stderr, (command, done.stderr[-2000:])


@pytest.mark.parametrize("command", [
    ["gunicorn", "config.wsgi", "--config", "config/gunicorn.py"],
    ["celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO"],
    ["celery", "-A", "config", "beat", "--schedule", "{tmp}/beat-schedule"],
])
def test_the_web_and_celery_processes_refuse_to_start_on_the_shipped_key(tmp_path, command):
    command = [part.replace("{tmp}", str(tmp_path)) for part in command]
    done = run(command, tmp_path, **{**PRODUCTION, "DJANGO_SECRET_KEY": SHIPPED, "PORT": "0",
                                     "WEB_CONCURRENCY": "1", "WEBHOOK_SECRETS_KEYS": Fernet.generate_key().decode()})
    assert done.returncode != 0
    assert "refuses to start: DJANGO_SECRET_KEY is the default shipped with the source." in done.stdout + done.stderr


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    done = run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path,
               **{**PRODUCTION, "WEBHOOK_SECRETS_KEYS": Fernet.generate_key().decode()})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "System check identified no issues" in done.stdout


def test_debug_lets_a_development_checkout_start_on_the_shipped_key(tmp_path):
    done = run([sys.executable, "manage.py", "check"], tmp_path, DJANGO_DEBUG="true", DJANGO_SECRET_KEY=SHIPPED,
               WEBHOOK_SECRETS_KEYS="")
    assert done.returncode == 0, done.stderr[-2000:]
