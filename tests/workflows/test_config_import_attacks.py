"""Configuration files are checked exactly like the admin and keep every secret to its host (issue 25).

Each attack is made through the command and the REST API, and what a user sees is asserted: the
problem line naming the webhook and the key, a 4xx problem document (never a 500), and nothing changed.
"""
import base64
import copy
import json
import secrets
from io import StringIO

import pytest
import trustme
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from standardwebhooks.webhooks import Webhook as StandardWebhook

from crm import services as crm_services
from crm.models import ApiScope
from dispatcher.senders import webhooks as dispatcher_services
from dispatcher.models import Webhook
from tests.dispatcher.test_admin import form_data
from tests.factories import webhook_create
from workflows.config_io import config_export_all
from workflows.models import WorkflowRule

ENTITY = [("deal", "${Deals.Deal Name}")]
EVIL = "https://collector.evil.example/hook"


def cli_import(tmp_path, data) -> str:
    path = tmp_path / "setup.json"
    path.write_text(json.dumps(data))
    out = StringIO()
    call_command("import_config", str(path), stdout=out)
    return out.getvalue()


def cli_refuses(tmp_path, data) -> str:
    with pytest.raises(CommandError) as refused:
        cli_import(tmp_path, data)
    return str(refused.value)


@pytest.fixture
def api(client, owner, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 10 ** 6
    key = crm_services.api_key_create(user=owner, name="CI", scopes=[ApiScope.CONFIG])[1]

    def post(data, path="config/?dry_run=true"):
        body = data if isinstance(data, str) else json.dumps(data)
        return client.post(f"/api/v1/{path}", data=body, content_type="application/json",
                           headers={"X-API-Key": key})

    return post


def exported(organization, *, include_secrets=False) -> dict:
    return config_export_all(organization=organization, include_secrets=include_secrets)


# --- 2. A secret goes only to the host it was entered for, whatever the file leaves out ------------------
def client_certificate() -> tuple[str, str]:
    issued = trustme.CA().issue_cert("crm-webhooks.example")
    return ("".join(blob.bytes().decode() for blob in issued.cert_chain_pems),
            issued.private_key_pem.bytes().decode())


def drop(*path):
    """Leave a key out of the entry: what a file that "forgets" a secret looks like."""
    def apply(entry):
        for key in path[:-1]:
            entry = entry[key]
        entry.pop(path[-1])
    return apply


SECRETS = {
    "Basic password": (lambda: {"auth_type": "basic", "auth_username": "crm", "auth_password": "pw-sekrit"},
                       drop("auth", "password"), "url", "auth.password"),
    "bearer token": (lambda: {"auth_type": "bearer", "auth_token": "tok-sekrit"},
                     drop("auth", "token"), "url", "auth.token"),
    "OAuth client secret": (lambda: {"auth_type": "oauth2", "oauth_token_url": "https://auth.books.example.com/token",
                                     "oauth_client_id": "crm", "oauth_client_secret": "cs-sekrit"},
                            drop("auth", "client_secret"), "token_url", "auth.client_secret"),
    "secret custom parameter": (lambda: {"custom": [("authtoken", "tok-sekrit")]},
                                lambda entry: entry["custom_parameters"][0].update(value=None), "url",
                                "the value of custom parameter “authtoken”"),
    "secret header, no headers key": (lambda: {"headers": [("X-Api-Key", "key-sekrit", True)]},
                                      drop("headers"), "url", "the value of header “X-Api-Key”"),
    "secret header, value null": (lambda: {"headers": [("X-Api-Key", "key-sekrit", True)]},
                                  lambda entry: entry["headers"][0].update(value=None), "url",
                                  "the value of header “X-Api-Key”"),
    "TLS client key": (lambda: dict(zip(("tls_client_certificate", "tls_client_key"), client_certificate(),
                                        strict=True)),
                       drop("tls", "client_key"), "url", "tls.client_key"),
}


@pytest.mark.parametrize("kind", SECRETS)
def test_a_file_that_moves_a_webhook_and_leaves_a_secret_out_is_refused(kind, organization, modules, api, tmp_path):
    attributes, forget, moved, label = SECRETS[kind]
    hook = webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                          entity=ENTITY, **attributes())
    data = exported(organization)
    [entry] = data["webhooks"]
    forget(entry)
    if moved == "url":
        entry["url"] = EVIL
    else:
        entry["auth"]["token_url"] = "https://collector.evil.example/token"
    message = cli_refuses(tmp_path, data)
    assert "webhooks[0] “Books”: The URL now goes to https://collector.evil.example:443 instead of https://" in message
    assert f"enter {label} again. Secrets are only sent to the host they were entered for." in message
    response = api(data, path="config/")
    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    assert any(f"enter {label} again" in line for line in response.json()["problems"])
    stored = Webhook.objects.get(pk=hook.pk)
    assert (stored.url, stored.oauth_token_url) == (hook.url, hook.oauth_token_url)


def test_the_new_host_gets_only_the_header_value_entered_for_it(receiver, organization, modules, owner, tmp_path):
    """The attack of issue 25 over a real socket: a file without "headers" moves the webhook; refused. With the
    header entered again for the new host, that value, and never the old one, reaches the new host."""
    hook = webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                          entity=ENTITY, headers=[("X-Api-Key", "key-for-books", True)])
    data = exported(organization)
    [entry] = data["webhooks"]
    del entry["headers"]
    entry["url"] = receiver.url_for("/hook")
    assert "enter the value of header “X-Api-Key” again" in cli_refuses(tmp_path, data)
    entry["headers"] = [{"name": "X-Api-Key", "value": "key-for-receiver", "secret": True}]
    assert "Changed 1 webhook(s): Books" in cli_import(tmp_path, data)

    receiver.expect_request("/hook").respond_with_data("ok")
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    _, result, _ = dispatcher_services.webhook_send_test(webhook=Webhook.objects.get(pk=hook.pk), record=deal)
    assert result.status_code == 200
    [(request, _)] = receiver.log
    assert request.headers["X-Api-Key"] == "key-for-receiver"
    assert "key-for-books" not in str(request.headers) + request.get_data(as_text=True)


def test_a_file_that_keeps_the_host_keeps_every_secret_it_leaves_out(organization, modules, tmp_path):
    certificate, key = client_certificate()
    hook = webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                          entity=ENTITY, auth_type="basic", auth_username="crm", auth_password="pw-sekrit",
                          custom=[("authtoken", "tok-sekrit")], headers=[("X-Api-Key", "key-sekrit", True)],
                          tls_client_certificate=certificate, tls_client_key=key)
    data = exported(organization)
    [entry] = data["webhooks"]
    del entry["headers"]
    entry["url"] = "https://BOOKS.example.com:443/v2/hook"  # same scheme, host and port
    assert "Changed 1 webhook(s): Books" in cli_import(tmp_path, data)
    stored = Webhook.objects.get(pk=hook.pk)
    assert (stored.auth_password, stored.tls_client_key) == ("pw-sekrit", key)
    assert stored.custom_parameters.get().value == "tok-sekrit" and stored.headers.get().value == "key-sekrit"


# --- 3. One validation for the admin, the import and the API ----------------------------------------------
def a_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.mark.parametrize(("change", "line"), [
    ({"signing_secret": "whsec_abc"},
     "webhooks[0] “Books”: signing_secret: This is not base64 after “whsec_”: a signing secret is “whsec_” "
     "followed by 24 to 64 random bytes in base64, as “Rotate signing secret” makes them."),
    ({"signing_secret": "whsec_" + base64.b64encode(b"short").decode()},
     "webhooks[0] “Books”: signing_secret: This secret has 5 bytes: a signing secret is “whsec_” followed by 24"),
    ({"signing_secret": "sekrit-without-prefix"}, "webhooks[0] “Books”: signing_secret: This is not a signing secret"),
    ({"previous_signing_secret": {"secret": "whsec_" + base64.b64encode(bytes(24)).decode(),
                                  "expires": "9999-01-01T00:00:00+00:00"}},
     "webhooks[0] “Books”: previous_signing_secret: The previous secret would sign until 9999-01-01 00:00 UTC; "
     "after a rotation it signs for at most WEBHOOK_SECRET_GRACE_HOURS (24 h) from now."),
    ({"previous_signing_secret": {"secret": "whsec_x", "expires": "2026-12-03T10:00:00+00:00"}},
     "webhooks[0] “Books”: previous_signing_secret: This is not base64 after “whsec_”"),
    ({"previous_signing_secret": {"secret": a_secret(), "expires": "9999-12-31T23:59:59-23:59"}},
     "webhooks[0] “Books”: previous_signing_secret: “expires” must be an ISO 8601 date and time that exists in UTC"),
    ({"headers": [{"name": "X-Big", "value": "x" * 5000, "secret": False}]},
     "webhooks[0] “Books”: headers: X-Big: Ensure this value has at most 2000 characters (it has 5000)."),
    ({"custom_parameters": [{"name": "token", "value": "t"}, {"name": "x" * 101, "value": "v"}]},
     "webhooks[0] “Books”: custom_parameters: Ensure this value has at most 100 characters (it has 101)."),
    ({"entity_parameters": [{"name": "deal", "value": "x" * 3001}]},
     "webhooks[0] “Books”: entity_parameters: The value of “deal”: Ensure this value has at most 3000 characters"),
    ({"capture": {"enabled": True, "type": "JSONPATH", "namespaces": "",
                  "captures": [{"when": "sometimes", "expression": "$.id", "field": "Deal_Name"}]}},
     "webhooks[0] “Books”: captures: when: Value 'sometimes' is not a valid choice."),
])
def test_the_import_refuses_what_the_admin_refuses(change, line, organization, modules, api, tmp_path, settings):
    settings.WEBHOOK_SECRET_GRACE_HOURS = 24
    hook = webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                          entity=ENTITY, custom=[("token", "t")])
    data = exported(organization, include_secrets=True)
    data["webhooks"][0].update(copy.deepcopy(change))
    message = cli_refuses(tmp_path, data)
    assert line in message
    assert "whsec_abc" not in message  # a secret is never repeated in a message
    response = api(data)
    assert response.status_code == 422 and any(line in problem for problem in response.json()["problems"])
    assert Webhook.objects.get(pk=hook.pk).signing_secret == hook.signing_secret
    assert not hook.headers.exists()


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def test_the_admin_and_the_import_refuse_a_long_header_value_with_the_same_message(admin_client, organization, modules,
                                                                                  tmp_path):
    long_value = [{"name": "X-Big", "value": "x" * 5000, "position": 0}]
    page = admin_client.post(reverse("admin:dispatcher_webhook_add"),
                             form_data(organization, modules["Deals"], headers=long_value), follow=True)
    assert "Ensure this value has at most 2000 characters (it has 5000)." in page.content.decode()
    assert not Webhook.objects.exists()
    data = {"format": "crm-webhooks", "version": 1, "webhooks": [
        {"organization": organization.name, "module": "Deals", "name": "Books", "url": "https://books.example.com/",
         "headers": [{"name": "X-Big", "value": "x" * 5000, "secret": False}]}]}
    assert "Ensure this value has at most 2000 characters (it has 5000)." in cli_refuses(tmp_path, data)
    assert not Webhook.objects.exists()


def test_an_imported_signing_secret_that_is_well_formed_signs_what_the_receiver_verifies(receiver, organization,
                                                                                        modules, owner, tmp_path):
    hook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"), entity=ENTITY)
    secret = a_secret()
    data = exported(organization, include_secrets=True)
    data["webhooks"][0]["signing_secret"] = secret
    assert "Changed 1 webhook(s): Books" in cli_import(tmp_path, data)
    receiver.expect_request("/hook").respond_with_data("ok")
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    dispatcher_services.webhook_send_test(webhook=Webhook.objects.get(pk=hook.pk), record=deal)
    [(request, _)] = receiver.log
    StandardWebhook(secret).verify(request.get_data(), {name: request.headers[name] for name in (
        "webhook-id", "webhook-timestamp", "webhook-signature")})  # raises if it does not verify


# --- 4. Every malformed shape is a located problem, never a 500 ----------------------------------------------
@pytest.fixture
def setup(organization, modules):
    webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook", entity=ENTITY,
                   auth_type="basic", auth_username="crm", auth_password="pw", custom=[("token", "t")],
                   headers=[("X-Api-Key", "k", True)])
    data = exported(organization, include_secrets=True)
    data["workflow_rules"] = [{
        "organization": organization.name, "module": "Deals", "name": "Won deals", "trigger": "edit",
        "criteria_pattern": "1", "conditions": [{"number": 1, "field": "Stage", "operator": "is",
                                                  "value": "Closed Won"}],
        "actions": [{"webhook": "Books", "kind": "time_based", "delay": 5, "unit": "minutes"}]}]
    return data


def at(data, path):
    for key in path:
        data = data[key]
    return data


SHAPES = [
    (("webhooks", 0, "capture"), {"captures": 1}, "webhooks[0] “Books”: capture.captures: must be a list (got 1)."),
    (("webhooks", 0, "auth"), ["basic"], "webhooks[0] “Books”: auth: must be an object (got a list)."),
    (("webhooks", 0, "headers", 0), "X-Api-Key", "webhooks[0] “Books”: headers[0]: must be an object (got text)."),
    (("webhooks", 0, "headers", 0, "secret"), "yes", "webhooks[0] “Books”: headers[0].secret: must be true or false"),
    (("webhooks", 0, "entity_parameters", 0, "value"), None,
     "webhooks[0] “Books”: entity_parameters[0].value: must be text (got null)."),
    (("webhooks", 0, "custom_parameters"), {"token": "t"}, "webhooks[0] “Books”: custom_parameters: must be a list"),
    (("webhooks", 0, "previous_signing_secret"), "whsec_x",
     "webhooks[0] “Books”: previous_signing_secret: must be an object (got text)."),
    (("webhooks", 0, "retry_policy"), 5, "webhooks[0] “Books”: retry_policy: must be text (got 5)."),
    (("webhooks", 0, "active"), "true", "webhooks[0] “Books”: active: must be true or false (got text)."),
    (("webhooks", 0, "colour"), "red", "webhooks[0] “Books”: unknown keys colour."),
    (("webhooks", 0, "description"), "a\x00b", "webhooks[0].description: text must not contain NUL characters"),
    (("webhooks",), {"Books": {}}, "\"webhooks\" must be a list."),
    (("webhook",), [], "unknown key “webhook”"),
    (("workflow_rules", 0, "conditions"), {"number": 1}, "workflow_rules[0] “Won deals”: conditions: must be a list"),
    (("workflow_rules", 0, "conditions", 0, "number"), "1",
     "workflow_rules[0] “Won deals”: conditions[0].number: must be a whole number (got text)."),
    (("workflow_rules", 0, "conditions", 0, "number"), 10 ** 30,
     "workflow_rules[0] “Won deals”: conditions[0].number: must be a whole number from -2147483648 to 2147483647"),
    (("workflow_rules", 0, "conditions", 0, "operator"), "resembles",
     "workflow_rules[0] “Won deals”: conditions[0].operator: Value 'resembles' is not a valid choice."),
    (("workflow_rules", 0, "conditions", 0, "value"), ["Closed Won"],
     "workflow_rules[0] “Won deals”: conditions[0].value: must be text or a number (got a list)."),
    (("workflow_rules", 0, "actions", 0), None, "workflow_rules[0] “Won deals”: actions[0]: must be an object"),
    (("workflow_rules", 0, "actions", 0, "delay"), 10 ** 12,
     "workflow_rules[0] “Won deals”: actions[0].delay: must be a whole number from -2147483648 to 2147483647 "
     "(got 1000000000000)."),
    (("workflow_rules", 0, "execution_order"), -1,
     "workflow_rules[0] “Won deals”: execution_order: Ensure this value is greater than or equal to 0."),
    (("retry_policies", 0, "max_retry_after"), {"hours": 6},
     "retry_policies[0] “standard”: max_retry_after: must be a whole number (got an object)."),
    (("retry_policies", 0, "max_retry_after"), 10 ** 30, "retry_policies[0] “standard”: max_retry_after: must be a"),
]


@pytest.mark.parametrize(("path", "value", "line"), SHAPES, ids=[".".join(map(str, s[0])) for s in SHAPES])
def test_a_malformed_shape_is_a_located_problem_for_the_command_and_a_422_for_the_api(setup, api, tmp_path, path,
                                                                                      value, line):
    data = copy.deepcopy(setup)
    at(data, path[:-1])[path[-1]] = value
    assert line in cli_refuses(tmp_path, data)
    response = api(data)
    assert (response.status_code, response["Content-Type"]) == (422, "application/problem+json")
    assert response.json()["code"] == "invalid_config"
    assert any(line in problem for problem in response.json()["problems"]), response.json()["problems"]
    assert Webhook.objects.get().description == "" and not WorkflowRule.objects.exists()


def test_text_json_allows_but_no_database_stores_is_refused_by_the_command(setup, tmp_path):
    """A lone surrogate: the API's parser refuses it (400 invalid_json); a file given to the command is read
    with Python's json module, which accepts it."""
    setup["webhooks"][0]["description"] = "\ud800"
    assert "webhooks[0].description: text must be valid Unicode" in cli_refuses(tmp_path, setup)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2 ** 80, max_value=2 ** 80) | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(["\x00", "x" * 3001, "whsec_abc", "9999-12-31T23:59:59-23:59",
                                             "Deal_Name", "basic", "oauth2", "https://evil.example/", "${Deals.Amount}"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def paths_of(data, prefix=()):
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from paths_of(value, (*prefix, index))


@st.composite
def mutated(draw, base):
    data = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from([p for p in paths_of(data) if p]))
        parent = at(data, path[:-1])
        if isinstance(parent, dict) and draw(st.booleans()):
            parent.pop(path[-1])  # a key left out
        else:
            parent[path[-1]] = draw(JSON_VALUES)  # a value of any shape
    return data


def test_any_shape_of_file_is_imported_or_refused_with_problems_never_a_crash(setup, api):
    """Property: whatever is changed where in a valid file, the API answers 200 or a 4xx problem document."""

    @given(data=mutated(setup))
    @hypothesis_settings(max_examples=80, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    def imported_or_refused(data):
        response = api(data)  # a dry run: every example starts from the same installation
        assert response.status_code in (200, 400, 422), response.content[:2000]
        if response.status_code != 200:
            assert response["Content-Type"] == "application/problem+json"
            assert response.json()["code"] in ("invalid_config", "invalid_body", "invalid_json")

    imported_or_refused()


@pytest.mark.parametrize(("content", "message"), [
    (b"[" * 100_000 + b"]" * 100_000, "cannot be read as JSON: it is nested too deeply."),
    (b'{"format": "crm-webhooks", "version": ' + b"9" * 5000 + b"}", "cannot be read as JSON: Exceeds the limit"),
    ('{"format": "crm-webhooks", "naïve": 1}'.encode("latin-1"), "is not UTF-8 text"),
])
def test_a_file_the_command_cannot_read_is_refused_with_the_reason(db, tmp_path, content, message):
    path = tmp_path / "setup.json"
    path.write_bytes(content)
    with pytest.raises(CommandError, match=message):
        call_command("import_config", str(path), stdout=StringIO())
