"""The delivery state machine: every allowed move works and leaves the columns its status carries, a
disallowed one is refused and changes nothing, and a status the state machine does not allow cannot be
written by any path: the ORM refuses to create one, the service layer refuses an outcome that contradicts
its status, and the database refuses what goes around both (CHECK constraints, on PostgreSQL and SQLite)."""
import contextlib
import datetime
import uuid
from collections.abc import Iterator

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from crm import services as crm_services
from dispatcher.delivery import states
from dispatcher.delivery.batch_sql import deliveries_update_claimed
from dispatcher.delivery.enqueue import deliveries_insert, deliveries_resend, delivery_log_cancelled
from dispatcher.models import Delivery, DeliveryStatus, RetryPolicy
from tests.factories import webhook_create

S = DeliveryStatus
NOT_INITIAL = sorted(set(S.values) - states.INITIAL)
LEASE = datetime.timedelta(minutes=5)


@pytest.fixture
def hook(modules):
    return webhook_create(module=modules["Deals"])


@pytest.fixture
def delivery(owner, modules, hook):
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "States"})
    return Delivery.objects.create(organization=owner.organization, webhook=hook, webhook_name=hook.name,
                                   record=deal, record_ref="Deals #1", retry_policy_id=RetryPolicy.default_id())


def unsaved(hook, **fields) -> Delivery:
    return Delivery(organization=hook.organization, webhook=hook, webhook_name=hook.name, record_ref="Deals #1",
                    retry_policy_id=RetryPolicy.default_id(), **fields)


def put_in(delivery: Delivery, status: str) -> uuid.UUID | None:
    """Give the delivery this status with the columns that go with it, as the engine would have; returns
    its claim token when Dispatched."""
    now = timezone.now()
    token = uuid.uuid4() if status == S.DISPATCHED else None
    Delivery.objects.filter(pk=delivery.pk).update(
        status=status, claim_token=token, lease_expires_at=now + LEASE if token else None,
        finished_at=now if status in states.FINAL else None)
    return token


def assert_columns_match_status(pk: int) -> None:
    row = Delivery.objects.get(pk=pk)
    dispatched = row.status == S.DISPATCHED
    assert (row.claim_token is not None, row.lease_expires_at is not None) == (dispatched, dispatched)
    assert (row.finished_at is not None) == (row.status in states.FINAL)


@contextlib.contextmanager
def refused_by_the_database(constraint: str) -> Iterator[None]:
    """The statement fails on the named CHECK constraint (PostgreSQL and SQLite both name it), in a savepoint
    so the test's transaction goes on."""
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        yield


def test_every_status_has_its_moves_listed():
    assert set(states.MOVES) == set(S.values)
    assert all(targets <= set(S.values) for targets in states.MOVES.values())
    assert states.INITIAL <= set(S.values) and states.FINAL <= set(S.values)


@pytest.mark.parametrize(("source", "target"), [(s, t) for s, targets in states.MOVES.items() for t in sorted(targets)])
def test_every_allowed_move_is_made_with_the_columns_its_status_carries(delivery, source, target):
    token = put_in(delivery, source)
    claim = {"claim_token": uuid.uuid4(), "lease_expires_at": timezone.now() + LEASE} if target == S.DISPATCHED else {}
    assert states.delivery_move(delivery_id=delivery.pk, from_status=source, to_status=target, token=token, **claim)
    assert Delivery.objects.get(pk=delivery.pk).status == target
    assert_columns_match_status(delivery.pk)


@pytest.mark.parametrize(("source", "target"), [
    (S.SUCCESS, S.QUEUED),  # a success is never sent again by the engine
    (S.QUEUED, S.SUCCESS),  # nothing succeeds without being dispatched
    (S.FAILED, S.DISPATCHED),  # an ended delivery is resent, not claimed
    (S.HELD, S.DISPATCHED),  # held ones wait for their destination to be enabled
])
def test_a_disallowed_move_is_refused_and_changes_nothing(delivery, source, target):
    put_in(delivery, source)
    with pytest.raises(states.IllegalMove):
        states.delivery_move(delivery_id=delivery.pk, from_status=source, to_status=target)
    assert Delivery.objects.get(pk=delivery.pk).status == source


def test_a_move_from_a_status_the_delivery_has_left_does_nothing(delivery):
    """Conditional on the status it moves from: a second worker or a late admin action loses the race."""
    claim = {"claim_token": uuid.uuid4(), "lease_expires_at": timezone.now() + LEASE}
    assert states.delivery_move(delivery_id=delivery.pk, from_status=S.QUEUED, to_status=S.DISPATCHED, **claim)
    assert not states.delivery_move(delivery_id=delivery.pk, from_status=S.QUEUED, to_status=S.DISPATCHED, **claim)


def test_a_move_to_dispatched_without_a_claim_is_refused(delivery):
    with pytest.raises(states.IllegalMove, match="claim token and a lease"):
        states.delivery_move(delivery_id=delivery.pk, from_status=S.QUEUED, to_status=S.DISPATCHED)
    assert Delivery.objects.get(pk=delivery.pk).status == S.QUEUED


# A status a delivery cannot be born with, by every way the ORM creates one.

@pytest.mark.parametrize("status", NOT_INITIAL)
def test_the_orm_creates_no_delivery_in_a_status_it_must_be_moved_to(hook, status):
    with pytest.raises(states.IllegalMove):
        Delivery.objects.create(organization=hook.organization, webhook=hook, webhook_name=hook.name,
                                record_ref="Deals #1", retry_policy_id=RetryPolicy.default_id(), status=status,
                                finished_at=timezone.now())
    with pytest.raises(states.IllegalMove):
        Delivery.objects.bulk_create([unsaved(hook), unsaved(hook, status=status, finished_at=timezone.now())])
    with pytest.raises(states.IllegalMove):
        unsaved(hook, status=status, finished_at=timezone.now()).save()
    with pytest.raises(states.IllegalMove):
        hook.deliveries.create(organization=hook.organization, webhook_name=hook.name, record_ref="Deals #1",
                               retry_policy_id=RetryPolicy.default_id(), status=status)
    with pytest.raises(states.IllegalMove):
        deliveries_insert([unsaved(hook, status=status)])
    with pytest.raises(states.IllegalMove):
        states.delivery_build(status=status)
    assert not Delivery.objects.exists()


def test_a_delivery_logged_as_cancelled_is_created_finished(hook):
    logged = delivery_log_cancelled(webhook=hook, record=None, record_ref="Deals #7", trigger="Rule (Deals edit)",
                                    reason="The record was deleted.")
    row = Delivery.objects.get(pk=logged.pk)
    assert (row.status, row.status_reason, row.attempt_count) == (S.CANCELLED, "The record was deleted.", 0)
    assert row.finished_at is not None
    assert_columns_match_status(row.pk)


def test_a_resent_delivery_is_no_longer_finished(delivery):
    put_in(delivery, S.FAILED)
    assert deliveries_resend(ids=[delivery.pk], by="boss") == 1
    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.finished_at, row.resent_by) == (S.QUEUED, None, "boss")


def test_historical_deliveries_for_tests_and_seeds_still_hold_the_rules(hook):
    done = Delivery.objects.create_historical(organization=hook.organization, webhook=hook, webhook_name=hook.name,
                                              record_ref="Deals #1", retry_policy_id=RetryPolicy.default_id(),
                                              status=S.SUCCESS)
    assert Delivery.objects.get(pk=done.pk).finished_at is not None
    with refused_by_the_database("delivery_claimed_while_dispatched"):
        Delivery.objects.create_historical(organization=hook.organization, webhook=hook, webhook_name=hook.name,
                                           record_ref="Deals #1", retry_policy_id=RetryPolicy.default_id(),
                                           status=S.DISPATCHED)


# What goes around the ORM's creation and the state machine: refused by the database.

def test_the_database_refuses_a_final_status_without_its_finish_time(delivery):
    with refused_by_the_database("delivery_finished_when_final"):
        Delivery.objects.filter(pk=delivery.pk).update(status="success")
    with refused_by_the_database("delivery_finished_when_final"):
        Delivery.objects.filter(pk=delivery.pk).update(finished_at=timezone.now())  # a queued one is not finished
    assert Delivery.objects.get(pk=delivery.pk).status == S.QUEUED


def test_the_database_refuses_a_dispatched_delivery_without_its_claim(delivery):
    with refused_by_the_database("delivery_claimed_while_dispatched"):
        Delivery.objects.filter(pk=delivery.pk).update(status=S.DISPATCHED, lease_expires_at=timezone.now() + LEASE)
    with refused_by_the_database("delivery_claimed_while_dispatched"):
        Delivery.objects.filter(pk=delivery.pk).update(status=S.DISPATCHED, claim_token=uuid.uuid4())
    with refused_by_the_database("delivery_claimed_while_dispatched"):
        Delivery.objects.filter(pk=delivery.pk).update(claim_token=uuid.uuid4())  # a queued one is held by nobody
    assert Delivery.objects.get(pk=delivery.pk).status == S.QUEUED


@pytest.mark.parametrize(("changes", "why"), [
    ({"status": S.SUCCESS, "finished_at": None}, "finished_at"),  # a final outcome is finished
    ({"status": S.RETRY, "claim_token": uuid.UUID(int=1)}, "claim_token"),  # an outcome ends the claim
    ({"status": S.DISPATCHED}, "ends its claim"),
    ({"status": "sent"}, "cannot move from dispatched to sent"),
])
def test_the_service_layer_refuses_an_outcome_that_contradicts_its_status(delivery, changes, why):
    token = put_in(delivery, S.DISPATCHED)
    assert token is not None
    with pytest.raises(states.IllegalMove, match=why):
        states.deliveries_conclude([(delivery.pk, token, dict(changes))])
    row = Delivery.objects.get(pk=delivery.pk)
    assert (row.status, row.claim_token) == (S.DISPATCHED, token)


def test_an_outcome_is_stored_with_the_columns_its_status_carries(delivery):
    token = put_in(delivery, S.DISPATCHED)
    assert token is not None
    assert states.deliveries_conclude([(delivery.pk, token, {"status": S.SUCCESS, "status_reason": ""})]) \
        == {delivery.pk}
    assert Delivery.objects.get(pk=delivery.pk).status == S.SUCCESS
    assert_columns_match_status(delivery.pk)


def test_the_batch_statement_used_without_the_state_machine_is_refused_by_the_database(delivery):
    """batch_sql writes with one raw UPDATE; a caller that skips states.deliveries_conclude (and forgets the
    columns) is stopped by the table."""
    token = put_in(delivery, S.DISPATCHED)
    assert token is not None
    with refused_by_the_database("delivery_claimed_while_dispatched"):
        deliveries_update_claimed([(delivery.pk, token, {"status": S.RETRY})])
    with refused_by_the_database("delivery_finished_when_final"):
        deliveries_update_claimed([(delivery.pk, token, {"status": S.FAILED, "claim_token": None,
                                                         "lease_expires_at": None})])
    assert Delivery.objects.get(pk=delivery.pk).status == S.DISPATCHED
