"""A value that response capture writes into a record is an edit that channels are notified of, like a
person's, and that workflow rules never see; a capture that changes nothing notifies nobody
(docs/internals/design/captured-changes.md). A real capturing webhook and a real channel receiver."""
import json

import pytest
from django.utils import timezone

from crm import services as crm_services
from crm.models import Field
from dispatcher.senders import channels
from dispatcher import delivery as delivery_engine
from dispatcher.models import Capture, Delivery, DeliveryStatus
from tests.factories import webhook_create
from workflows.models import Action, WorkflowRule
from workflows.services import rule_save


@pytest.fixture
def invoice_number(modules):
    return Field.objects.create(module=modules["Deals"], label="Invoice Number", api_name="Invoice_Number")


@pytest.fixture
def deal(owner, modules, invoice_number):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})


@pytest.fixture
def capturing_hook(receiver, modules, invoice_number):
    """A webhook whose receiver answers with an invoice number, captured into the deal."""
    receiver.expect_request("/hook").respond_with_json({"invoice": {"id": "INV-42"}})
    hook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")])
    hook.capture_response, hook.capture_type = True, "JSONPATH"
    hook.save()
    Capture.objects.create(webhook=hook, when="success", expression="$.invoice.id", field=invoice_number)
    return hook


@pytest.fixture
def channel(receiver, owner, deal):
    receiver.expect_request("/notify").respond_with_data("OK")
    return channels.channel_create(organization=owner.organization, owner=owner, token="tok-channel-7",
                                   events=["Deals.edit", "Deals.Invoice_Number.change"],
                                   notify_url=receiver.url_for("/notify"))


def send(hook, deal) -> Delivery:
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)
    return Delivery.objects.get(pk=delivery.pk)


def run_due() -> list[Delivery]:
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=100)
    return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def notifications_received(receiver) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in receiver.log if request.path == "/notify"]


def test_a_captured_value_reaches_the_channel_as_an_edit_and_fires_no_workflow_rule(receiver, modules, deal,
                                                                                      capturing_hook, channel):
    rule_save(rule=WorkflowRule(organization=modules["Deals"].organization, module=modules["Deals"],
                                name="On every edit", trigger="edit", match_all_records=True),
              conditions=[], actions=[Action(webhook=capturing_hook, kind="instant")])
    sent = send(capturing_hook, deal)
    assert sent.status == DeliveryStatus.SUCCESS
    deal.refresh_from_db()
    assert deal.values["Invoice_Number"] == "INV-42"
    [notified] = run_due()
    assert notified.status == DeliveryStatus.SUCCESS and notified.channel_id == channel.pk
    [notification] = notifications_received(receiver)
    assert notification["operation"] == "edit" and notification["ids"] == [str(deal.pk)]
    assert notification["events"] == ["Deals.edit", "Deals.Invoice_Number.change"]
    assert notification["affected_fields"] == ["Invoice_Number"]
    assert notification["data"]["Invoice_Number"] == "INV-42" and notification["token"] == "tok-channel-7"
    # The rule on edits did not fire: the webhook was sent once, for the enqueue above, and nothing waits.
    assert [request.path for request, _ in receiver.log] == ["/hook", "/notify"]
    assert list(Delivery.objects.filter(webhook=capturing_hook).values_list("pk", flat=True)) == [sent.pk]
    assert run_due() == []


def test_a_capture_that_writes_the_value_the_record_has_notifies_nobody(receiver, deal, capturing_hook, channel):
    send(capturing_hook, deal)
    run_due()
    again = send(capturing_hook, deal)  # the same answer: the same invoice number is written again
    assert again.attempts.get().captured["Invoice Number"]["written"] == "INV-42"
    assert run_due() == []
    assert len(notifications_received(receiver)) == 1
    assert Delivery.objects.filter(channel=channel).count() == 1


def test_a_captured_value_that_changes_notifies_again(receiver, deal, capturing_hook, channel):
    send(capturing_hook, deal)
    run_due()
    crm_services.record_update(record=deal, values={"Invoice_Number": "draft"})  # a person's edit
    run_due()
    send(capturing_hook, deal)  # the capture writes INV-42 over it
    run_due()
    changes = [(n["affected_fields"], n["data"]["Invoice_Number"]) for n in notifications_received(receiver)]
    assert changes == [(["Invoice_Number"], "INV-42"), (["Invoice_Number"], "draft"), (["Invoice_Number"], "INV-42")]
