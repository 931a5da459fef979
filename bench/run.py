"""All benchmarks in one command: one table of ratios against baselines measured in the same run.

    .venv/bin/python bench/run.py [--quick] [--only render rules ...] [--out FILE] [--against REV]

Each benchmark runs in its own process (they use their own databases: throw-away SQLite, or PostgreSQL
databases webhooks_bench, webhooks_isolation, webhooks_latency, webhooks_lone, webhooks_logscale,
webhooks_memory, webhooks_slow, recreated) and writes its
rows as JSON; this prints them as one table (figure, value, baseline, ratio, target, pass/fail) and
writes them to --out with a description of the machine. Needs PostgreSQL and Redis on 127.0.0.1 for all
but render and rules; nginx (apt-get install nginx-light) for the receiver. The engine benchmarks
(throughput, slow_receiver, latency, lone) also report the cost per delivery (bench/cost.py), printed and
written as a second table; with --against REV they run on REV's code too, and report both with ratios.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common, cost
from bench.table import markdown

BENCHMARKS = ["render", "rules", "throughput", "slow_receiver", "isolation", "latency", "lone", "logscale", "memory"]


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next((int(line.split()[1]) // 1024 // 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), 0)

    def version(*command: str) -> str:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "not found"

    return {"date": datetime.date.today().isoformat(), "cores": os.cpu_count(), "cpu": cpu, "memory_gib": memory,
            "python": platform.python_version(), "postgresql": version("psql", "--version"),
            "redis": version("redis-server", "--version"), "nginx": version("nginx", "-v") or "installed"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small runs, a few minutes in all")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default bench/results.json; --quick: var/bench-quick.json)")
    parser.add_argument("--against", metavar="REV", help="the engine benchmarks also on REV's code (a commit, or "
                                                         "a folder with another checkout), reported with ratios")
    args = parser.parse_args()
    out = args.out or (common.BASE_DIR / ("var/bench-quick.json" if args.quick else "bench/results.json"))
    rows, timings = [], {}
    for name in args.only:
        with tempfile.NamedTemporaryFile(suffix=".json") as part:
            command = [sys.executable, str(common.BASE_DIR / "bench" / f"{name}.py"), "--json", part.name,
                       *(["--against", args.against] if args.against and name in cost.METERED else [])]
            started = time.monotonic()
            print(f"--- {name}", flush=True)
            result = subprocess.run(command + (["--quick"] if args.quick else []), cwd=common.BASE_DIR)
            timings[name] = round(time.monotonic() - started, 1)
            text = Path(part.name).read_text()
            if result.returncode or not text:
                rows.append(common.row(f"{name}: the benchmark failed (exit {result.returncode})", 0, "", passed=False))
                continue
            rows.extend(json.loads(text))
    info = machine()
    print(f"\n{info['date']}: {info['cores']} cores ({info['cpu']}), {info['memory_gib']} GiB, Python {info['python']}, "
          f"{info['postgresql']}, {info['redis']}; {'quick' if args.quick else 'full'} run, seconds: {timings}")
    common.print_table(rows)
    common.print_cost_table(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"machine": info, "quick": args.quick, "seconds": timings, "rows": rows}
    out.write_text(json.dumps(results, indent=2))
    out.with_suffix(".md").write_text(markdown(results))
    print(f"\nwritten to {out} and {out.with_suffix('.md')} (the table of docs/internals/benchmarks.md)")


if __name__ == "__main__":
    main()
