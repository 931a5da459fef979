"""The results of bench/run.py as a Markdown table (for docs/internals/benchmarks.md).

    .venv/bin/python bench/table.py [bench/results.json]
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import BASE_DIR, COST_COLUMNS, cost_cell, number


def markdown(results: dict) -> str:
    info = results["machine"]
    lines = [
        f"{info['date']}, {'quick' if results['quick'] else 'full'} run: {info['cores']} cores ({info['cpu']}), "
        f"{info['memory_gib']} GiB, Python {info['python']}, {info['postgresql']}, "
        f"{info['redis'].split(' sha=')[0]}, receiver nginx.",
        "",
        "| figure | value | baseline | ratio | target | |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in results["rows"]:
        verdict = "" if r["pass"] is None else "pass" if r["pass"] else "**miss**"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
        baseline = f"{number(r['baseline'])} {r['unit']}" if r["baseline"] is not None else ""
        lines.append(f"| {r['figure']} | {number(r['value'])} {r['unit']} | {baseline} | {ratio} | "
                     f"{r['target']} | {verdict} |")
    return "\n".join(lines + cost_table(results["rows"])) + "\n"


def cost_table(rows: list[dict]) -> list[str]:
    """The cost per delivery of the metered rows (bench/cost.py), as a table of its own."""
    metered = [r for r in rows if "cpu_total_ms_per_delivery" in r]
    if not metered:
        return []
    lines = ["", "Cost per delivery (bench/cost.py; after / before rows: ratios):", "",
             "| figure | deliveries | " + " | ".join(label for _, label in COST_COLUMNS) + " |",
             "|---|---:|" + "---:|" * len(COST_COLUMNS)]
    for r in metered:
        lines.append(f"| {r['figure']} | {r.get('deliveries', '')} | "
                     + " | ".join(cost_cell(r, key) for key, _ in COST_COLUMNS) + " |")
    return lines


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else BASE_DIR / "bench" / "results.json"
    print(markdown(json.loads(path.read_text())), end="")
