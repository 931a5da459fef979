"""docs/operate/monitoring.md lists what /metrics really exports: the committed page is what the metric
objects generate now, a real scrape of each view has exactly the metrics the page lists for it, and the
label values the page names are the ones the code uses."""
import ast
import re

import pytest
from django.contrib.auth import get_user_model
from prometheus_client.parser import text_string_to_metric_families

from dispatcher.ops.metrics import PENDING_STATUSES
from dispatcher.ops.metrics_reference import monitoring_page
from dispatcher.models import DeliverySource, EngineCounter
from tests.docs.pages import ROOT, page, section
from tests.factories import OrganizationFactory, staff_login

PAGE = "operate/monitoring.md"
REGENERATE = "run python scripts/docs_generate.py"
SAMPLE_NAMES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def listed() -> dict[str, str]:
    """Each metric's first sample name on the page -> its 'In an organization's view' cell."""
    table = section(page(PAGE), "Every metric")
    return {match.group(1): match.group(2) for match in
            re.finditer(r"^\| `([a-z_]+)`.*\| (yes|no) \|$", table, re.MULTILINE)}


def scraped(client, **headers) -> dict[str, str]:
    """The metrics of a real /metrics answer: family name -> type."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    return {family.name: family.type for family in text_string_to_metric_families(response.content.decode())}


def sample_names(families: dict[str, str]) -> set[str]:
    return {name + suffix for name, kind in families.items() for suffix in SAMPLE_NAMES[kind]}


@pytest.fixture
def installation(db, settings):
    settings.METRICS_TOKEN = "scrape-me"
    organization = OrganizationFactory(name="Zylker Corp")
    EngineCounter.objects.create(decision="claim_lost", outcome="", count=1)
    return organization


def test_the_committed_page_is_the_generated_one():
    assert page(PAGE) == monitoring_page(), f"docs/{PAGE} is stale: {REGENERATE}"


def test_the_installations_view_exports_exactly_the_metrics_the_page_lists(client, installation):
    families = scraped(client, Authorization="Bearer scrape-me")
    assert len(families) == 11
    table = section(page(PAGE), "Every metric")
    missing = sorted(name for name in sample_names(families) if f"`{name}`" not in table)
    assert not missing, f"exported by /metrics, not on docs/{PAGE} ({REGENERATE}): {missing}"
    first_names = {family + SAMPLE_NAMES[kind][0] for family, kind in families.items()}
    assert set(listed()) == first_names, "the page lists a metric /metrics does not export"


def test_an_organizations_staff_see_the_metrics_the_page_marks_as_theirs(client, installation):
    client.force_login(staff_login(installation, "auditor", group="Auditor"))
    theirs = sample_names(scraped(client))
    marked = {name for name, shown in listed().items() if shown == "yes"}
    assert marked and marked <= theirs
    hidden = {name for name, shown in listed().items() if shown == "no"}
    assert hidden and not hidden & theirs


def test_without_the_token_or_a_login_metrics_answer_401_as_the_page_says(client, installation):
    response = client.get("/metrics", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Bearer"
    assert "**401**, with `WWW-Authenticate: Bearer`" in page(PAGE)
    client.force_login(get_user_model().objects.create_superuser("root", "root@example.com", "pw"))
    assert "webhook_engine_decisions" in scraped(client)


def _engine_decisions() -> set[str]:
    """Every decision (and outcome) the code counts: counters.count("decision", "outcome"), and the capture
    outcomes passed as count="…"."""
    names = set()
    for path in (ROOT / "dispatcher").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            texts = [a for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if function == "count" and isinstance(node.func, ast.Attribute) and getattr(node.func.value, "id", "") \
                    == "counters":
                names.update(a.value for a in texts if a.value)
            names.update(k.value.value for k in node.keywords if function == "_store" and k.arg == "count"
                         and isinstance(k.value, ast.Constant))
    return names


def test_the_label_values_the_page_names_are_the_ones_the_code_uses():
    values = section(page(PAGE), "Label values")
    decisions = _engine_decisions()
    assert {"claim_lost", "held", "capture", "not_run"} <= decisions
    missing = sorted(name for name in decisions | {"full", "stripped", "error", "timeout", "cut"}
                     if f"`{name}`" not in values)
    assert not missing, f"counted by the engine, not named under Label values in docs/{PAGE}: {missing}"
    for status in PENDING_STATUSES:
        assert f"`{status}`" in values, status
    for source in DeliverySource.values:
        assert f"`{source}`" in values, source
