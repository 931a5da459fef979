"""The Auditor and Integration admin groups: auditors read everything and change nothing, see no secret."""
import pytest
from django.urls import reverse
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, Webhook
from tests.dispatcher.test_admin import form_data
from tests.factories import staff_login, webhook_create

SECRETS = ("hunter2!", "tok-abcdef", "key-abcdef")


@pytest.fixture
def auditor(client, organization):
    client.force_login(staff_login(organization, "auditor", group="Auditor"))
    return client


@pytest.fixture
def setup(owner, modules, receiver):
    receiver.expect_request("/hook").respond_with_data("nope", status=500)
    webhook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                             auth_type="basic", auth_username="crm", auth_password="hunter2!",
                             entity=[("deal", "${Deals.Deal Name}")], custom=[("authtoken", "tok-abcdef")],
                             headers=[("X-Api-Key", "key-abcdef", True), ("X-Source", "crm-books", False)])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery = delivery_engine.delivery_enqueue(webhook=webhook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    return webhook, deal, Delivery.objects.get(pk=delivery.pk)


def test_an_auditor_reads_configuration_and_logs_without_any_secret(auditor, setup):
    webhook, deal, delivery = setup
    pages = [
        reverse("admin:dispatcher_webhook_changelist"),
        reverse("admin:dispatcher_webhook_change", args=[webhook.pk]),
        reverse("admin:dispatcher_webhook_preview", args=[webhook.pk]) + f"?record={deal.pk}",
        reverse("admin:dispatcher_delivery_changelist"),
        reverse("admin:dispatcher_delivery_change", args=[delivery.pk]),
        reverse("admin:dispatcher_delivery_export"),
        reverse("admin:workflows_workflowrule_changelist"),
    ]
    for url in pages:
        response = auditor.get(url)
        assert response.status_code == 200, url
        text = b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()
        for secret in SECRETS + (webhook.signing_secret,):
            assert secret not in text, (url, secret)
    page = auditor.get(reverse("admin:dispatcher_webhook_change", args=[webhook.pk])).content.decode()
    assert "********" in page and 'name="_save"' not in page


def test_an_auditor_changes_nothing(auditor, setup):
    webhook, deal, delivery = setup
    assert auditor.post(reverse("admin:dispatcher_webhook_change", args=[webhook.pk]), {"name": "x"}).status_code == 403
    assert auditor.post(reverse("admin:dispatcher_webhook_preview", args=[webhook.pk]),
                        {"record": deal.pk}).status_code == 403  # no test send
    assert auditor.get(reverse("admin:dispatcher_webhook_add")).status_code == 403
    assert auditor.post(reverse("admin:dispatcher_webhook_delete", args=[webhook.pk]), {"post": "yes"}).status_code == 403
    changelist = reverse("admin:dispatcher_delivery_changelist")
    auditor.post(changelist, {"action": "resend", "_selected_action": [delivery.pk]})
    auditor.post(reverse("admin:dispatcher_webhook_changelist"),
                 {"action": "rotate_signing_secret", "_selected_action": [webhook.pk]})
    webhook.refresh_from_db()
    delivery.refresh_from_db()
    assert (webhook.name, delivery.status) == ("Books", "retry")


def test_an_integration_admin_manages_webhooks_and_resends(client, organization, setup):
    client.force_login(staff_login(organization, "integrator", group="Integration admin"))
    webhook, deal, delivery = setup
    Delivery.objects.filter(pk=delivery.pk).update(status="failed", finished_at=timezone.now())
    client.post(reverse("admin:dispatcher_delivery_changelist"), {"action": "resend", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert (delivery.status, delivery.resent_by) == ("queued", "integrator")
    page = client.get(reverse("admin:dispatcher_webhook_change", args=[webhook.pk])).content.decode()
    assert webhook.signing_secret in page  # needed to configure the receiver
    assert "hunter2!" not in page and "tok-abcdef" not in page


def headers_inline(page: str) -> str:
    """The "Custom headers" inline of a webhook's change page (empty when the page has none)."""
    start = page.find('id="headers-group"')
    return page[start:page.find('id="captures-group"', start)] if start >= 0 else ""


def test_an_auditor_sees_the_custom_headers_with_secret_values_masked(auditor, setup):
    webhook, deal, delivery = setup
    page = auditor.get(reverse("admin:dispatcher_webhook_change", args=[webhook.pk])).content.decode()
    inline = headers_inline(page)
    assert "Custom headers" in inline and "X-Api-Key" in inline and "X-Source" in inline
    assert "********" in inline and "crm-books" in inline  # a secret masked, a plain value shown
    assert "key-abcdef" not in page
    assert 'name="headers-0-value"' not in inline  # nothing to type into


def test_an_integration_admin_sees_and_changes_the_custom_headers(client, organization, modules, setup):
    client.force_login(staff_login(organization, "integrator", group="Integration admin"))
    webhook, deal, delivery = setup
    page = client.get(reverse("admin:dispatcher_webhook_change", args=[webhook.pk])).content.decode()
    inline = headers_inline(page)
    assert "Custom headers" in inline and 'value="X-Api-Key"' in inline
    assert 'placeholder="********"' in inline and "key-abcdef" not in page  # write-only
    secret, plain = webhook.headers.order_by("position")
    data = form_data(organization, modules["Deals"], url=webhook.url, auth_type="basic", auth_username="crm",
                     entity=[{"id": p.pk, "webhook": webhook.pk, "name": p.name, "value": p.value, "position": 0}
                             for p in webhook.entity_parameters.all()],
                     custom=[{"id": p.pk, "webhook": webhook.pk, "name": p.name, "value": "", "position": 0}
                             for p in webhook.custom_parameters.all()],
                     headers=[{"id": secret.pk, "webhook": webhook.pk, "name": "X-Api-Key", "value": "",
                               "is_secret": "on", "position": 0},
                              {"id": plain.pk, "webhook": webhook.pk, "name": "X-Source", "value": "crm-ledger",
                               "position": 1}],
                     initial=(1, 1, 2))
    response = client.post(reverse("admin:dispatcher_webhook_change", args=[webhook.pk]), data, follow=True)
    assert b"was changed successfully" in response.content, response.content.decode()[-3000:]
    assert {h.name: h.value for h in webhook.headers.all()} == {"X-Api-Key": "key-abcdef", "X-Source": "crm-ledger"}


@pytest.fixture
def moved(organization, owner, modules, receiver):
    """A webhook with a secret header, entered for books.example.com; the receiver is another host."""
    receiver.expect_request("/hook").respond_with_data("ok")
    webhook = webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook",
                             headers=[("X-Api-Key", "key-abcdef", True), ("X-Source", "crm", False)])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    return webhook, deal, receiver.url_for("/hook")


def header_rows(webhook, secret_value: str) -> list[dict]:
    secret, plain = webhook.headers.order_by("position")
    return [{"id": secret.pk, "webhook": webhook.pk, "name": "X-Api-Key", "value": secret_value, "is_secret": "on",
             "position": 0},
            {"id": plain.pk, "webhook": webhook.pk, "name": "X-Source", "value": "crm", "position": 1}]


def test_an_integration_admin_moving_a_webhook_must_enter_its_secret_header_again(client, organization, modules,
                                                                                 moved, receiver):
    client.force_login(staff_login(organization, "integrator", group="Integration admin"))
    webhook, deal, new_url = moved
    change_url = reverse("admin:dispatcher_webhook_change", args=[webhook.pk])

    # The form as the page shows it: the secret header's value left empty (it is never shown).
    page = client.post(change_url, form_data(organization, modules["Deals"], url=new_url, initial=(0, 0, 2),
                                             headers=header_rows(webhook, "")), follow=True).content.decode()
    assert "enter the value of header “X-Api-Key” again" in page
    # A form without the headers at all (as a page without the inline would post) does not move them either.
    without_inline = {key: value for key, value in form_data(organization, modules["Deals"], url=new_url).items()
                      if not key.startswith("headers-")}
    client.post(change_url, without_inline, follow=True)
    stored = Webhook.objects.get(pk=webhook.pk)
    assert stored.url == webhook.url or "key-abcdef" not in stored.headers.values_list("value", flat=True)

    # Entered again, the move is saved, and the new host gets the new value, never the old one.
    page = client.post(change_url, form_data(organization, modules["Deals"], url=new_url, initial=(0, 0, 2),
                                             headers=header_rows(webhook, "key-for-receiver")),
                       follow=True).content.decode()
    assert "was changed successfully" in page
    sent = client.post(reverse("admin:dispatcher_webhook_preview", args=[webhook.pk]), {"record": deal.pk})
    assert sent.status_code == 200
    received = [request.headers.get("X-Api-Key") for request, _ in receiver.log]
    assert received == ["key-for-receiver"]
