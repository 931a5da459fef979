"""What bench/cluster.py measured, as one table: printed, as bench rows (bench/results.json), and as the
Markdown table of docs/internals/benchmarks.md ("A cluster on one machine"), which
tests/docs/test_benchmarks_page.py compares with bench/results.json through markdown_table()."""
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.table import markdown

PREFIX = "cluster: "


@dataclass
class Result:
    """One scenario: deliveries made; delivered (Success, and answered 200 by the receiver); lost; deliveries
    whose log has more than one Success attempt; duplicates (requests the receiver answered 200 beyond the
    first per delivery) and their bound (the claims the faulted hosts held when the fault began: the others send
    those again); the time from the fault until everything Dispatched at it had ended (the takeover), with its
    bound (lease + idle_in_transaction_session_timeout), or to the next Success."""

    scenario: str
    deliveries: int
    delivered: int
    lost: int
    success_twice: int
    duplicates: int
    duplicates_bound: int | None
    takeover_s: float | None
    takeover_bound_s: float | None
    note: str = ""
    name: str = ""  # the scenario's name on bench/cluster.py's command line

    @property
    def passed(self) -> bool:
        return (self.lost == 0 and self.success_twice == 0
                and (self.duplicates_bound is None or self.duplicates <= self.duplicates_bound)
                and (self.takeover_bound_s is None
                     or (self.takeover_s is not None and self.takeover_s <= self.takeover_bound_s)))


def target(result: Result) -> str:
    parts = ["0 lost", "Success once"]
    if result.duplicates_bound is not None:
        parts.append("dup. <= bound")
    if result.takeover_bound_s is not None:
        parts.append("takeover <= bound")
    return ", ".join(parts)


def row(result: Result) -> dict:
    """A bench row (bench/common.py's fields) with the scenario's numbers under "cluster"."""
    return {"figure": f"{PREFIX}{result.scenario}", "value": result.lost, "unit": "lost", "baseline": None,
            "ratio": None, "target": target(result), "pass": result.passed, "note": result.note,
            "cluster": asdict(result)}


def result_of(stored: dict) -> Result:
    return Result(**stored["cluster"])


def cells(result: Result) -> list[str]:
    duplicates = f"{result.duplicates:,}"
    if result.duplicates_bound is not None:
        duplicates += f" (<= {result.duplicates_bound:,})"
    takeover = "never" if result.takeover_s is None else f"{result.takeover_s:.1f} s"
    if result.takeover_bound_s is not None:
        takeover += f" (<= {result.takeover_bound_s:g} s)"
    return [result.scenario, f"{result.deliveries:,}", f"{result.delivered:,}", f"{result.lost:,}", duplicates,
            f"{result.success_twice:,}", takeover, "pass" if result.passed else "**FAIL**"]


HEADER = ["scenario", "deliveries", "delivered", "lost", "duplicates (bound)", "Success twice",
          "takeover (bound)", ""]


def markdown_table(rows: list[dict]) -> list[str]:
    """The cluster rows of bench/results.json as the page's table."""
    lines = ["| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * 6 + "---|"]
    return lines + ["| " + " | ".join(cells(result_of(r))) + " |" for r in rows if r["figure"].startswith(PREFIX)]


def print_table(results: list[Result]) -> None:
    widths = [46, 10, 9, 5, 18, 13, 20, 6]
    print(" ".join(f"{title[:width]:{width}}" for title, width in zip(HEADER, widths, strict=True)))
    for result in results:
        shown = [cell.replace("**", "") for cell in cells(result)]
        print(" ".join(f"{cell[:width]:{width}}" for cell, width in zip(shown, widths, strict=True)))
        if result.note:
            print(f"    {result.note}")


def results_merge(path: Path, rows: list[dict], seconds: float) -> None:
    """Into bench/results.json (and bench/results.md), replacing the cluster rows of an earlier run."""
    results = json.loads(path.read_text())
    results["rows"] = [r for r in results["rows"] if not r["figure"].startswith(PREFIX)] + rows
    results.setdefault("seconds", {})["cluster"] = round(seconds, 1)
    path.write_text(json.dumps(results, indent=2))
    path.with_suffix(".md").write_text(markdown(results))
