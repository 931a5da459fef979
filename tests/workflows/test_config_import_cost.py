"""An import's cost grows linearly with the file (issue 25): counted in SQL statements, never timed.

A file of 3,000 webhooks used to take 450 s in one request; the statements per webhook were constant, but
every webhook had ~26 of them (42 on a re-import), each on a savepoint of its own. Now each kind of thing
a file names is looked up once for the whole file, new webhooks and their rows are written in bulk, and a
changed webhook costs one UPDATE: the statements for 10, 20 and 40 webhooks lie on one straight line whose
slope is 0 (new or unchanged webhooks) or 1 (changed ones)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatcher.models import Webhook
from dispatcher.config_io.report import ConfigError
from tests.factories import webhook_create
from workflows.config_io import config_export_all, config_import_all
from workflows.models import WorkflowRule

SIZES = (10, 20, 40)  # slope() reads these three


def entry(organization, index: int, *, description: str = "") -> dict:
    """A webhook of the kind seed 003 describes, with every kind of row a webhook owns."""
    return {
        "organization": organization.name, "module": "Deals", "name": f"Hook {index}", "description": description,
        "url": f"https://receiver{index}.example.com/hook", "auth": {"type": "basic", "username": "crm",
                                                                      "password": f"pw-{index}"},
        "entity_parameters": [{"name": "deal", "value": "${Deals.Deal Name}"},
                              {"name": "amount", "value": "${Deals.Amount}"}],
        "custom_parameters": [{"name": "authtoken", "value": f"tok-{index}"}],
        "headers": [{"name": "X-Api-Key", "value": f"key-{index}", "secret": True},
                    {"name": "X-Deal", "value": "${Deals.Deal Name}", "secret": False}],
        "capture": {"enabled": True, "type": "JSONPATH", "namespaces": "",
                    "captures": [{"when": "success", "expression": "$.id", "field": "Deal_Name"}]},
    }


def rule(organization, index: int) -> dict:
    return {"organization": organization.name, "module": "Deals", "name": f"Rule {index}", "trigger": "create",
            "all_records": True, "actions": [{"webhook": f"Hook {index}", "kind": "instant"}]}


def config(webhooks: list[dict], rules: list[dict] | None = None) -> dict:
    return {"format": "crm-webhooks", "version": 1, "webhooks": webhooks, "workflow_rules": rules or []}


@pytest.fixture(autouse=True)
def warm(organization):
    """The first import of a process also builds what it keeps (the module's merge-field schema): counted
    once, it is no part of what a file costs."""
    config_import_all(data=config([entry(organization, 999)]), dry_run=True)


def statements(data: dict, *, dry_run: bool = False) -> int:
    with CaptureQueriesContext(connection) as queries:
        config_import_all(data=data, dry_run=dry_run)
    return len(queries)


def slope(counts: dict[int, int]) -> float:
    """Statements per webhook added, the same from 10 to 20 as from 20 to 40 (the cost is a straight line).
    Bulk statements carry a batch of rows each (SQLite: as many as its 999 parameters hold), so a line may
    gain a statement per batch: BATCH_SLACK per webhook."""
    first = (counts[20] - counts[10]) / 10
    second = (counts[40] - counts[20]) / 20
    assert abs(first - second) <= BATCH_SLACK, counts
    return (counts[40] - counts[10]) / 30


BATCH_SLACK = 0.1


def test_creating_webhooks_costs_the_same_statements_for_10_or_40(organization):
    counts = {n: statements(config([entry(organization, i) for i in range(n)]), dry_run=True) for n in SIZES}
    assert slope(counts) <= BATCH_SLACK, counts  # a query per kind of lookup, an INSERT per kind of row
    config_import_all(data=config([entry(organization, i) for i in range(3)]))
    stored = config_export_all(organization=organization, include_secrets=True)["webhooks"]
    assert [w["name"] for w in stored] == ["Hook 0", "Hook 1", "Hook 2"]
    assert stored[1]["headers"][0] == {"name": "X-Api-Key", "value": "key-1", "secret": True}
    assert stored[1]["capture"]["captures"] == [{"when": "success", "expression": "$.id", "field": "Deal_Name"}]


def test_reimporting_costs_nothing_per_unchanged_webhook_and_one_update_per_changed_one(organization):
    config_import_all(data=config([entry(organization, i) for i in range(max(SIZES))]))
    unchanged = {n: statements(config([entry(organization, i) for i in range(n)])) for n in SIZES}
    assert slope(unchanged) == 0, unchanged
    changed = {n: statements(config([entry(organization, i, description=f"v{n}") for i in range(n)]))
               for n in SIZES}
    assert 1 <= slope(changed) <= 1 + BATCH_SLACK, changed  # the UPDATE of its changed fields, nothing more
    assert Webhook.objects.get(name="Hook 0").description == f"v{max(SIZES)}"


@pytest.mark.parametrize("count", [12])
def test_rules_are_looked_up_once_and_an_unchanged_rule_is_not_saved(organization, count):
    data = config([entry(organization, i) for i in range(count)], [rule(organization, i) for i in range(count)])
    config_import_all(data=data)
    assert WorkflowRule.objects.filter(organization=organization).count() == count
    for size in (count // 3, count):
        part = config(data["webhooks"][:size], data["workflow_rules"][:size])
        assert statements(part) == statements(config(data["webhooks"][:1], data["workflow_rules"][:1]))


def test_statements_do_not_depend_on_how_many_webhooks_the_installation_already_has(organization):
    """No lookup scans every webhook of the organization: 40 stored ones cost what none cost."""
    file = config([entry(organization, 100 + i) for i in range(10)])
    alone = statements(file, dry_run=True)
    for i in range(40):
        webhook_create(module=organization.modules.get(api_name="Deals"), name=f"Stored {i}")
    assert statements(file, dry_run=True) == alone


def test_a_large_file_is_planned_and_written_in_chunks_with_the_same_outcome(organization, monkeypatch):
    """Chunks bound memory and the time the transaction goes without a statement; names stay unique across
    them, and the result is the file's."""
    from dispatcher.config_io import imports as config_io

    monkeypatch.setattr(config_io, "IMPORT_CHUNK", 3)
    twice = config([entry(organization, i) for i in range(7)] + [entry(organization, 1)])
    with pytest.raises(ConfigError) as refused:
        config_import_all(data=twice)
    assert refused.value.problems == [f"webhooks[7] “Hook 1”: name: the file has webhooks[1] of {organization.name} "
                                      "with this name too; a name is unique per organization."]
    assert not Webhook.objects.filter(name__startswith="Hook").exists()
    report = config_import_all(data=config([entry(organization, i) for i in range(7)]))
    assert report.webhooks.created == [f"Hook {i}" for i in range(7)]
    assert [w["custom_parameters"] for w in config_export_all(include_secrets=True)["webhooks"]] == [
        [{"name": "authtoken", "value": f"tok-{i}"}] for i in range(7)]
