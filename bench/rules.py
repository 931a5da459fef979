"""Rule evaluation cost: record updates through the record service with 100 active rules, against the
same updates with no rules, measured in the same run (issue 7, item 3).

    .venv/bin/python bench/rules.py [--n 10000] [--quick] [--json FILE]

100 edit rules with mixed criteria (text, pick list, number ranges, a lookup field, patterns), of which
10% match each update; matching rules queue an instant webhook (a Delivery row) like in production.
Uses a throw-away SQLite database; prints times per update and the ratio to the baseline.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
os.environ["CELERY_BROKER_URL"] = "memory://localhost/"  # wake-ups are not what this measures, and leave no files
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["LOG_LEVEL"] = "WARNING"

import django

django.setup()
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

from crm import services as crm_services  # noqa: E402
from crm.models import Field, Record  # noqa: E402
from dispatcher.models import Delivery  # noqa: E402
from tests.factories import webhook_create  # noqa: E402
from workflows import services  # noqa: E402
from workflows.demo import demo_load  # noqa: E402
from workflows.models import Action, Condition, WorkflowRule  # noqa: E402

STAGES = ["Qualification", "Needs Analysis", "Value Proposition", "Proposal/Price Quote", "Negotiation/Review"]


def updates(deal: Record, n: int, amounts: int = 0) -> float:
    """Time per update; amounts from `amounts` on (0-99: one rule in ten matches; 1000 on: none does)."""
    started = time.perf_counter()
    for i in range(n):
        crm_services.record_update(record=deal, values={"Amount": str(amounts + i % 100), "Stage": STAGES[i % 5]})
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="updates (default 10000; --quick 500)")
    args = parser.parse_args()
    n = args.n or (500 if args.quick else 10_000)
    organization, _ = demo_load()
    WorkflowRule.objects.all().delete()
    deals = organization.modules.get(api_name="Deals")
    field = {f.api_name: f for f in Field.objects.filter(module=deals)}
    industry = Field.objects.get(module__organization=organization, module__api_name="Accounts", api_name="Industry")
    deal = Record.objects.filter(module=deals, values__Account_Name__isnull=False).first()
    baseline = updates(deal, n)

    hook = webhook_create(module=deals, name="Bench", entity=[("deal", "${Deals.Deal Name}")])
    for i in range(100):
        low = (i % 10) * 10  # rules 0-9 cover amounts 0-9, 10-19 …: one in ten rules matches an amount
        conditions = [
            Condition(number=1, field=field["Amount"], operator="between", value=str(low), value_to=str(low + 9)),
            Condition(number=2, field=field["Deal_Name"], operator="not_empty"),
            Condition(number=3, lookup=field["Account_Name"], field=industry, operator="isnt", value="Finance"),
        ]
        pattern = "1 and (2 or 3)" if i % 2 else "1 and 2 and 3"
        services.rule_save(
            rule=WorkflowRule(organization=organization, module=deals, name=f"Rule {i}", trigger="edit",
                              criteria_pattern=pattern, execution_order=i),
            conditions=conditions, actions=[Action(webhook=hook, kind="instant")])
    evaluation_only = updates(deal, n, amounts=1000)
    before = Delivery.objects.count()
    with_rules = updates(deal, n)
    fired = (Delivery.objects.count() - before) / n

    rows = [
        common.row("rules: baseline, record_update with no rules", baseline * 1e6, "µs", baseline * 1e6),
        common.row("rules: 100 active rules, none matching (evaluation only)", evaluation_only * 1e6, "µs",
                   baseline * 1e6, target="<= 1.5x", passed=evaluation_only / baseline <= 1.5),
        common.row("rules: record_update with 100 active rules", with_rules * 1e6, "µs", baseline * 1e6,
                   target="<= 1.5x", passed=with_rules / baseline <= 1.5,
                   note=f"{fired:.0f} rules fire per update (10%), each storing a run and queuing a delivery"),
    ]
    common.report(rows, args.json, header=f"N = {n} updates (SQLite)")


if __name__ == "__main__":
    main()
