"""The web tier's limit against slow clients, as docs/operate/security.md states it (issue 25): in one gunicorn
process of WEB_THREADS threads, a client trickling its headers holds a thread until it is done (gunicorn has no
header deadline), a client that sends nothing holds one for gunicorn's first-bytes wait only, so fewer
tricklers than threads leave the site answering, and the trickled requests are still answered in the end."""
import socket
import subprocess
import threading

import pytest
import requests

from tests.e2e.conftest import wait_for
from tests.processes import ROOT, process_env
from tests.test_web_process import free_port, procfile_command

THREADS = 3


@pytest.fixture
def small_web(tmp_path):
    """gunicorn as the Procfile starts it, with one process of THREADS threads, so the limit is exact."""
    port = free_port()
    env = process_env(tmp_path / "db.sqlite3", PORT=str(port), BIND="127.0.0.1", WEB_CONCURRENCY="1",
                      WEB_THREADS=str(THREADS))
    process = subprocess.Popen(procfile_command("web"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def answering():
        try:
            return requests.get(f"{base}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(answering, timeout=60, what="gunicorn to answer")
        yield base, port
    finally:
        process.terminate()
        process.wait(timeout=30)


def answer_of(sock: socket.socket) -> bytes:
    sock.settimeout(30)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_fewer_tricklers_than_threads_and_silent_clients_leave_the_site_answering(small_web):
    base, port = small_web
    tricklers = []
    for _ in range(THREADS - 1):  # each holds a thread for as long as it keeps its headers coming
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
        tricklers.append(sock)
    silent = socket.create_connection(("127.0.0.1", port))  # holds the last thread 5 s, then is put aside
    try:
        for _ in range(3):
            assert requests.get(f"{base}/healthz", timeout=30).json()["checks"]["database"] == "ok"
        answers: list[bytes] = []
        for sock in tricklers:  # the held requests finish and are answered
            sock.sendall(b"bc\r\nConnection: close\r\n\r\n")
        threads = [threading.Thread(target=lambda s=sock: answers.append(answer_of(s))) for sock in tricklers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(answers) == len(tricklers) and all(a.startswith(b"HTTP/1.1 200") for a in answers), answers
    finally:
        for sock in [*tricklers, silent]:
            sock.close()
