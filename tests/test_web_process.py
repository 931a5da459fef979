"""The web process as the Procfile starts it (gunicorn with config/gunicorn.py), attacked from outside (issue 16):
slow clients do not stall it, and its access log never holds an API key."""
import shlex
import socket
import subprocess
import threading

import pytest
import requests

from tests.e2e.conftest import wait_for
from tests.processes import ROOT, process_env


def procfile_command(name: str) -> list[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return shlex.split(line.split(":", 1)[1])
    raise AssertionError(f"no {name} process in the Procfile")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def web(tmp_path):
    """gunicorn on a port of its own and a SQLite file of its own; its output collected line by line."""
    port = free_port()
    env = process_env(tmp_path / "db.sqlite3", PORT=str(port), BIND="127.0.0.1")
    process = subprocess.Popen(procfile_command("web"), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()
    base = f"http://127.0.0.1:{port}"

    def answering():
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(answering, timeout=60, what="gunicorn to answer")
        yield base, port, lines
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_slow_clients_do_not_stall_the_web_process(web):
    base, port, _ = web
    slow = []
    for _ in range(4):  # more than the sync workers it replaced, each holding a half-sent request
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(sock)
    slow.append(socket.create_connection(("127.0.0.1", port)))  # and one that says nothing at all
    try:
        for _ in range(3):
            assert requests.get(f"{base}/healthz", timeout=10).json()["checks"]["database"] == "ok"
    finally:
        for sock in slow:
            sock.close()


def test_the_access_log_holds_no_query_string(web):
    base, _, lines = web
    requests.get(f"{base}/healthz", params={"zapikey": "crm_leaked-key-123"}, timeout=10,
                 headers={"Referer": f"{base}/api/v1/records/Deals/?zapikey=crm_leaked-key-456"})
    logged = wait_for(lambda: [line for line in lines if '"GET /healthz' in line], what="the access log line")
    assert all("crm_leaked" not in line for line in lines), logged
    assert " 200 " in logged[0]
