"""bench/cluster.py's smoke run: one scenario (a worker host killed, 300 deliveries) on a cluster of network
namespaces, about 40 s. It needs root, iproute2, util-linux, Redis and PostgreSQL's server binaries; it is
skipped where those are missing or namespaces cannot be made (an unprivileged container)."""
import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cluster_hosts import PREFIX

ROOT = Path(__file__).resolve().parents[2]


def cluster_unavailable() -> str:
    """Why no cluster can be built here, or an empty string."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    missing = [tool for tool in ("ip", "unshare", "runuser", "redis-server") if not shutil.which(tool)]
    if missing or not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        return f"missing: {', '.join(missing) or 'PostgreSQL server binaries'}"
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode:
        return "this environment refuses new network namespaces"
    return ""


UNAVAILABLE = cluster_unavailable()


@pytest.mark.skipif(bool(UNAVAILABLE), reason=UNAVAILABLE)
def test_a_killed_worker_host_loses_nothing_and_the_cluster_is_removed(tmp_path):
    out = tmp_path / "rows.json"
    env = {name: value for name, value in os.environ.items() if name != "PYTEST_XDIST_WORKER"}  # its own broker
    run = subprocess.run([sys.executable, "bench/cluster.py", "--quick", "--only", "killed", "--n", "300",
                          "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    [row] = json.loads(out.read_text())
    measured = row["cluster"]
    assert (measured["deliveries"], measured["delivered"], measured["lost"], measured["success_twice"]) == (
        300, 300, 0, 0)
    assert measured["duplicates"] <= measured["duplicates_bound"]
    assert measured["takeover_s"] <= measured["takeover_bound_s"]
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"{PREFIX}-" not in namespaces
