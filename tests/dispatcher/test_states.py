"""The delivery state machine: every allowed move works, a disallowed one is refused and changes nothing,
and no code outside dispatcher/delivery/states.py writes a delivery's status."""
import re
import uuid
from pathlib import Path

import pytest

from crm import services as crm_services
from dispatcher.delivery import states
from dispatcher.delivery.enqueue import deliveries_insert
from dispatcher.models import Delivery, DeliveryStatus, RetryPolicy
from tests.factories import webhook_create

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def delivery(owner, modules):
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "States"})
    hook = webhook_create(module=modules["Deals"])
    return Delivery.objects.create(organization=owner.organization, webhook=hook, webhook_name=hook.name,
                                   record=deal, record_ref="Deals #1", retry_policy_id=RetryPolicy.default_id())


def test_every_status_has_its_moves_listed():
    assert set(states.MOVES) == set(DeliveryStatus.values)
    assert all(targets <= set(DeliveryStatus.values) for targets in states.MOVES.values())


@pytest.mark.parametrize(("source", "target"), [(s, t) for s, targets in states.MOVES.items() for t in sorted(targets)])
def test_every_allowed_move_is_made(delivery, source, target):
    token = uuid.uuid4()
    Delivery.objects.filter(pk=delivery.pk).update(status=source, claim_token=token)
    assert states.delivery_move(delivery_id=delivery.pk, from_status=source, to_status=target, token=token)
    assert Delivery.objects.get(pk=delivery.pk).status == target


@pytest.mark.parametrize(("source", "target"), [
    (DeliveryStatus.SUCCESS, DeliveryStatus.QUEUED),  # a success is never sent again by the engine
    (DeliveryStatus.QUEUED, DeliveryStatus.SUCCESS),  # nothing succeeds without being dispatched
    (DeliveryStatus.FAILED, DeliveryStatus.DISPATCHED),  # an ended delivery is resent, not claimed
    (DeliveryStatus.HELD, DeliveryStatus.DISPATCHED),  # held ones wait for their destination to be enabled
])
def test_a_disallowed_move_is_refused_and_changes_nothing(delivery, source, target):
    Delivery.objects.filter(pk=delivery.pk).update(status=source)
    with pytest.raises(states.IllegalMove):
        states.delivery_move(delivery_id=delivery.pk, from_status=source, to_status=target)
    assert Delivery.objects.get(pk=delivery.pk).status == source


def test_a_move_from_a_status_the_delivery_has_left_does_nothing(delivery):
    """Conditional on the status it moves from: a second worker or a late admin action loses the race."""
    assert states.delivery_move(delivery_id=delivery.pk, from_status=DeliveryStatus.QUEUED,
                                to_status=DeliveryStatus.DISPATCHED)
    assert not states.delivery_move(delivery_id=delivery.pk, from_status=DeliveryStatus.QUEUED,
                                    to_status=DeliveryStatus.DISPATCHED)


def test_a_delivery_cannot_be_created_as_success(delivery):
    copy = Delivery(organization=delivery.organization, webhook=delivery.webhook, webhook_name="x",
                    record_ref="x", retry_policy_id=RetryPolicy.default_id(), status=DeliveryStatus.SUCCESS)
    with pytest.raises(states.IllegalMove):
        deliveries_insert([copy])


def test_no_code_outside_the_state_machine_writes_a_delivery_status():
    writes = re.compile(r"\.update\([^)]*\bstatus=(DeliveryStatus|S)\.")
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for folder in ("dispatcher", "workflows", "crm") for path in (ROOT / folder).rglob("*.py")
                 if path.name != "states.py" and "migrations" not in path.parts
                 for number, line in enumerate(path.read_text().splitlines(), start=1) if writes.search(line)]
    assert offenders == []
