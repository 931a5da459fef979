"""The monitoring reference (docs/operate/monitoring.md): every metric /metrics exports, listed from the metric
objects of dispatcher/ops/metrics.py (what DispatcherCollector.describe() yields, no database), inside the
hand-written text of docs/_templates/monitoring.md.in. A metric added to the collector without
`python scripts/docs_generate.py` fails tests/docs/test_monitoring_reference.py, which scrapes a real /metrics.
"""
from pathlib import Path

from dispatcher.ops.metrics import METRICS, DispatcherCollector, MetricSpec
from dispatcher.models.usage import LATENCY_BUCKETS_MS

TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "_templates" / "monitoring.md.in"
MARKER = "<!-- metrics -->"
# The names a family's samples have in the text format, by type.
SAMPLE_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def exposed_names(spec: MetricSpec) -> list[str]:
    """The sample names Prometheus sees for this metric (a counter's with _total, a histogram's three)."""
    family = spec.family()
    return [family.name + suffix for suffix in SAMPLE_SUFFIXES.get(family.type, ("",))]


def _row(spec: MetricSpec, in_organization_view: bool) -> str:
    family = spec.family()
    labels = ", ".join(f"`{label}`" for label in spec.labels)
    if family.type == "histogram":  # the bounds collect() gives, in seconds
        labels = f"`le`: {', '.join(f'{bound / 1000:g}' for bound in LATENCY_BUCKETS_MS)}, +Inf (seconds)"
    names = "<br>".join(f"`{name}`" for name in exposed_names(spec))
    meaning = family.documentation.replace("|", "\\|")
    return f"| {names} | {family.type} | {labels or '—'} | {meaning} | {'yes' if in_organization_view else 'no'} |"


def metrics_table() -> str:
    """One row per metric, in the order /metrics gives them."""
    described = [family.name for family in DispatcherCollector().describe()]
    organization_view = {family.name for family in DispatcherCollector(organizations=set()).describe()}
    specs = {spec.family().name: spec for spec in METRICS}
    rows = [_row(specs[name], name in organization_view) for name in described]
    return "\n".join(["| Metric | Type | Labels | Meaning | In an organization's view |", "|---|---|---|---|---|", *rows])


def monitoring_page() -> str:
    """docs/operate/monitoring.md: the template's text with the metrics table."""
    return TEMPLATE.read_text(encoding="utf-8").replace(MARKER, metrics_table())
