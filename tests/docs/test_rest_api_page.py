"""The REST API page (docs/integrate/rest-api.md) as an integrator follows it on a fresh clone: command 1's demo
data and the key it prints, then every curl line of the page as written, run by bash and curl against a live
server. Only the base URL and the ids (DEAL, WEBHOOK, DELIVERY, JOB: the page says to put one's own) are the
test's; each line must answer 2xx, so a change to the page that breaks one fails here."""
import json
import os
import re
import shutil
import subprocess
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from crm.models import IdempotentRequest, Organization, Record
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, DeliveryStatus, Webhook
from tests.docs.pages import blocks, page
from workflows.config_io import config_export_all
from workflows.config_jobs import config_import_job_submit

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)  # the live server's thread reads

PAGE_BASE_URL = "http://127.0.0.1:8000"
# Each line's status, written by curl itself (to stderr, so a line's own redirection of stdout keeps working).
STATUS_OF_EACH_CALL = "curl() { command curl --write-out '%{stderr}HTTP %{http_code}\\n' \"$@\"; }"


def rest_api_commands() -> tuple[list[str], list[str]]:
    """The shell commands of the page's bash blocks, continuation lines joined: the variables the page sets
    first, and the curl lines in the order they are printed."""
    commands = [command.strip() for block in blocks(page("integrate/rest-api.md"), "bash")
                for command in block.replace("\\\n", " ").splitlines() if command.strip()]
    curls = [command for command in commands if command.startswith("curl ")]
    return [command for command in commands if command not in curls], curls


@pytest.fixture
def command_1(settings, tmp_path, monkeypatch) -> str:
    """demo_load as command 1 runs it, its state folder in tmp_path/var; the API key it prints."""
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "letmein-123")
    out = StringIO()
    call_command("demo_load", stdout=out)
    [key] = re.findall(r"^REST API key \(X-API-Key\): (crm_\S+)$", out.getvalue(), re.MULTILINE)
    assert (settings.VAR_DIR / "api-key").read_text() == key
    return key


@pytest.fixture
def demo_ids(command_1) -> dict[str, str]:
    """Ids of the demo to put in DEAL, WEBHOOK, DELIVERY and JOB: a deal, the Creator webhook, a delivery of it
    that failed (the demo's receivers are not real, so one that ended is made here), and a configuration
    import job (what a 202 names; a file big enough to get one is not the point here)."""
    zylker = Organization.objects.get(name="Zylker Inc")
    hook = Webhook.objects.get(organization=zylker, name="Creator sales commission")
    deals = Record.objects.filter(module__organization=zylker, module__api_name="Deals")
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deals.get(values__Deal_Name="Website redesign"))
    Delivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, finished_at=timezone.now())
    job = config_import_job_submit(data=config_export_all(organization=zylker), dry_run=True, organization=zylker)
    return {"DEAL": str(deals.get(values__Deal_Name="Support renewal 2027").pk), "WEBHOOK": str(hook.pk),
            "DELIVERY": f"msg_{delivery.public_id.hex}", "JOB": str(job.public_id)}


def test_every_curl_line_of_the_rest_api_page_answers_2xx_with_the_key_command_1_prints(
        live_server, command_1, demo_ids, tmp_path):
    if shutil.which("curl") is None and not os.environ.get("CI"):
        pytest.skip("curl is not installed")  # CI has it: there this fails instead
    preamble, curls = rest_api_commands()
    assert len(curls) >= 17 and any(PAGE_BASE_URL in line for line in preamble), preamble
    variables = [line.replace(PAGE_BASE_URL, live_server.url) for line in preamble]
    ids = "; ".join(f"{name}={value}" for name, value in demo_ids.items())
    answers = {}
    for line in curls:
        kept_keys = IdempotentRequest.objects.count()
        script = "\n".join(["set -eu", *variables, ids, STATUS_OF_EACH_CALL, line])
        run = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stderr.splitlines()[:-1] == [], (line, run.stderr)
        status = run.stderr.splitlines()[-1]
        assert re.fullmatch(r"HTTP 2\d\d", status), (line, status, run.stdout)
        answers[line] = run.stdout
        if "Idempotency-Key" in line:  # sent, and not empty: the server kept it
            assert IdempotentRequest.objects.count() == kept_keys + 1, line
    # What the lines did, as the integrator sees it in the answers.
    created = json.loads(next(body for line, body in answers.items() if "-X POST $API/records/Deals/ " in line))
    assert created["data"]["values"]["Deal_Name"] == "From curl"
    resent = json.loads(next(body for line, body in answers.items() if "/resend/" in line))
    assert resent["data"]["id"] == demo_ids["DELIVERY"] and resent["data"]["status"] == "queued"
    assert json.loads((tmp_path / "setup.json").read_text())["webhooks"]
    assert not Record.objects.filter(pk=demo_ids["DEAL"]).exists()  # the DELETE line
