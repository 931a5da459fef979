"""End to end: an event subscription notified by a real worker; the worker health check against it."""
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from standardwebhooks.webhooks import Webhook as StandardWebhook

from crm import services as crm_services
from dispatcher.senders import channels
from dispatcher.models import Delivery, DeliverySource, DeliveryStatus
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_record_event_reaches_a_subscribed_channel_through_the_worker(start_worker, receiver, owner, modules,
                                                                         capsys):
    receiver.expect_request("/notify", method="POST").respond_with_data("OK")
    worker = start_worker()
    channel = channels.channel_create(organization=owner.organization, owner=owner, events=["Deals.Stage.change"],
                                      notify_url=receiver.url_for("/notify"), token="tok-e2e")
    with transaction.atomic():
        deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    with transaction.atomic():
        crm_services.record_update(record=deal, values={"Stage": "Closed Won"})
    wait_for(lambda: Delivery.objects.filter(source=DeliverySource.SUBSCRIPTION, status=DeliveryStatus.SUCCESS)
             .exists(), what="the notification to succeed")
    [(request, _)] = receiver.log
    notification = StandardWebhook(channel.signing_secret).verify(request.get_data(), dict(request.headers))
    assert notification["events"] == ["Deals.Stage.change"] and notification["data"]["Stage"] == "Closed Won"
    assert notification["token"] == "tok-e2e" and notification["channel"]["id"] == channel.public_id

    call_command("worker_health", hostname=[worker.name], timeout=5)
    report = json.loads(capsys.readouterr().out)
    assert report["workers"] == [worker.name] and report["due"] == 0
    with pytest.raises(CommandError, match="No answer from nobody@nowhere"):
        call_command("worker_health", hostname=["nobody@nowhere"], timeout=1)
