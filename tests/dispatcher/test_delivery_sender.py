"""A delivery has one kind of sender, and its log outlives the sender."""
import pytest
from django.db import IntegrityError, transaction

from crm import services as crm_services
from dispatcher.senders import channels
from dispatcher.delivery import delivery_enqueue, delivery_run
from dispatcher.models import Delivery, DeliverySource, DeliveryStatus, RetryPolicy
from tests.factories import webhook_create


@pytest.fixture
def deal(modules, owner):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Sender"})


@pytest.fixture
def channel(organization, owner):
    return channels.channel_create(organization=organization, owner=owner, events=["Deals.create"],
                                   notify_url="https://receiver.example/notify")


def delivery_with(**pointers) -> Delivery:
    organization = (pointers.get("webhook") or pointers.get("channel")).organization
    return Delivery.objects.create(organization=organization, webhook_name="x", record_ref="Deals #1",
                                   retry_policy_id=RetryPolicy.default_id(), **pointers)


def test_a_subscription_delivery_cannot_point_to_a_webhook(modules, channel):
    hook = webhook_create(module=modules["Deals"], name="Both")
    with pytest.raises(IntegrityError, match="delivery_one_sender_kind"), transaction.atomic():
        delivery_with(webhook=hook, channel=channel, source=DeliverySource.SUBSCRIPTION)


def test_a_webhook_delivery_cannot_point_to_a_channel(modules, channel):
    hook = webhook_create(module=modules["Deals"], name="Both")
    with pytest.raises(IntegrityError, match="delivery_one_sender_kind"), transaction.atomic():
        delivery_with(webhook=hook, channel=channel, source=DeliverySource.WORKFLOW)
    with pytest.raises(IntegrityError, match="delivery_one_sender_kind"), transaction.atomic():
        delivery_with(channel=channel, source=DeliverySource.API)


def test_the_sender_is_the_webhook_or_the_channel(modules, channel):
    hook = webhook_create(module=modules["Deals"], name="Sender")
    by_webhook = delivery_with(webhook=hook, source=DeliverySource.WORKFLOW)
    by_channel = delivery_with(channel=channel, source=DeliverySource.SUBSCRIPTION)
    assert (by_webhook.sender, by_webhook.sender_key) == (hook, f"webhook:{hook.pk}")
    assert (by_channel.sender, by_channel.sender_key) == (channel, f"channel:{channel.pk}")
    assert (by_webhook.sender.destination_url, by_channel.sender.destination_url) == (hook.url, channel.notify_url)


def test_a_deleted_webhook_leaves_its_log_and_cancels_what_waits(modules, deal):
    hook = webhook_create(module=modules["Deals"], name="Going away")
    delivery = delivery_enqueue(webhook=hook, record=deal)
    hook.delete()
    delivery_run(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delivery.sender is None and delivery.webhook_name == "Going away"
    assert (delivery.status, delivery.status_reason) == (DeliveryStatus.CANCELLED, "The webhook was deleted or deactivated.")
