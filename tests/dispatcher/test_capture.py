"""Response capture: JSONPath and XPath on success and on failure, into the record, never re-firing rules."""
import json

import pytest
from django.urls import reverse
from werkzeug import Response

from crm import services as crm_services
from crm.models import Field, FieldType
from dispatcher import delivery as delivery_engine
from dispatcher.capture.apply import captures_check
from dispatcher.models import Capture, Delivery, Webhook
from tests.factories import webhook_create
from workflows.models import Action, WorkflowRule
from workflows.services import rule_save


@pytest.fixture
def fields(modules):
    deals = modules["Deals"]
    made = {
        "Invoice Number": Field.objects.create(module=deals, label="Invoice Number", api_name="Invoice_Number"),
        "Sync Status": Field.objects.create(module=deals, label="Sync Status", api_name="Sync_Status"),
        "Invoice Total": Field.objects.create(module=deals, label="Invoice Total", api_name="Invoice_Total",
                                              field_type=FieldType.CURRENCY),
    }
    return made


@pytest.fixture
def deal(owner, modules, fields):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})


def hook_with(receiver, modules, fields, capture_type="JSONPATH", namespaces="", captures=()):
    hook = webhook_create(module=modules["Deals"], name=f"Books {capture_type}", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")])
    hook.capture_response, hook.capture_type, hook.capture_namespaces = True, capture_type, namespaces
    hook.save()
    for when, expression, label in captures:
        Capture.objects.create(webhook=hook, when=when, expression=expression, field=fields[label])
    return hook


def send(hook, deal) -> Delivery:
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    return Delivery.objects.get(pk=delivery.pk)


def test_jsonpath_on_success_writes_the_record_and_the_log(receiver, modules, fields, deal):
    receiver.expect_request("/hook").respond_with_json(
        {"invoice": {"id": "INV-42", "total": 12500.5, "lines": [{"sku": "A"}, {"sku": "B"}]}})
    hook = hook_with(receiver, modules, fields, captures=[
        ("success", "$.invoice.id", "Invoice Number"), ("success", "$.invoice.total", "Invoice Total"),
        ("success", "$.invoice.lines[*].sku", "Sync Status"), ("failure", "$.error", "Sync Status"),
    ])
    delivery = send(hook, deal)
    assert delivery.status == "success"
    deal.refresh_from_db()
    assert (deal.values["Invoice_Number"], deal.values["Invoice_Total"], deal.values["Sync_Status"]) == (
        "INV-42", "12500.50", "A, B")  # several matches joined for a text field
    captured = delivery.attempts.get().captured
    assert captured["Sync Status"] == {"expression": "$.invoice.lines[*].sku", "matches": ["A", "B"], "written": "A, B"}


def test_failure_captures_run_on_a_failed_answer_and_do_not_change_the_retry(receiver, modules, fields, deal):
    receiver.expect_request("/hook").respond_with_json({"error": "quota exceeded"}, status=503)
    hook = hook_with(receiver, modules, fields, captures=[("success", "$.id", "Invoice Number"),
                                                          ("failure", "$.error", "Sync Status")])
    delivery = send(hook, deal)
    assert delivery.status == "retry"
    deal.refresh_from_db()
    assert deal.values.get("Sync_Status") == "quota exceeded" and "Invoice_Number" not in deal.values


def test_a_receiver_that_echoes_the_request_gets_no_secret_written_into_the_record(receiver, modules, fields, deal):
    receiver.expect_request("/hook").respond_with_handler(
        lambda request: Response(request.get_data(), content_type="application/json"))
    hook = webhook_create(module=modules["Deals"], name="Echo", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", "tok-echo/é 1")])
    hook.capture_response = True
    hook.save()
    Capture.objects.create(webhook=hook, when="success", expression="$.authtoken", field=fields["Sync Status"])
    Capture.objects.create(webhook=hook, when="success", expression="$.deal", field=fields["Invoice Number"])
    delivery = send(hook, deal)
    deal.refresh_from_db()
    assert (deal.values["Sync_Status"], deal.values["Invoice_Number"]) == ("********", "Website")
    captured = delivery.attempts.get().captured
    assert captured["Sync Status"] == {"expression": "$.authtoken", "matches": ["********"], "written": "********"}
    assert "tok-echo" not in json.dumps(captured)


def test_json_true_false_and_null_are_written_as_json_spells_them(receiver, modules, fields, deal):
    receiver.expect_request("/hook").respond_with_json({"synced": True, "flags": [True, False, None], "ref": None})
    hook = hook_with(receiver, modules, fields, captures=[
        ("success", "$.synced", "Sync Status"), ("success", "$.flags[*]", "Invoice Number")])
    delivery = send(hook, deal)
    deal.refresh_from_db()
    assert (deal.values["Sync_Status"], deal.values["Invoice_Number"]) == ("true", "true, false, null")
    assert delivery.attempts.get().captured["Sync Status"]["written"] == "true"


def test_xpath_with_namespaces_and_a_missing_match(receiver, modules, fields, deal):
    receiver.expect_request("/hook").respond_with_data(
        '<z:response xmlns:z="http://www.zoho.com/crm"><z:status code="ok">Synced</z:status></z:response>',
        content_type="application/xml")
    hook = hook_with(receiver, modules, fields, "XPATH", "z=http://www.zoho.com/crm", captures=[
        ("success", "//z:response/z:status/text()", "Sync Status"),
        ("success", "//z:status/@code", "Invoice Number"),
        ("success", "//z:invoice/text()", "Invoice Total"),
    ])
    delivery = send(hook, deal)
    deal.refresh_from_db()
    assert (deal.values["Sync_Status"], deal.values["Invoice_Number"]) == ("Synced", "ok")
    assert delivery.attempts.get().captured["Invoice Total"] == {
        "expression": "//z:invoice/text()", "matches": [], "written": "no match"}


@pytest.mark.parametrize(("body", "capture_type", "error"), [
    ("<html>not json</html>", "JSONPATH", "The response is not JSON, so nothing was captured."),
    ('{"a": 1}', "XPATH", "The response is not well-formed XML, so nothing was captured."),
    ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>', "XPATH",
     "The response declares a DTD, which is refused, so nothing was captured."),
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
     '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;">]>'
     '<lolz>&lol4;</lolz>', "XPATH", "The response declares a DTD, which is refused, so nothing was captured."),
    # An external DTD whose entity is used: unparseable without it, and still reported as the DTD.
    ('<?xml version="1.0"?><!DOCTYPE r SYSTEM "http://evil.example/r.dtd"><r>&ext;</r>', "XPATH",
     "The response declares a DTD, which is refused, so nothing was captured."),
])
def test_unreadable_and_hostile_bodies_are_a_capture_error_not_a_crash(receiver, modules, fields, deal, body,
                                                                       capture_type, error):
    receiver.expect_request("/hook").respond_with_data(body)
    hook = hook_with(receiver, modules, fields, capture_type, captures=[("success", "$.a" if capture_type ==
                                                                          "JSONPATH" else "//r/text()",
                                                                          "Sync Status")])
    delivery = send(hook, deal)
    assert delivery.status == "success"  # the receiver got it; capture is a separate matter
    assert delivery.attempts.get().captured == {"error": error}
    deal.refresh_from_db()
    assert "Sync_Status" not in deal.values


def test_a_value_the_field_refuses_is_logged_not_written(receiver, modules, fields, deal):
    receiver.expect_request("/hook").respond_with_json({"total": "lots", "id": "INV-9"})
    hook = hook_with(receiver, modules, fields, captures=[("success", "$.total", "Invoice Total"),
                                                          ("success", "$.id", "Invoice Number")])
    delivery = send(hook, deal)
    deal.refresh_from_db()
    assert deal.values["Invoice_Number"] == "INV-9" and "Invoice_Total" not in deal.values
    assert delivery.attempts.get().captured["Invoice Total"]["written"] == \
        "not written: Invoice Total: expected a number."


def test_captured_values_never_fire_workflow_rules(receiver, modules, fields, deal):
    receiver.expect_request("/hook").respond_with_json({"id": "INV-1"})
    hook = hook_with(receiver, modules, fields, captures=[("success", "$.id", "Invoice Number")])
    rule_save(rule=WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"], name="Loop?",
                                trigger="edit", match_all_records=True),
              conditions=[], actions=[Action(webhook=hook, kind="instant")])
    crm_services.record_update(record=deal, values={"Amount": "10"})  # fires once
    delivery_engine.deliveries_drain(batch=10, budget_seconds=30)
    deal.refresh_from_db()
    assert deal.values["Invoice_Number"] == "INV-1"
    assert Delivery.objects.count() == 1 and len(receiver.log) == 1


@pytest.mark.parametrize(("capture_type", "expression", "namespaces", "message"), [
    ("JSONPATH", "$.invoice[", "", "“$.invoice[” is not a valid JSONPath"),
    ("XPATH", "//response[", "", "“//response[” is not a valid XPath: Invalid expression."),
    ("XPATH", "//z:status", "", "“//z:status” is not a valid XPath: Undefined namespace prefix."),
    ("XPATH", "//a", "not a namespace", "Namespace line 1 (“not a namespace”) is not of the form prefix=URI."),
])
def test_expressions_are_checked_when_saved(modules, fields, capture_type, expression, namespaces, message):
    hook = webhook_create(module=modules["Deals"], name="Check")
    hook.capture_response, hook.capture_type, hook.capture_namespaces = True, capture_type, namespaces
    [problem] = captures_check(webhook=hook, captures=[Capture(expression=expression, field=fields["Sync Status"])])
    assert problem.startswith(message)


def test_the_admin_shows_the_parser_message(client, django_user_model, organization, modules, fields):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    data = {
        "organization": organization.pk, "module": modules["Deals"].pk, "name": "Books", "description": "",
        "url": "https://books.example.com/hook", "method": "POST", "content_type": "JSON", "body": "",
        "auth_type": "none", "date_format": "", "datetime_format": "", "time_zone": "", "is_active": "on",
        "capture_response": "on", "capture_type": "JSONPATH", "capture_namespaces": "",
        "entity_parameters-TOTAL_FORMS": 0, "entity_parameters-INITIAL_FORMS": 0,
        "custom_parameters-TOTAL_FORMS": 0, "custom_parameters-INITIAL_FORMS": 0,
        "headers-TOTAL_FORMS": 0, "headers-INITIAL_FORMS": 0,
        "captures-TOTAL_FORMS": 1, "captures-INITIAL_FORMS": 0, "captures-0-when": "success",
        "captures-0-expression": "$.invoice[", "captures-0-field": fields["Invoice Number"].pk,
        "captures-0-position": 0,
    }
    response = client.post(reverse("admin:dispatcher_webhook_add"), data)
    assert "“$.invoice[” is not a valid JSONPath" in response.content.decode()
    data["captures-0-expression"] = "$.invoice.id"
    assert b"was added successfully" in client.post(reverse("admin:dispatcher_webhook_add"), data, follow=True).content


def test_captures_round_trip_through_a_configuration_file(receiver, modules, fields, tmp_path):
    import json as jsonlib

    from django.core.management import call_command

    from workflows.config_io import config_export_all

    hook_with(receiver, modules, fields, "XPATH", "z=http://www.zoho.com/crm",
              captures=[("success", "//z:id/text()", "Invoice Number"), ("failure", "//z:error", "Sync Status")])
    before = config_export_all(include_secrets=True)
    assert before["webhooks"][0]["capture"] == {
        "enabled": True, "type": "XPATH", "namespaces": "z=http://www.zoho.com/crm",
        "captures": [{"when": "failure", "expression": "//z:error", "field": "Sync_Status"},
                     {"when": "success", "expression": "//z:id/text()", "field": "Invoice_Number"}]}
    Capture.objects.all().delete()
    path = tmp_path / "setup.json"
    path.write_text(jsonlib.dumps(before))
    call_command("import_config", str(path), stdout=None)
    assert config_export_all(include_secrets=True) == before
    before["webhooks"][0]["capture"]["captures"][0]["expression"] = "//z:error["
    path.write_text(jsonlib.dumps(before))
    with pytest.raises(Exception, match="captures: “//z:error\\[” is not a valid XPath"):
        call_command("import_config", str(path))


def test_an_expression_that_backtracks_forever_is_stopped_and_recorded(receiver, modules, fields, deal, settings):
    """EXSLT regular expressions run Python's re inside lxml, where no signal reaches: (a+)+$ on 40 a's and a
    b takes 2**40 steps. The capture's own time bound stops it; the delivery and the next capture go on."""
    settings.WEBHOOK_CAPTURE_TIMEOUT = 0.5
    receiver.expect_request("/hook").respond_with_data("<r><v>" + "a" * 40 + "b</v><id>INV-5</id></r>",
                                                       content_type="application/xml")
    slow = hook_with(receiver, modules, fields, "XPATH", namespaces="re=http://exslt.org/regular-expressions",
                     captures=[("success", "string(re:test(/r/v, '^(a+)+$'))", "Sync Status")])
    delivery = send(slow, deal)
    assert delivery.status == "success"
    captured = delivery.attempts.get().captured
    assert "took longer than 0.5 s and were stopped" in captured["error"]
    slow.captures.all().delete()
    Capture.objects.create(webhook=slow, when="success", expression="/r/id", field=fields["Invoice Number"])
    fine = Webhook.objects.get(pk=slow.pk)
    assert send(fine, deal).attempts.get().captured["Invoice Number"]["written"] == "INV-5"
    from dispatcher.models import EngineCounter
    assert EngineCounter.objects.get(decision="capture", outcome="timeout").count == 1


def big_json() -> dict:
    """About 860 KB of JSON: `$..*` selects 81,000 values, the first of them the whole list (issue 25)."""
    return {"items": [{"id": i, "name": f"item {i}", "tags": ["a", "b"], "sub": {"x": i, "note": 'é"q'}}
                      for i in range(9000)]}


@pytest.mark.parametrize(("capture_type", "expression", "body", "content_type"), [
    ("JSONPATH", "$..*", json.dumps(big_json()), "application/json"),
    ("XPATH", "//*", "<r>" + "".join(f"<item><id>{i}</id><name>item {i}</name><sub><x>{i}</x></sub></item>"
                                      for i in range(14000)) + "</r>", "application/xml"),
])
def test_what_a_capture_selects_is_cut_at_the_cap_and_the_cut_recorded(receiver, modules, fields, deal, settings,
                                                                      capture_type, expression, body, content_type):
    settings.WEBHOOK_CAPTURE_TIMEOUT = 60  # `$..*` over 81,000 values takes seconds: the cap is what is tested here
    receiver.expect_request("/hook").respond_with_data(body, content_type=content_type)
    hook = hook_with(receiver, modules, fields, capture_type, captures=[
        ("success", expression, "Sync Status"), ("success", "$.items[0].name" if capture_type == "JSONPATH"
                                                 else "//item[1]/name/text()", "Invoice Number")])
    delivery = send(hook, deal)

    captured = delivery.attempts.get().captured
    assert len(json.dumps(captured, ensure_ascii=False).encode()) <= settings.WEBHOOK_MAX_CAPTURED_BYTES
    everything = captured["Sync Status"]
    assert everything["cut"].startswith("matches cut at 16 KB: ")  # 64 KB, half for matches, two captures
    assert everything["written"] == "not written: the matches were cut at 16 KB, so the value would be incomplete"
    assert captured["Invoice Number"] == {"expression": hook.captures.get(field=fields["Invoice Number"]).expression,
                                          "matches": ["item 0"], "written": "item 0"}
    deal.refresh_from_db()
    assert "Sync_Status" not in deal.values and deal.values["Invoice_Number"] == "item 0"
    from dispatcher.models import EngineCounter
    assert EngineCounter.objects.get(decision="capture", outcome="cut").count == 1


def test_a_secret_cut_in_two_by_the_cap_is_not_stored(receiver, modules, fields, deal, settings):
    """The mask knows whole secrets only: the part of one that the cut leaves must not reach the log."""
    settings.WEBHOOK_MAX_CAPTURED_BYTES = 2048
    token = "tok-" + "s3cr3t" * 33
    receiver.expect_request("/hook").respond_with_json({"echo": (token + "-") * 40})
    hook = webhook_create(module=modules["Deals"], name="Echo", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", token)])
    hook.capture_response = True
    hook.save()
    Capture.objects.create(webhook=hook, when="success", expression="$.echo", field=fields["Sync Status"])
    captured = send(hook, deal).attempts.get().captured
    assert "cut" in captured["Sync Status"] and "s3cr3ts3cr3t" not in json.dumps(captured)
    deal.refresh_from_db()
    assert "Sync_Status" not in deal.values


def test_the_capture_process_starts_with_an_empty_environment(monkeypatch):
    """What runs an admin's expressions on a receiver's answer gets no key, password or database URL."""
    from pathlib import Path

    from dispatcher.capture.sandbox import Sandbox

    for name, value in [("DJANGO_SECRET_KEY", "worker-secret-key"), ("WEBHOOK_SECRETS_KEYS", "worker-fernet-key"),
                        ("DATABASE_URL", "postgres://app:worker-password@db/webhooks")]:
        monkeypatch.setenv(name, value)
    child = Sandbox()
    try:
        answer = child.run({"type": "JSONPATH", "body": "eyJhIjogMX0=", "expressions": ["$.a"], "namespaces": {},
                            "max_bytes": [100]}, timeout=60)
        assert child.process is not None
        environment = Path(f"/proc/{child.process.pid}/environ").read_bytes()
    finally:
        child.stop()
    assert answer == {"matches": [[1]], "cut": [None]}  # it works without any
    assert environment == b""
