"""The e-mails that follow an outcome (a delivery failed, the daily limit reached, a destination put on hold)
are queued when the transaction that stored the outcome commits: none before, none after a rollback, and one
that the broker cannot take is sent at once. Tasks run in the test's process (tests/conftest.py) and the mail
goes to Django's locmem outbox."""
import datetime
from collections.abc import Callable

import pytest
from django.core import mail
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from crm import services as crm_services
from crm.models import CrmUser
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import endpoint_health as health
from dispatcher.ops import notifications
from dispatcher.ops import quotas
from dispatcher.delivery.quota_reservation import limit_reached_notify
from dispatcher.models import DailyUsage, Delivery, DeliveryStatus, Endpoint, FailureEmails, RetryPolicy
from tests.factories import webhook_create

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.UTC)


class Abandoned(Exception):
    """Raised to roll a transaction back."""


@pytest.fixture(autouse=True)
def admin(organization):
    return CrmUser.objects.create(organization=organization, last_name="Admin", email="admin@zylker.example",
                                  is_admin=True)


def delivery_failed(request) -> Callable[[], tuple[str, str]]:
    """A worker's pass in which a delivery fails for good, its retry policy e-mailing each failure."""
    receiver, modules, owner = (request.getfixturevalue(name) for name in ("receiver", "modules", "owner"))
    receiver.expect_request("/hook").respond_with_data("down", status=503)
    policy = RetryPolicy.objects.create(code="mail-each", name="Mail each", delays=[],
                                        failure_emails=FailureEmails.EACH)
    hook = webhook_create(module=modules["Deals"], name="Books", url=receiver.url_for("/hook"), retry_policy=policy)
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)

    def fail() -> tuple[str, str]:
        [(pk, token)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=10)
        assert delivery_engine.delivery_attempt(delivery_id=pk, token=token).status == DeliveryStatus.FAILED
        return f"Webhook “Books” failed for Deals #{deal.pk}", "no retry left"

    return fail


def limit_reached(request) -> Callable[[], tuple[str, str]]:
    """A worker finds the organization's day used up: the admins are told, once that day."""
    organization = request.getfixturevalue("organization")
    DailyUsage.objects.create(organization=organization, day=quotas.local_day(organization=organization, now=NOW),
                              calls=quotas.daily_limit(organization=organization))

    def reach() -> tuple[str, str]:
        limit_reached_notify(Delivery(organization=organization), NOW)
        return f"Daily webhook limit reached for {organization.name}", "reached its daily limit"

    return reach


def put_on_hold(organization) -> Endpoint:
    endpoint = health.endpoint_for(organization=organization, url="https://erp.example.com/hook")
    assert health.endpoint_disable(endpoint=endpoint, now=NOW, reason="The receiver answered 410 Gone.")
    return endpoint


def endpoint_on_hold(request) -> Callable[[], tuple[str, str]]:
    """A destination is disabled: its deliveries are put on hold and the admins are told why."""
    organization = request.getfixturevalue("organization")

    def disable() -> tuple[str, str]:
        put_on_hold(organization)
        return "Webhook destination disabled: https://erp.example.com/hook", "The receiver answered 410 Gone."

    return disable


@pytest.fixture(params=[delivery_failed, limit_reached, endpoint_on_hold], ids=lambda cause: cause.__name__)
def cause(request) -> Callable[[], tuple[str, str]]:
    """What makes an e-mail, done in the caller's transaction; returns the e-mail's subject and a line of it."""
    return request.param(request)


def test_the_email_is_sent_when_the_transaction_commits_and_not_before(cause, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            subject, line = cause()
            assert mail.outbox == []  # a worker could not read the outcome yet
    [message] = mail.outbox
    assert message.subject == subject and line in message.body  # read as committed
    assert "admin@zylker.example" in message.to


def test_an_email_queued_in_a_transaction_that_rolls_back_is_never_sent(cause, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as queued:
        with pytest.raises(Abandoned), transaction.atomic():
            cause()
            raise Abandoned
    assert queued == [] and mail.outbox == []
    # What caused it was rolled back too, so the next time it happens is the first: the e-mail goes then.
    with django_capture_on_commit_callbacks(execute=True):
        subject, _ = cause()
    assert [m.subject for m in mail.outbox] == [subject]


def test_an_email_the_broker_cannot_take_is_sent_at_once(organization, monkeypatch, caplog,
                                                         django_capture_on_commit_callbacks):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(notifications.notify_endpoint_disabled, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        put_on_hold(organization)
    [message] = mail.outbox
    assert message.subject == "Webhook destination disabled: https://erp.example.com/hook"
    assert "The receiver answered 410 Gone." in message.body
    [refused] = [record for record in caplog.records if record.getMessage() == "notify.queue_failed"]
    assert refused.task == "dispatcher.notify_endpoint_disabled" and refused.exc_info
