"""Rendering cost against json.dumps of the same data, measured in the same run (issue 7, item 4).

    .venv/bin/python bench/render.py [--n 100000] [--quick] [--json FILE]

Uses a throw-away SQLite database in a temporary folder. Prints times per render and the ratio to the
baseline; absolute numbers are noise on a shared machine, ratios are what to compare.
"""
import argparse
import datetime
import json
import os
import sys
import tempfile
import time
import zoneinfo
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import common

os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
os.environ["CELERY_BROKER_URL"] = "memory://localhost/"  # wake-ups are not what this measures, and leave no files
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

from crm.formats import DATE_FORMATS  # noqa: E402
from crm.models import Record  # noqa: E402
from dispatcher.config_io.demo import demo_load, starter_body  # noqa: E402
from dispatcher.models import ContentType, Webhook  # noqa: E402
from dispatcher.rendering import request as rendering  # noqa: E402
from dispatcher.rendering.request import merge_context_build, webhook_render_request  # noqa: E402
from tests.factories import webhook_create  # noqa: E402

FIELDS = common.FIELDS


def per_call(function, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        function()
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    common.add_arguments(parser)
    parser.add_argument("--n", type=int, default=None, help="renders (default 100000; --quick 10000)")
    args = parser.parse_args()
    n = args.n or (10_000 if args.quick else 100_000)
    organization = demo_load()
    deals = organization.modules.get(api_name="Deals")
    deal = Record.objects.select_related("owner", "module").get(module=deals, values__Deal_Name="Website redesign")
    json_hook = webhook_create(module=deals, name="Bench JSON", content_type=ContentType.JSON,
                               entity=[(f"f{i}", f"${{Deals.{label}}}") for i, label in enumerate(FIELDS)])
    json_hook = Webhook.objects.select_related("organization", "module").get(pk=json_hook.pk)
    creator = Webhook.objects.select_related("organization", "module").get(name="Creator sales commission")

    context = merge_context_build(webhook=json_hook, record=deal)
    entity = [rendering._parameter(context, p.name, p.value) for p in json_hook.entity_parameters.all()]
    as_dict = json.loads(rendering._parameters_encode(context, entity, [], ContentType.JSON))
    creator_context = merge_context_build(webhook=creator, record=deal)
    xml_text = starter_body("zoho_creator_commission.xml")
    xml_values = {str(f): creator_context.value(f) for f in rendering.template_compile(xml_text).merge_fields}
    xml_format = rendering.template_compile(xml_text)

    # The floor: hand-written code that formats the same ten stored values as these field types need
    # (dates, a currency, the modified time in the organization's zone) and dumps them.
    kinds = [(p.name, context.binding(p.template.single_field).field) for p in entity]
    date_format = DATE_FORMATS[context.date_format]
    zone = zoneinfo.ZoneInfo(context.time_zone)

    def hand_written() -> str:
        values, out = deal.values, {}
        for name, field in kinds:
            if field.api_name == "Modified_Time":
                out[name] = deal.modified_at.astimezone(zone).isoformat(timespec="seconds")
            elif field.api_name == "id":
                out[name] = str(deal.pk)
            elif field.api_name == "Owner":
                out[name] = deal.owner.full_name
            elif field.field_type == "date":
                out[name] = datetime.date.fromisoformat(values[field.api_name]).strftime(date_format)
            elif field.field_type == "currency":
                out[name] = str(Decimal(values[field.api_name]))
            else:
                out[name] = values.get(field.api_name) or ""
        return json.dumps(out, ensure_ascii=False)

    def xml_baseline() -> str:
        return "".join(p if isinstance(p, str) else str(xml_values[str(p.field)]) for p in xml_format.parts)

    json_base = per_call(lambda: json.dumps(as_dict), n)
    json_floor = per_call(hand_written, n)
    json_render = per_call(lambda: rendering._parameters_encode(context, entity, [], ContentType.JSON), n)
    xml_base = per_call(xml_baseline, n)
    xml_render = per_call(lambda: rendering._body_render(creator_context, xml_text, ContentType.XML), n)
    full = per_call(lambda: webhook_render_request(webhook=json_hook, record=deal, message_id="msg_1"), max(n // 20, 100))
    rows = [
        common.row("render: baseline, json.dumps of the 10-field dict", json_base * 1e6, "µs", json_base * 1e6),
        common.row("render: reference, hand-written formatting + json.dumps", json_floor * 1e6, "µs",
                   json_base * 1e6, note="the floor for these fields: 2 dates, a date/time in the org's zone and a currency to format"),
        common.row("render: 10-field JSON parameters", json_render * 1e6, "µs", json_base * 1e6, target="<= 3x",
                   passed=json_render / json_base <= 3),
        common.row("render: baseline, string join of the Creator XML", xml_base * 1e6, "µs", xml_base * 1e6),
        common.row("render: seed 003 Creator XML body", xml_render * 1e6, "µs", xml_base * 1e6, target="<= 3x",
                   passed=xml_render / xml_base <= 3),
        common.row("render: full signed request (metadata queries incl.)", full * 1e6, "µs", json_base * 1e6),
    ]
    common.report(rows, args.json, header=f"N = {n} renders each")


if __name__ == "__main__":
    main()
