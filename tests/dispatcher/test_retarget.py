"""A webhook moved to another host does not take its secrets along (issue 16): admin form and import."""
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from dispatcher.config_io import config_export
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
