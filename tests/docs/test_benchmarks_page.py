"""The benchmark and fault tables of the site show what the benchmarks wrote: every row of
docs/internals/benchmarks.md that comes from bench/results.json has the figure's value, baseline, ratio, target
and verdict as bench/results.json holds them (formatted as bench/table.py does), and the fault table of
docs/internals/faults.md is bench/faults.md's."""
import json
import re

from bench.cluster_report import markdown_table as cluster_table
from bench.common import COST_COLUMNS, cost_cell, number
from tests.docs.pages import ROOT, page, section

BENCHMARKS = "internals/benchmarks.md"
LATEST_FULL_RUN = "Render, rules, log scale, memory"
ISOLATION = "Isolation between organizations (issue 25)"
COST = "The cost of a delivery (issue 27)"
CLUSTER = "A cluster on one machine (issue 30)"
#: Measured on 2026-12-01 by the engine benchmarks one at a time, before bench/run.py wrote them to
#: bench/results.json; the page says so under the table.
NOT_IN_RESULTS = "Delivery engine v2 (issue 15)"


def results() -> dict:
    rows = json.loads((ROOT / "bench" / "results.json").read_text(encoding="utf-8"))["rows"]
    return {row["figure"]: row for row in rows}


def table_rows(text: str) -> list[list[str]]:
    """The body rows of the Markdown tables in text, as lists of cell texts."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("|") and not re.match(r"\|[-: |]+\|$", line.strip())]


def verdict(passed: bool | None) -> str:
    return "" if passed is None else "pass" if passed else "**miss**"


def assert_rows_are_results(rows: list[list[str]]) -> None:
    """Rows of a figure table (figure, value, baseline, ratio, target, verdict) as bench/results.json has them."""
    stored = results()
    for figure, value, baseline, ratio, target, shown in rows:
        assert figure in stored, f"{figure!r} is not in bench/results.json"
        row = stored[figure]
        expected_baseline = "" if row["baseline"] is None else f"{number(row['baseline'])} {row['unit']}"
        expected_ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        assert (value, baseline, ratio, target, shown) == (
            f"{number(row['value'])} {row['unit']}", expected_baseline, expected_ratio, row["target"],
            verdict(row["pass"])), figure


def test_the_latest_full_run_table_is_bench_results_json():
    rows = table_rows(section(page(BENCHMARKS), LATEST_FULL_RUN))
    assert rows[0] == ["figure", "value", "baseline", "ratio", "target", ""]
    assert_rows_are_results(rows[1:])
    assert len(rows) > 10


def test_the_cost_tables_are_bench_results_json():
    rows = table_rows(section(page(BENCHMARKS), COST))
    header = ["figure", "deliveries", *(label for _, label in COST_COLUMNS)]
    assert rows[0] == ["figure", "value", "baseline", "ratio", "target", ""] and header in rows
    figures, costs = rows[1:rows.index(header)], rows[rows.index(header) + 1:]
    assert_rows_are_results(figures)
    stored = results()
    for figure, deliveries, *cells in costs:
        assert figure in stored, f"{figure!r} is not in bench/results.json"
        row = stored[figure]
        assert deliveries == str(row.get("deliveries", "")), figure
        assert cells == [cost_cell(row, key) for key, _ in COST_COLUMNS], figure
    assert len(figures) > 20 and len(costs) >= 6


def test_the_isolation_table_is_bench_results_json():
    rows = table_rows(section(page(BENCHMARKS), ISOLATION))
    assert rows[0][:6] == ["A does", "A's deliveries (within 4 min after B)", "B's p50", "B's p99", "baseline p99",
                           "ratio"]
    stored = [row for figure, row in results().items() if figure.startswith("isolation: ")]
    assert len(rows) - 1 == len(stored), "one row per isolation scenario of bench/results.json"
    for (does, deliveries, p50, p99, baseline, ratio, target, shown), row in zip(rows[1:], stored, strict=True):
        b_part, _, a_part = row["note"].partition("; A: ")
        assert p99 == f"{row['value']:.2f} s", does
        assert p50 == re.search(r"p50 (\S+ s)", b_part).group(1), does
        assert baseline == ("" if row["baseline"] is None else f"{row['baseline']:.2f} s"), does
        assert ratio == ("" if row["ratio"] is None else f"{row['ratio']:.2f}"), does
        assert (target, shown.split(" ")[0]) == (row["target"], verdict(row["pass"])), does
        counts = set(re.findall(r"\d[\d,]*(?! s)\b", deliveries))
        assert counts <= set(re.findall(r"\d[\d,]*", a_part)), (does, deliveries, row["note"])


def test_the_cluster_table_is_bench_results_json():
    """The results table of bench/cluster.py as bench/cluster_report.py writes it from bench/results.json (the
    section's other table lists the hosts)."""
    lines = section(page(BENCHMARKS), CLUSTER).splitlines()
    expected = cluster_table(json.loads((ROOT / "bench" / "results.json").read_text(encoding="utf-8"))["rows"])
    assert len(expected) == 2 + 5, "one row per scenario of bench/cluster.py"
    assert expected[0] in lines, "the cluster table's header"
    start = lines.index(expected[0])
    assert lines[start:start + len(expected)] == expected
    assert not lines[start + len(expected)].startswith("|")


def test_a_table_not_in_bench_results_json_says_so():
    text = section(page(BENCHMARKS), NOT_IN_RESULTS)
    assert "not in `bench/results.json`" in text
    tables = [heading for heading in re.findall(r"^## (.+)$", page(BENCHMARKS), re.MULTILINE)
              if table_rows(section(page(BENCHMARKS), heading))]
    assert sorted(tables) == sorted([LATEST_FULL_RUN, ISOLATION, NOT_IN_RESULTS, COST, CLUSTER]), \
        "a new table: check it here too"


def test_the_fault_table_is_bench_faults_md():
    written = [line for line in (ROOT / "bench" / "faults.md").read_text(encoding="utf-8").splitlines()
               if line.startswith("|")]
    shown = [line for line in page("internals/faults.md").splitlines() if line.startswith("|")]
    assert written and shown == written
