"""What the admin's pages say (issue 26): a delivery's page names its webhook and record once, a secret action
with nothing of one's own selected says so, and the usage chart keeps its bars readable under a large quota."""
import html
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import DeliverySource, DeliveryStatus, Webhook
from dispatcher.ops.usage import usage_count
from tests.factories import CrmUserFactory, OrganizationFactory, staff_login, webhook_create


@pytest.fixture
def admin_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    return client


def labels(page: str) -> list[str]:
    """The labels of the readonly rows of a change page, as the reader sees them."""
    return [html.unescape(label).strip() for label in re.findall(r"<label>([^<]*):</label>", page)]


def test_a_delivery_page_names_its_webhook_and_record_once(admin_client, owner, modules, receiver):
    receiver.expect_request("/hook").respond_with_data("ok")
    webhook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"))
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery = delivery_engine.delivery_enqueue(webhook=webhook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    url = reverse("admin:dispatcher_delivery_change", args=[delivery.pk])

    page = admin_client.get(url).content.decode()
    shown = labels(page)
    assert shown.count("Webhook") == 1 and shown.count("Record") == 1, shown
    assert f'href="{reverse("admin:dispatcher_webhook_change", args=[webhook.pk])}">Books</a>' in page
    assert f'href="{reverse("admin:crm_record_change", args=[deal.pk])}">{delivery.record_ref}</a>' in page

    webhook.delete()
    crm_services.record_delete(record=deal)
    page = admin_client.get(url).content.decode()
    assert labels(page).count("Webhook") == 1
    assert "Books (deleted)" in page and f"{delivery.record_ref} (deleted)" in page


@pytest.fixture
def two_organizations(modules):
    mine = modules["Deals"].organization
    theirs = OrganizationFactory(name="Acme")
    CrmUserFactory(organization=theirs)
    other = webhook_create(module=theirs.modules.get(api_name="Deals"), name="Theirs")
    return mine, other


@pytest.mark.parametrize("action", ["rotate_signing_secret", "expire_previous_signing_secret"])
def test_a_secret_action_with_nothing_of_ones_own_selected_says_nothing_changed(client, two_organizations, action):
    mine, other = two_organizations
    client.force_login(staff_login(mine, "integrator", group="Integration admin"))
    before = (other.signing_secret, other.previous_signing_secret)
    response = client.post(reverse("admin:dispatcher_webhook_changelist"),
                           {"action": action, "_selected_action": [other.pk]}, follow=True)
    page = response.content.decode()
    assert "No webhook of yours was selected" in page and "no signing secret was changed" in page
    assert "no longer sign" not in page and "New signing secrets" not in page
    other.refresh_from_db()
    assert (other.signing_secret, other.previous_signing_secret) == before


def test_the_rotate_action_on_ones_own_webhook_still_reports_the_rotation(client, two_organizations, modules):
    mine, _ = two_organizations
    own = webhook_create(module=modules["Deals"], name="Mine")
    client.force_login(staff_login(mine, "integrator", group="Integration admin"))
    page = client.post(reverse("admin:dispatcher_webhook_changelist"),
                       {"action": "rotate_signing_secret", "_selected_action": [own.pk]}, follow=True).content.decode()
    assert "New signing secrets for 1 webhook(s); the old secrets keep signing until" in page
    assert Webhook.objects.get(pk=own.pk).previous_signing_secret == own.signing_secret


def chart_data(page: str) -> dict:
    found = re.search(r'<script id="usage-data" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(html.unescape(found.group(1)))


def count_calls(organization, calls: int) -> None:
    for _ in range(calls):
        usage_count(organization=organization, now=timezone.now(), source=DeliverySource.WORKFLOW,
                    outcome=DeliveryStatus.SUCCESS)


def test_a_large_quota_is_shown_as_a_number_and_does_not_flatten_the_bars(admin_client):
    organization = OrganizationFactory(name="Big", user_licences=25)  # Enterprise: 500 a licence, 12,500 a day
    count_calls(organization, 40)
    page = admin_client.get(reverse("admin:dispatcher_usage_chart"), {"organization": organization.pk}).content.decode()
    data = chart_data(page)
    assert data["quota"] == 12_500 and data["totals"][-1] == 40
    assert data["scale"] == {"busiest": 40, "quota_on_axis": False, "busiest_share": 0.32}
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    assert "Quota: 12,500 a day ; the busiest day shown used 40 (0.32 % of it)." in text
    assert "the band along the top of each chart stands for it" in text


def test_a_quota_near_the_bars_is_drawn_as_a_line_on_their_axis(admin_client):
    organization = OrganizationFactory(name="Small", user_licences=1)  # Enterprise, one licence: 500 a day
    count_calls(organization, 300)
    page = admin_client.get(reverse("admin:dispatcher_usage_chart"), {"organization": organization.pk}).content.decode()
    assert chart_data(page)["scale"] == {"busiest": 300, "quota_on_axis": True, "busiest_share": 60.0}
    assert "The dashed line is the quota." in page
