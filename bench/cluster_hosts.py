"""The test hosts of bench/cluster.py: Linux network namespaces on one machine, each with a veth link to a
bridge in a switch namespace of its own, and the processes started in them.

    switch (whcl-sw: bridge br0) ── ctl ── the root namespace (this script: 10.77.0.1, the control host)
                                 ── db, broker, w1, w2, beat, recv (10.77.0.x; recv also 11.77.0.20)

The bridge lives in its own namespace, so the root namespace's firewall (br_netfilter) never sees the
cluster's traffic, and no host has a route beyond the cluster's two networks: traffic stays between the
namespaces. The receiver's second address is one the delivery engine's address guard accepts (a global
address; private and documentation ones are refused), routed only on the bridge.

A host's link goes down on the switch's side (the host's own interface stays up, without a carrier): packets
are dropped without an error, as in a network partition; its processes live on. Killing a host kills every
process in its namespace (`ip netns pids`). Everything this module creates carries the whcl- prefix; one run
at a time (a lock file), so the leftovers of a run that could not clean up (SIGKILL) are removed at the next
start. Needs root, iproute2 and util-linux (unshare, runuser).
"""
import contextlib
import fcntl
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "whcl"
SWITCH = f"{PREFIX}-sw"
CONTROL_LINK = f"{PREFIX}-ctl"
NETWORK = "10.77.0"
CONTROL_ADDRESS = f"{NETWORK}.1"
PUBLIC_NETWORK = "11.77.0"  # the receiver's "internet" address: global, so the address guard lets it through
LOCK_FILE = (Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")) / f"{PREFIX}-cluster.lock"


@dataclass
class Host:
    """One test host: a network namespace, its address, and the processes started in it."""

    name: str
    address: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def namespace(self) -> str:
        return f"{PREFIX}-{self.name}"


def ip(*arguments: str) -> str:
    return subprocess.run(["ip", *arguments], check=True, capture_output=True, text=True).stdout


def namespace_pids(namespace: str) -> list[int]:
    try:
        return [int(pid) for pid in ip("netns", "pids", namespace).split()]
    except subprocess.CalledProcessError:  # the namespace is gone
        return []


def namespace_kill(namespace: str) -> None:
    """SIGKILL to every process in the namespace, until none is left (a dying parent may have forked)."""
    for _ in range(100):
        pids = namespace_pids(namespace)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)  # the kernel reaps them: poll until the namespace is empty
    raise RuntimeError(f"processes in {namespace} survive SIGKILL: {namespace_pids(namespace)}")


def leftovers_remove() -> None:
    """Namespaces and the control link of an earlier run that was killed before it could clean up."""
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(f"{PREFIX}-"):
            namespace_kill(name)
            ip("netns", "del", name)
    with contextlib.suppress(subprocess.CalledProcessError):
        ip("link", "del", CONTROL_LINK)


class Cluster:
    """The namespaces, links and processes of one run; teardown() removes all of it."""

    def __init__(self, hosts: list[Host], folder: Path) -> None:
        self.hosts = {host.name: host for host in hosts}
        self.folder = folder
        self.lock = open(LOCK_FILE, "w")
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another bench/cluster.py run holds {LOCK_FILE}") from None
        self.built = False

    def build(self) -> None:
        leftovers_remove()
        self.built = True
        ip("netns", "add", SWITCH)
        ip("-n", SWITCH, "link", "set", "lo", "up")
        ip("-n", SWITCH, "link", "add", "br0", "type", "bridge")
        ip("-n", SWITCH, "link", "set", "br0", "up")
        ip("link", "add", CONTROL_LINK, "type", "veth", "peer", "name", "ctl", "netns", SWITCH)
        ip("-n", SWITCH, "link", "set", "ctl", "master", "br0", "up")
        ip("addr", "add", f"{CONTROL_ADDRESS}/24", "dev", CONTROL_LINK)
        ip("link", "set", CONTROL_LINK, "up")
        for host in self.hosts.values():
            ip("netns", "add", host.namespace)
            ip("-n", host.namespace, "link", "set", "lo", "up")
            ip("-n", host.namespace, "link", "add", "eth0", "type", "veth", "peer", "name", host.name,
               "netns", SWITCH)
            ip("-n", SWITCH, "link", "set", host.name, "master", "br0", "up")
            ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.namespace, "link", "set", "eth0", "up")
            ip("-n", host.namespace, "route", "add", f"{PUBLIC_NETWORK}.0/24", "dev", "eth0")

    def public_address_add(self, host_name: str, last_byte: int) -> str:
        """A second, global address for a host (the receiver), reachable from the others over the bridge."""
        address = f"{PUBLIC_NETWORK}.{last_byte}"
        ip("-n", self.hosts[host_name].namespace, "route", "del", f"{PUBLIC_NETWORK}.0/24", "dev", "eth0")
        ip("-n", self.hosts[host_name].namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        return address

    def start(self, host_name: str, command: str, env: dict[str, str], log_name: str,
              cwd: Path) -> subprocess.Popen:
        """A shell command (a Procfile line: the shell expands ${VAR:-default}) in the host's namespace, with a
        UTS namespace of its own whose host name is the host's (Celery's default node name is celery@<host>)."""
        host = self.hosts[host_name]
        log = open(self.folder / f"{log_name}.log", "a")
        process = subprocess.Popen(
            ["ip", "netns", "exec", host.namespace, "unshare", "--uts", "sh", "-c",
             f"hostname {host.name} && exec {command}"],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        log.close()  # the child has its own descriptor
        host.processes.append(process)
        return process

    def kill(self, host_name: str) -> None:
        """Every process in the host's namespace killed (SIGKILL), as when the machine dies."""
        host = self.hosts[host_name]
        namespace_kill(host.namespace)
        for process in host.processes:
            process.wait()
        host.processes.clear()

    def alive(self, host_name: str) -> bool:
        return any(process.poll() is None for process in self.hosts[host_name].processes)

    def link(self, host_name: str, up: bool) -> None:
        """The host's link at the switch: down drops its packets silently (a partition), up restores it."""
        ip("-n", SWITCH, "link", "set", host_name, "up" if up else "down")

    def teardown(self) -> None:
        """Every process killed, every namespace deleted (their veth links go with them)."""
        if self.built:
            for host in reversed(self.hosts.values()):  # the workers before the servers they would log about
                with contextlib.suppress(subprocess.CalledProcessError, RuntimeError):
                    self.kill(host.name)
            leftovers_remove()
            self.built = False
        self.lock.close()
