"""The SSRF of issue 25, end to end with a real worker on Redis and PostgreSQL: an internal server holds a
fake cloud key; a tenant spells its address with Unicode digits on every path it has, and reads back
nothing of it through the API."""
import json

import pytest
from django.db import transaction
from django.utils import timezone

from crm import services as crm_services
from crm.models import ApiScope
from dispatcher import delivery as delivery_engine
from dispatcher.models import Channel, Delivery, DeliveryStatus, Webhook
from tests.e2e.conftest import wait_for
from tests.factories import webhook_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CLOUD_KEY = "AKIA-FAKE-CLOUD-KEY-0123456789"


def test_an_internal_server_spelled_in_unicode_is_never_reached_and_nothing_is_read_back(
        start_worker, receiver, client, owner, modules, settings):
    receiver.expect_request("/latest/meta-data/").respond_with_json({"AccessKeyId": CLOUD_KEY})
    settings.WEBHOOK_ALLOW_LOOPBACK = False  # the receiver stands for an internal server: off limits
    start_worker(WEBHOOK_ALLOW_LOOPBACK="false", WEBHOOK_ALLOWED_PORTS="*")
    inside = f"http://１２７.０.０.１:{receiver.port}/latest/meta-data/"
    writer = crm_services.api_key_create(user=owner, name="Tenant")[1]  # the default scopes: channels included
    reader = crm_services.api_key_create(user=owner, name="Reader", scopes=[ApiScope.DELIVERIES_READ])[1]

    # Through a channel: refused when subscribed.
    response = client.post("/api/v1/channels/", data=json.dumps({"events": ["Deals.create"], "notify_url": inside}),
                           content_type="application/json", headers={"X-API-Key": writer})
    assert response.status_code == 400 and not Channel.objects.exists()

    # Through a webhook row that skipped validation: the worker refuses it at send time.
    hook = webhook_create(module=modules["Deals"], url="https://books.example.com/hook", entity=[("d", "x")])
    Webhook.objects.filter(pk=hook.pk).update(url=inside, modified_at=timezone.now())
    with transaction.atomic():
        deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery = wait_for(lambda: Delivery.objects.filter(webhook=hook, status=DeliveryStatus.FAILED).first(),
                        what="the worker to refuse the delivery")
    assert delivery.last_error_class == "url_refused" and "127.0.0.1" in delivery.status_reason

    read = client.get(f"/api/v1/deliveries/msg_{delivery.public_id.hex}/", headers={"X-API-Key": reader})
    assert read.status_code == 200 and read.json()["data"]["status"] == DeliveryStatus.FAILED
    assert CLOUD_KEY not in read.content.decode()
    assert receiver.log == []  # nothing reached the internal server, on any path
