"""A private PgBouncer in transaction pooling, in front of the test database, from the Debian binary.

Its configuration is the one docs/operate/scaling.md shows (CONFIG), with a port of its own and trust
authentication for the tests' local user.
"""
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

# What the scaling page documents, with {placeholders} for this machine.
CONFIG = """\
[databases]
* = host={db_host} port={db_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
; a client gone silent inside a transaction: its server connection is closed (rolled back, locks freed)
idle_transaction_timeout = 60
; dead peers on both sides (clients, and the server connections) are noticed within a minute
tcp_keepalive = 1
tcp_keepidle = 30
tcp_keepintvl = 10
tcp_keepcnt = 3
tcp_user_timeout = 60000
"""


def pgbouncer_binary() -> str | None:
    """PGBOUNCER if set, else pgbouncer on the PATH or where Debian's package puts it (/usr/sbin)."""
    if given := os.environ.get("PGBOUNCER"):
        return given if os.access(given, os.X_OK) else None
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class PgBouncer:
    """One pgbouncer process on 127.0.0.1:port; stop() ends it (and with it its server connections)."""

    def __init__(self, binary: str, folder: Path, *, db_host: str, db_port: int, user: str, password: str) -> None:
        self.port = _free_port()
        auth_file = folder / "userlist.txt"
        auth_file.write_text(f'"{user}" "{password}"\n')  # with trust, the password pgbouncer logs in with
        config = folder / "pgbouncer.ini"
        config.write_text(CONFIG.format(db_host=db_host, db_port=db_port, port=self.port, auth_file=auth_file))
        # pgbouncer refuses to run as root: it reads its files first, then becomes the user given with -u.
        run_as = ["-u", _unprivileged_user()] if os.geteuid() == 0 else []
        self.log_path = folder / "pgbouncer.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([binary, *run_as, str(config)], stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + 30
        while not _accepts(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pgbouncer did not start: {self.log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _unprivileged_user() -> str:
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("pgbouncer will not run as root, and neither postgres nor nobody exists to run it as")
