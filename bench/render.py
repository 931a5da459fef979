"""Rendering cost against json.dumps of the same data, measured in the same run (issue 7, item 4).

    .venv/bin/python bench/render.py [--n 20000]

Uses a throw-away SQLite database in a temporary folder. Prints times per render and the ratio to the
baseline; absolute numbers are noise on a shared machine, ratios are what to compare.
"""
import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0)

from crm.models import Record  # noqa: E402
from dispatcher.demo import demo_load, starter_body  # noqa: E402
from dispatcher.models import ContentType, Webhook  # noqa: E402
from dispatcher.rendering import request as rendering  # noqa: E402
from dispatcher.rendering.request import merge_context_build, webhook_render_request  # noqa: E402
from tests.factories import webhook_create  # noqa: E402

FIELDS = ["Deal Name", "Amount", "Closing Date", "Stage", "Type", "Probability (%)", "Payment Due Date",
          "Deal Id", "Deal Owner", "Modified Time"]


def per_call(function, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        function()
    return (time.perf_counter() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
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

    def xml_baseline() -> str:
        return "".join(p if isinstance(p, str) else str(xml_values[str(p.field)]) for p in xml_format.parts)

    rows = [
        ("baseline: json.dumps of the 10-field dict", per_call(lambda: json.dumps(as_dict), n), None),
        ("10-field JSON parameters, context reused", per_call(
            lambda: rendering._parameters_encode(context, entity, [], ContentType.JSON), n), 0),
        ("baseline: string join of the Creator XML", per_call(xml_baseline, n), None),
        ("Creator XML body, context reused", per_call(
            lambda: rendering._body_render(creator_context, xml_text, ContentType.XML), n), 2),
        ("10-field JSON, full request (queries, signature)", per_call(
            lambda: webhook_render_request(webhook=json_hook, record=deal, message_id="msg_1"), max(n // 20, 100)), 0),
    ]
    print(f"{'case':52} {'µs/render':>10} {'x baseline':>11}")
    for label, seconds, baseline in rows:
        ratio = "" if baseline is None else f"{seconds / rows[baseline][1]:.2f}"
        print(f"{label:52} {seconds * 1e6:10.1f} {ratio:>11}")


if __name__ == "__main__":
    main()
