"""What runs on the test hosts of bench/cluster.py: PostgreSQL (the Debian binaries, a data folder of the run's
own), Redis (no persistence: a restart is empty), the 100 ms receiver, and the Procfile's worker and beat
commands, as written there, so a change to the Procfile (a scheduler in every worker) is what the cluster runs.
"""
import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from cryptography.fernet import Fernet

from bench.cluster_hosts import Cluster

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE = "webhooks"

# The database host's postgresql.conf: sessions a worker host left inside a transaction (partitioned, or
# frozen) end after 5 s, freeing their rows; the server's keepalives end the idle sessions of a host it cannot
# reach after 5 + 5 x 3 = 20 s (a 10 s cut of the database's own link survives them).
POSTGRES_CONF = {
    "idle_in_transaction_session_timeout": "5s",
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
    "max_connections": "100",
}


def postgres_binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise SystemExit("PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin)")
    return Path(found[-1]).parent


def wait_port(address: str, port: int, process: subprocess.Popen, what: str, timeout: float = 60) -> None:
    """Until something accepts connections there; the process that should listen must not have exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection((address, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} does not listen on {address}:{port}")


def postgres_start(cluster: Cluster, folder: Path) -> str:
    """initdb in a folder of the run's own, then the server on the database host; returns DATABASE_URL."""
    binaries, data = postgres_binaries(), folder / "db"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    subprocess.run(["runuser", "-u", "postgres", "--", str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
                   check=True, capture_output=True)
    host = cluster.hosts["db"]
    settings = {"listen_addresses": f"'{host.address}'", "port": "5432", "unix_socket_directories": f"'{data}'",
                **POSTGRES_CONF}
    with open(data / "postgresql.conf", "a") as conf:
        conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
    with open(data / "pg_hba.conf", "a") as hba:
        hba.write(f"host all all {host.address.rsplit('.', 1)[0]}.0/24 trust\n")
    process = cluster.start("db", f"runuser -u postgres -- {binaries / 'postgres'} -D {data}", dict(os.environ),
                            "db", BASE_DIR)
    wait_port(host.address, 5432, process, "PostgreSQL")
    url = f"postgres://postgres@{host.address}:5432"
    for _ in range(100):  # listening before it accepts logins: the startup is still running
        try:
            with psycopg.connect(f"{url}/postgres", autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {DATABASE}")
            return f"{url}/{DATABASE}"
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL on {host.address} does not accept logins; see {folder}/db.log")


def redis_start(cluster: Cluster, folder: Path) -> str:
    """Redis on the broker host, without persistence: after a restart it is empty. Returns the broker URL."""
    host = cluster.hosts["broker"]
    (folder / "broker").mkdir(exist_ok=True)
    process = cluster.start("broker", f"redis-server --bind {host.address} --port 6379 --save '' --appendonly no "
                                      f"--protected-mode no --dir {folder / 'broker'}", dict(os.environ), "broker",
                            BASE_DIR)
    wait_port(host.address, 6379, process, "Redis")
    return f"redis://{host.address}:6379/0"


def receiver_start(cluster: Cluster, folder: Path) -> tuple[str, Path]:
    """The 100 ms receiver on its global address, port 80; returns its base URL and its request log."""
    address = cluster.public_address_add("recv", 20)
    log = folder / "receiver-requests.log"
    process = cluster.start("recv", f"{sys.executable} {BASE_DIR / 'bench' / 'cluster_receiver.py'} {address} 80 "
                                    f"{log}", dict(os.environ), "receiver", BASE_DIR)
    wait_port(address, 80, process, "the receiver")  # from the root namespace: the route goes over the bridge
    return f"http://{address}", log


def product_keys() -> dict[str, str]:
    """The keys every host shares (a cluster has no var/ in common)."""
    return {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "WEBHOOK_SECRETS_KEYS": Fernet.generate_key().decode()}


def procfile_command(name: str) -> str | None:
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    return None


def host_env(env: dict[str, str], folder: Path, host_name: str) -> dict[str, str]:
    """The product's environment on a host: its own VAR_DIR (schedule file, file logs), the virtualenv first."""
    var_dir = folder / host_name
    var_dir.mkdir(mode=0o700, exist_ok=True)
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return {**env, "VAR_DIR": str(var_dir), "PATH": path}


def worker_start(cluster: Cluster, folder: Path, env: dict[str, str], host_name: str) -> None:
    """The Procfile's worker line, unchanged, on a worker host (node name celery@<host>)."""
    command = procfile_command("worker")
    if command is None:
        raise SystemExit("the Procfile has no worker line")
    cluster.start(host_name, command, host_env(env, folder, host_name), host_name, BASE_DIR)


def beat_start(cluster: Cluster, folder: Path, env: dict[str, str]) -> bool:
    """The Procfile's beat line on the beat host; False when the Procfile has none (every worker schedules)."""
    command = procfile_command("beat")
    if command is None:
        return False
    cluster.start("beat", command, host_env(env, folder, "beat"), "beat", BASE_DIR)
    return True


def workers_answer(app, cluster: Cluster, hosts: list[str], timeout: float = 120) -> None:
    """Until the worker of every named host answers a ping through the broker (celery@<host>); a worker that
    exited fails at once, with its log's name."""
    names, deadline = [f"celery@{host}" for host in hosts], time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited := [host for host in hosts if not cluster.alive(host)]:
            raise RuntimeError(f"the worker of {exited} exited; see {cluster.folder}/<host>.log")
        try:
            with app.connection_for_write() as connection:  # a new connection: pooled ones may be stale
                if len(app.control.ping(destination=names, timeout=0.5, connection=connection)) == len(names):
                    return
        except OSError:  # the broker restarting
            time.sleep(0.2)
    raise RuntimeError(f"workers {names} did not answer a ping within {timeout:g} s")
