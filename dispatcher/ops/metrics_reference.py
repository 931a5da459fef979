"""The monitoring reference (docs/operate/monitoring.md): every metric /metrics exports, listed from the metric
objects of dispatcher/ops/metrics.py (what DispatcherCollector.describe() yields, no database), and every log
event with its fields, listed from dispatcher/ops/logs.py, inside the hand-written text of
docs/_templates/monitoring.md.in. A metric added to the collector without `python scripts/docs_generate.py` fails
tests/docs/test_monitoring_reference.py, which scrapes a real /metrics; an event, tests/dispatcher/test_log_events.py.
"""
from pathlib import Path

from dispatcher.ops.logs import EVENTS, FIELDS
from dispatcher.ops.metrics import METRICS, DispatcherCollector, MetricSpec
from dispatcher.models.usage import LATENCY_BUCKETS_MS

TEMPLATE = Path(__file__).resolve().parents[2] / "docs" / "_templates" / "monitoring.md.in"
MARKER = "<!-- metrics -->"
LOG_EVENTS_MARKER = "<!-- log-events -->"
LOG_FIELDS_MARKER = "<!-- log-fields -->"
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


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def log_events_table() -> str:
    """One row per event, in the order of EVENTS."""
    rows = [f"| `{e.name}` | {e.level.upper()}{' + traceback' if e.traceback else ''} | "
            f"{', '.join(f'`{field}`' for field in e.fields) or '—'} | {_cell(e.when)} | "
            f"{f'`{e.counted}`' if e.counted else '—'} |" for e in EVENTS]
    return "\n".join(["| Event (`message`) | Level | Fields | When | Counted in /metrics as |", "|---|---|---|---|---|",
                      *rows])


def log_fields_table() -> str:
    """Every field an event may carry, with its meaning."""
    rows = [f"| `{name}` | {_cell(meaning)} |" for name, meaning in FIELDS.items()]
    return "\n".join(["| Field | Meaning |", "|---|---|", *rows])


def monitoring_page() -> str:
    """docs/operate/monitoring.md: the template's text with the metrics table and the log events."""
    return (TEMPLATE.read_text(encoding="utf-8").replace(MARKER, metrics_table())
            .replace(LOG_EVENTS_MARKER, log_events_table()).replace(LOG_FIELDS_MARKER, log_fields_table()))
