"""Secrets never leave: a run with a Basic auth password and a token in a custom parameter, against a receiver
that echoes the whole request back in a failing answer, re-encoded every way receivers and their logs do, then
every output of the run is searched for them: logs (text and JSON), e-mails, auditor pages, the log export,
the config export, /metrics."""
import base64
import html
import io
import json
import logging
import re
from html.entities import codepoint2name
from urllib.parse import quote, quote_plus

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from werkzeug import Response

from crm import services as crm_services
from crm.models import CrmUser
from dispatcher import delivery as delivery_engine
from dispatcher.models import Attempt, Delivery, DeliveryStatus, RetryPolicy
from tests.factories import staff_login, webhook_create
from tests.logformats import configured_formatter

PASSWORD = "pa&ss<wörd> \"hunter2\""  # characters that every encoding escapes differently
TOKEN = "tok/+=&é secret"


def lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def json_upper_hex(text: str) -> str:
    """JSON with \\u escapes in upper-case hex (\\u00E9), as some encoders write them."""
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), json.dumps(text))


def html_entities(text: str) -> str:
    """Named references where HTML 4 has one (&eacute; &amp; &quot;), numeric ones for the rest of non-ASCII."""
    return "".join(f"&{codepoint2name[ord(c)]};" if ord(c) in codepoint2name else c if c.isascii() else f"&#{ord(c)};"
                   for c in text)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def spellings(*secrets: str) -> set[str]:
    forms = set()
    for secret in secrets:
        encoded = {quote_plus(secret), quote_plus(secret, safe=""), quote(secret, safe="")}
        twice = {quote(quote(secret, safe=""), safe=""), quote_plus(quote_plus(secret))}
        forms |= {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
                  json_upper_hex(secret)[1:-1], html.escape(secret), html_entities(secret), b64(secret),
                  secret.upper(), *encoded, *map(lower_hex, encoded), *twice, *map(lower_hex, twice)}
    forms.add(b64(f"crm:{PASSWORD}"))
    return forms


def echo(request) -> Response:
    """A receiver that answers 500 with everything it was sent, headers and body, and again re-encoded:
    percent-encoded in lower-case hex, with + for spaces, and twice; as JSON with \\u escapes in lower- and
    upper-case hex; with HTML entities; upper-cased; and each value it was sent (and the Basic password) alone
    in base64, as receivers log them."""
    text = "\n".join(f"{k}: {v}" for k, v in request.headers.items()) + "\n\n" + request.get_data(as_text=True)
    values = [*request.args.values(), *request.form.values()]
    if request.is_json:
        values += [str(v) for v in request.get_json().values()]
    if request.authorization:
        values.append(request.authorization.password)
    forms = [text, lower_hex(quote(text, safe="")), quote_plus(text), json.dumps(text), json_upper_hex(text),
             html.escape(text), html_entities(text), quote(quote(text, safe=""), safe=""), text.upper(),
             *map(b64, values)]
    return Response("\n".join(forms), status=500,
                    headers={"X-Echo-Authorization": request.headers.get("Authorization", "")})


@pytest.fixture
def run(receiver, owner, modules, settings, caplog, django_capture_on_commit_callbacks):
    """One failed delivery (no retries), with every log line captured."""
    settings.ADMINS = []
    CrmUser.objects.create(organization=owner.organization, last_name="Admin", email="admin@zylker.example",
                           is_admin=True)
    receiver.expect_request("/hook").respond_with_handler(echo)
    no_retry = RetryPolicy.objects.create(code="none", name="No retry", delays=[], failure_emails="each")
    hook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"), retry_policy=no_retry,
                          auth_type="basic", auth_username="crm", auth_password=PASSWORD,
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", TOKEN)])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    caplog.set_level(logging.DEBUG)
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    with django_capture_on_commit_callbacks(execute=True):  # the failure e-mail is queued as the outcome commits
        delivery_engine.delivery_run(delivery_id=delivery.pk)
    delivery = Delivery.objects.get(pk=delivery.pk)
    assert delivery.status == DeliveryStatus.FAILED and len(receiver.log) == 1
    sent = receiver.log[0][0]
    assert sent.headers["Authorization"].endswith(base64.b64encode(f"crm:{PASSWORD}".encode()).decode())
    assert TOKEN in sent.args.get("authtoken", "") + sent.get_data(as_text=True)  # the receiver did get them
    return hook, delivery


@pytest.mark.django_db
def test_no_output_of_a_run_contains_a_secret(run, client, django_user_model, caplog):
    hook, delivery = run
    outputs: dict[str, str] = {}
    outputs["log (pytest)"] = caplog.text
    for name in ("text", "json"):  # LOG_FORMAT's formatters, with the events' fields
        formatter = configured_formatter(name)
        outputs[f"log ({name})"] = "\n".join(formatter.format(record) for record in caplog.records)
    outputs["e-mails"] = "\n".join(f"{m.subject}\n{m.body}" for m in mail.outbox)
    assert mail.outbox, "the failure e-mail was sent"
    attempt = Attempt.objects.get(delivery=delivery)
    outputs["stored attempt"] = json.dumps([attempt.response_body, attempt.response_headers, attempt.error_message])
    outputs["stored request display"] = delivery.request_display

    client.force_login(staff_login(hook.organization, "auditor", group="Auditor"))
    for url in [reverse("admin:dispatcher_delivery_changelist"),
                reverse("admin:dispatcher_delivery_change", args=[delivery.pk]),
                reverse("admin:dispatcher_attempt_changelist"),
                reverse("admin:dispatcher_attempt_change", args=[attempt.pk]),
                reverse("admin:dispatcher_webhook_change", args=[hook.pk]),
                reverse("admin:dispatcher_delivery_export"), "/metrics"]:
        response = client.get(url)
        assert response.status_code == 200, url
        outputs[url] = (b"".join(response.streaming_content) if response.streaming else response.content).decode()
    assert "********" in outputs[reverse("admin:dispatcher_attempt_change", args=[attempt.pk])]

    export = io.StringIO()
    call_command("export_config", stdout=export)
    outputs["export_config"] = export.getvalue()

    for name, text in outputs.items():
        for form in spellings(PASSWORD, TOKEN, hook.signing_secret):
            assert form not in text, f"{form!r} in {name}"


@pytest.mark.django_db
def test_a_new_api_key_is_shown_once_on_an_uncached_page_and_never_in_a_cookie(client, django_user_model, owner):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    refused = client.post(reverse("admin:crm_apikey_add"), {"user": owner.pk, "name": "CI"})
    assert "Choose at least one scope" in refused.content.decode()
    response = client.post(reverse("admin:crm_apikey_add"), {"user": owner.pk, "name": "CI",
                                                              "scopes": ["channels", "deliveries:read"]})
    page = response.content.decode()
    [raw] = re.findall(r'id="new-api-key"[^>]*>(crm_[^<]+)<', page)
    assert "no-store" in response["Cache-Control"]
    assert all(raw not in morsel.value for morsel in response.cookies.values())
    assert all(raw not in morsel.value for morsel in client.cookies.values())
    listing = client.get(reverse("admin:crm_apikey_changelist")).content.decode()
    assert raw not in listing and "CI" in listing
    assert client.get("/api/v1/channels/", headers={"X-API-Key": raw}).status_code == 200
    assert client.get("/api/v1/records/Deals/", headers={"X-API-Key": raw}).status_code == 403  # not its scope
    assert "channels, deliveries:read" in listing


@pytest.mark.django_db
def test_files_with_secrets_are_the_owners_only(tmp_path, settings, owner, modules):
    import stat

    webhook_create(module=modules["Deals"], name="Books", auth_type="basic", auth_username="crm",
                   auth_password=PASSWORD)
    path = tmp_path / "with-secrets.json"
    path.write_text("old")
    path.chmod(0o644)
    call_command("export_config", "--include-secrets", "-o", str(path))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["webhooks"][0]["auth"]["password"] == PASSWORD
    assert stat.S_IMODE(settings.VAR_DIR.stat().st_mode) == 0o700  # the SQLite file, broker, keys and logins
