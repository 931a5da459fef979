"""The Auditor and Integration admin groups: auditors read everything and change nothing, see no secret."""
import pytest
from django.urls import reverse

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery
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
                             headers=[("X-Api-Key", "key-abcdef", True)])
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
    Delivery.objects.filter(pk=delivery.pk).update(status="failed")
    client.post(reverse("admin:dispatcher_delivery_changelist"), {"action": "resend", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert (delivery.status, delivery.resent_by) == ("queued", "integrator")
    page = client.get(reverse("admin:dispatcher_webhook_change", args=[webhook.pk])).content.decode()
    assert webhook.signing_secret in page  # needed to configure the receiver
    assert "hunter2!" not in page and "tok-abcdef" not in page
