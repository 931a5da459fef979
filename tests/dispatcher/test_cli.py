"""The management commands other parts and admins rely on: preview, import and export of configuration."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from crm import services as crm_services
from crm.models import Record
from dispatcher.config_io.export import config_export
from dispatcher.config_io.demo import demo_load
from dispatcher.models import Webhook
from tests.factories import webhook_create


def run(*args, stdin: str | None = None, monkeypatch=None) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def hook_and_deal(organization, owner, modules):
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Big & bold"})
    hook = webhook_create(module=modules["Deals"], name="Books", auth_type="basic", auth_username="crm",
                          auth_password="hunter2!", entity=[("deal", "${Deals.Deal Name}"), ("x", "${Deals.Colour}")],
                          custom=[("authtoken", "tok-abcdef")])
    return hook, deal


def test_webhook_preview_prints_the_masked_request_by_id_or_name(hook_and_deal):
    hook, deal = hook_and_deal
    for reference in (str(hook.pk), "Books"):
        out, err = run("webhook_preview", reference, "--record", str(deal.pk))
        head, body = out.split("\n\n", 1)
        assert head.splitlines()[0] == "POST https://receiver.example.com/hook"
        assert "Authorization: Basic ********" in head and "Content-Type: application/json; charset=utf-8" in head
        assert json.loads(body) == {"deal": "Big & bold", "x": "${Unsupported_Field}", "authtoken": "********"}
        assert "hunter2" not in out + err and "tok-abcdef" not in out + err
        assert "warning: ${Deals.Colour} is sent as ${Unsupported_Field}: Deals has no field “Colour”." in err


@pytest.mark.parametrize(("args", "message"), [
    (["Nope", "--record", "1"], "No webhook named “Nope”."),
    (["424242", "--record", "1"], "No webhook with id 424242."),
    (["Books", "--record", "999999"], "No record with id 999999."),
])
def test_webhook_preview_explains_what_it_cannot_find(hook_and_deal, args, message):
    with pytest.raises(CommandError, match=message):
        run("webhook_preview", *args)


def test_webhook_preview_refuses_a_record_of_another_module(hook_and_deal, owner, modules):
    lead = crm_services.record_create(module=modules["Leads"], owner=owner, values={"Last_Name": "L"})
    with pytest.raises(CommandError, match=f"Record #{lead.pk} is a Leads record; this webhook is for Deals."):
        run("webhook_preview", "Books", "--record", str(lead.pk))


def test_export_leaves_secrets_out_unless_asked(hook_and_deal):
    out, _ = run("export_config")
    data = json.loads(out)
    assert data["format"] == "crm-webhooks" and data["version"] == 1
    [entry] = data["webhooks"]
    assert entry["auth"] == {"type": "basic", "username": "crm", "password": None}
    assert entry["custom_parameters"] == [{"name": "authtoken", "value": None}]
    assert "signing_secret" not in entry and "hunter2" not in out and "tok-abcdef" not in out
    with_secrets = json.loads(run("export_config", "--include-secrets")[0])["webhooks"][0]
    assert with_secrets["auth"]["password"] == "hunter2!"
    assert with_secrets["custom_parameters"][0]["value"] == "tok-abcdef"
    assert with_secrets["signing_secret"] == hook_and_deal[0].signing_secret


def test_export_then_import_into_an_empty_installation_gives_the_same_configuration(db, tmp_path):
    demo_load()
    path = tmp_path / "webhooks.json"
    run("export_config", "--include-secrets", "--output", str(path))
    before = config_export(include_secrets=True)
    Webhook.objects.all().delete()
    out, _ = run("import_config", str(path))
    assert "Created 6 webhook(s): " in out
    assert config_export(include_secrets=True) == before


def test_import_updates_by_name_and_keeps_secrets_the_file_leaves_out(hook_and_deal, tmp_path):
    hook, _ = hook_and_deal
    data = json.loads(run("export_config")[0])
    data["webhooks"][0]["description"] = "from git"
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps(data))
    out, _ = run("import_config", str(path))
    assert "Changed 1 webhook(s): Books" in out
    hook.refresh_from_db()
    assert (hook.description, hook.auth_password) == ("from git", "hunter2!")
    assert hook.custom_parameters.get().value == "tok-abcdef"


def test_import_is_all_or_nothing_and_names_every_problem(hook_and_deal, tmp_path):
    data = json.loads(run("export_config", "--include-secrets")[0])
    good = dict(data["webhooks"][0], name="Fresh one")
    bad_url = dict(data["webhooks"][0], name="Bad url", url="ftp://x")
    bad_module = dict(data["webhooks"][0], name="Bad module", module="Notes")
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps(dict(data, webhooks=[good, bad_url, bad_module, {"name": "x", "colour": 1}])))
    with pytest.raises(CommandError) as caught:
        run("import_config", str(path))
    message = str(caught.value)
    assert message.startswith("Nothing was imported:")
    assert "webhooks[1] “Bad url”: url: The URL must start with http:// or https://." in message
    assert "webhooks[2] “Bad module”: module: Webhooks cannot be set up for Notes (not for Call logs and Notes)." in message
    assert "webhooks[3] “x”: unknown keys colour." in message
    assert list(Webhook.objects.values_list("name", flat=True)) == ["Books"]


def test_import_needs_a_value_for_a_new_secret(hook_and_deal, tmp_path):
    data = json.loads(run("export_config")[0])
    data["webhooks"][0]["name"] = "Copy"
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError) as caught:
        run("import_config", str(path))
    assert "webhooks[0] “Copy”: auth_password: Enter the password for Basic authentication." in str(caught.value)


def test_dry_run_reports_and_changes_nothing(hook_and_deal, tmp_path):
    data = json.loads(run("export_config")[0])
    data["webhooks"][0]["description"] = "changed"
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps(data))
    out, _ = run("import_config", str(path), "--dry-run")
    assert "Would change 1 webhook(s): Books" in out
    hook_and_deal[0].refresh_from_db()
    assert hook_and_deal[0].description == ""


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)."),
    ('{"format": "other"}', 'This is not a webhook configuration file (expected "format": "crm-webhooks").'),
    ('{"format": "crm-webhooks", "version": 9, "webhooks": []}', "Unsupported version 9; this installation reads version 1."),
])
def test_import_refuses_files_that_are_not_configurations(db, tmp_path, content, message):
    path = tmp_path / "webhooks.json"
    path.write_text(content)
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        run("import_config", str(path))


def test_demo_load_is_idempotent_and_prints_the_logins(db, monkeypatch, settings, tmp_path):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "letmein-123")
    settings.VAR_DIR = tmp_path  # not the developer's own var/
    out, _ = run("demo_load")
    counts = (Record.objects.count(), Webhook.objects.count())
    out_again, _ = run("demo_load")
    assert (Record.objects.count(), Webhook.objects.count()) == counts == (10, 7)
    assert "user: admin  password: letmein-123" in out and out == out_again
    assert "user: zylker  password: letmein-123  (Integration admin of Zylker Inc only)" in out
    assert "user: acme  password: letmein-123  (Integration admin of Acme Corp only)" in out
    key = (tmp_path / "api-key").read_text()
    assert f"REST API key (X-API-Key): {key}" in out
    from django.test import Client

    for username, mine, theirs in [("zylker", "Creator sales commission", "Order to ERP"),
                                   ("acme", "Order to ERP", "Creator sales commission")]:
        browser = Client()  # logs in through the login page, as a person does (and as django-axes watches)
        assert browser.post("/admin/login/?next=/admin/", {"username": username, "password": "letmein-123"}) \
            .status_code == 302
        names = [w.name for w in browser.get("/admin/dispatcher/webhook/").context["cl"].result_list]
        assert mine in names and theirs not in names, username
