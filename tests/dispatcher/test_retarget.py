"""A webhook moved to another host does not take its secrets along (issue 16): admin form and import."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from dispatcher.config_io.export import config_export
from dispatcher.models import Webhook
from tests.dispatcher.test_admin import form_data
from tests.factories import webhook_create


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


@pytest.fixture
def hook(modules):
    return webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                          auth_type="basic", auth_username="crm", auth_password="hunter2!",
                          custom=[("authtoken", "tok-abcdef")])


def change(admin_client, hook, organization, modules, *, url, password="", token=""):
    parameter = hook.custom_parameters.get()
    data = form_data(organization, modules["Deals"], url=url, auth_type="basic", auth_username="crm",
                     auth_password=password, initial=(0, 1),
                     custom=[{"id": parameter.pk, "webhook": hook.pk, "name": "authtoken", "value": token,
                              "position": 0}])
    return admin_client.post(reverse("admin:dispatcher_webhook_change", args=[hook.pk]), data, follow=True)


def test_moving_a_webhook_to_another_host_asks_for_its_secrets_again(admin_client, hook, organization, modules):
    page = change(admin_client, hook, organization, modules, url="https://collector.evil.example/hook")
    text = page.content.decode()
    assert "The URL now goes to https://collector.evil.example:443 instead of https://books.example.com:443: " \
           "enter the Basic password again." in text
    assert "enter the value of “authtoken” again" in text
    assert Webhook.objects.get(pk=hook.pk).url == "https://books.example.com/hook"  # nothing saved
    for url in ("http://books.example.com/hook", "https://books.example.com:8443/hook"):  # scheme, port
        assert "again" in change(admin_client, hook, organization, modules, url=url).content.decode()
    moved = change(admin_client, hook, organization, modules, url="https://collector.evil.example/hook",
                   password="new-pass", token="tok-new")
    assert b"was changed successfully" in moved.content
    stored = Webhook.objects.get(pk=hook.pk)
    assert (stored.auth_password, stored.custom_parameters.get().value) == ("new-pass", "tok-new")


def test_a_new_path_on_the_same_host_keeps_the_secrets(admin_client, hook, organization, modules):
    page = change(admin_client, hook, organization, modules, url="https://BOOKS.example.com:443/v2/hook")
    assert b"was changed successfully" in page.content
    stored = Webhook.objects.get(pk=hook.pk)
    assert (stored.auth_password, stored.custom_parameters.get().value) == ("hunter2!", "tok-abcdef")


def test_an_import_that_moves_a_webhook_without_its_secrets_is_refused(hook, tmp_path):
    data = config_export()  # secrets exported as null
    [entry] = data["webhooks"]
    entry["url"] = "https://collector.evil.example/hook"
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CommandError) as caught:
        call_command("import_config", str(path), stdout=StringIO())
    assert "enter auth.password, the value of custom parameter “authtoken” again" in str(caught.value)
    assert Webhook.objects.get(pk=hook.pk).url == "https://books.example.com/hook"
    entry["auth"]["password"], entry["custom_parameters"][0]["value"] = "new-pass", "tok-new"
    path.write_text(json.dumps(data))
    call_command("import_config", str(path), stdout=StringIO())
    stored = Webhook.objects.get(pk=hook.pk)
    assert (stored.url, stored.auth_password, stored.custom_parameters.get().value) == (
        "https://collector.evil.example/hook", "new-pass", "tok-new")


@pytest.fixture
def oauth_hook(modules):
    return webhook_create(module=modules["Deals"], name="Ledger", url="https://ledger.example.com/hook",
                          auth_type="oauth2", oauth_token_url="https://auth.ledger.example.com/token",
                          oauth_client_id="crm", oauth_client_secret="client-sekrit",
                          headers=[("X-Api-Key", "key-sekrit", True), ("X-Source", "crm", False)])


def test_the_admin_asks_again_for_the_oauth_secret_when_the_token_url_moves(admin_client, oauth_hook, organization,
                                                                           modules):
    header = oauth_hook.headers.get(name="X-Api-Key")
    other = oauth_hook.headers.get(name="X-Source")

    def post(**changes):
        data = form_data(organization, modules["Deals"], name="Ledger", url="https://ledger.example.com/hook",
                         auth_type="oauth2", oauth_token_url="https://auth.ledger.example.com/token",
                         oauth_client_id="crm", oauth_client_secret="", oauth_scope="", oauth_client_auth="basic",
                         initial=(0, 0, 2), headers=[
                             {"id": header.pk, "webhook": oauth_hook.pk, "name": "X-Api-Key", "value": "",
                              "is_secret": "on", "position": 0},
                             {"id": other.pk, "webhook": oauth_hook.pk, "name": "X-Source", "value": "crm",
                              "position": 1}])
        data.update(changes)
        return admin_client.post(reverse("admin:dispatcher_webhook_change", args=[oauth_hook.pk]), data,
                                 follow=True).content.decode()

    page = post(oauth_token_url="https://collector.evil.example/token")
    assert "instead of https://auth.ledger.example.com:443: enter the OAuth client secret again" in page
    page = post(url="https://collector.evil.example/hook")
    assert "enter the value of header “X-Api-Key” again" in page
    assert Webhook.objects.get(pk=oauth_hook.pk).url == "https://ledger.example.com/hook"
    assert "was changed successfully" in post(oauth_scope="hooks.write")  # same hosts: the secrets stay
    stored = Webhook.objects.get(pk=oauth_hook.pk)
    assert (stored.oauth_client_secret, stored.oauth_scope) == ("client-sekrit", "hooks.write")
    assert stored.headers.get(name="X-Api-Key").value == "key-sekrit"
    page = admin_client.get(reverse("admin:dispatcher_webhook_change", args=[oauth_hook.pk])).content.decode()
    assert "client-sekrit" not in page and "key-sekrit" not in page


def test_new_auth_fields_travel_in_the_config_file_and_secrets_only_when_asked(oauth_hook, tmp_path):
    [plain] = config_export()["webhooks"]
    assert plain["auth"] == {"type": "oauth2", "username": "", "password": None, "token_url":
                             "https://auth.ledger.example.com/token", "client_id": "crm", "client_secret": None,
                             "scope": "", "client_auth": "basic"}
    assert plain["headers"] == [{"name": "X-Api-Key", "value": None, "secret": True},
                                {"name": "X-Source", "value": "crm", "secret": False}]
    [full] = config_export(include_secrets=True)["webhooks"]
    assert full["auth"]["client_secret"] == "client-sekrit" and full["headers"][0]["value"] == "key-sekrit"
    plain["auth"]["token_url"] = "https://collector.evil.example/token"
    path = tmp_path / "moved.json"
    path.write_text(json.dumps({**config_export(), "webhooks": [plain]}))
    with pytest.raises(CommandError) as caught:
        call_command("import_config", str(path), stdout=StringIO())
    assert "enter auth.client_secret again" in str(caught.value)
    plain["auth"]["token_url"] = "https://auth.ledger.example.com/token"
    plain["headers"].append({"name": "Host", "value": "evil", "secret": False})
    path.write_text(json.dumps({**config_export(), "webhooks": [plain]}))
    with pytest.raises(CommandError) as caught:
        call_command("import_config", str(path), stdout=StringIO())
    assert "headers: Host: The header Host is set by the connection" in str(caught.value)
    plain["headers"].pop()
    path.write_text(json.dumps({**config_export(), "webhooks": [plain]}))
    call_command("import_config", str(path), stdout=StringIO())  # unchanged, secrets kept
    stored = Webhook.objects.get(pk=oauth_hook.pk)
    assert stored.oauth_client_secret == "client-sekrit" and stored.headers.get(name="X-Api-Key").value == "key-sekrit"


def test_an_oauth_webhook_moved_to_another_host_asks_for_the_client_secret_again(admin_client, organization, modules,
                                                                                 tmp_path):
    """The access token the client secret buys is sent to the webhook's URL: a new host for the URL (the token
    URL unchanged) must not receive a token bought with a secret entered for the old one."""
    hook = webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                          auth_type="oauth2", oauth_token_url="https://auth.example.com/token", oauth_client_id="crm",
                          oauth_client_secret="client-s3cret")
    oauth = {"auth_type": "oauth2", "oauth_token_url": "https://auth.example.com/token", "oauth_client_id": "crm",
             "oauth_client_secret": "", "oauth_scope": "", "oauth_client_auth": "basic"}
    data = form_data(organization, modules["Deals"], url="https://collector.evil.example/hook", **oauth)
    page = admin_client.post(reverse("admin:dispatcher_webhook_change", args=[hook.pk]), data, follow=True)
    assert "enter the OAuth client secret again" in page.content.decode()
    assert Webhook.objects.get(pk=hook.pk).url == "https://books.example.com/hook"  # nothing saved

    exported = config_export()
    exported["webhooks"][0]["url"] = "https://collector.evil.example/hook"
    path = tmp_path / "moved.json"
    path.write_text(json.dumps(exported))
    with pytest.raises(CommandError, match="client_secret"):
        call_command("import_config", str(path), stdout=StringIO())
    assert Webhook.objects.get(pk=hook.pk).url == "https://books.example.com/hook"


def test_a_secret_header_cannot_be_unticked_into_a_plain_one_without_typing_it(admin_client, organization, modules):
    """Unticking "secret" with the value left empty would make the stored secret a plain value nobody typed:
    shown unmasked, and outside the retarget rule (moved to another host with it)."""
    from dispatcher.models import WebhookHeader

    hook = webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                          headers=[("X-Api-Key", "s3cret-header", True)])
    header = hook.headers.get()
    data = form_data(organization, modules["Deals"], url="https://collector.evil.example/hook", initial=(0, 0, 1),
                     headers=[{"id": header.pk, "webhook": hook.pk, "name": "X-Api-Key", "value": "", "position": 0}])
    page = admin_client.post(reverse("admin:dispatcher_webhook_change", args=[hook.pk]), data, follow=True)
    assert "Type the value again to make this header not secret" in page.content.decode()
    stored = WebhookHeader.objects.get(pk=header.pk)
    assert (stored.value, stored.is_secret) == ("s3cret-header", True)
    assert Webhook.objects.get(pk=hook.pk).url == "https://books.example.com/hook"
