"""Receivers that misbehave: each attempt ends in the right recorded state and error class, within the
time the settings allow and with the memory the response cap allows."""
import datetime
import socket
import tracemalloc

import pytest
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, DeliveryStatus
from dispatcher.transport.request import RenderedRequest
from tests.factories import webhook_create
from tests.faults import hostile

READ_TIMEOUT, TOTAL_TIMEOUT = 0.5, 1.5
CAP = 64 * 1024


@pytest.fixture(autouse=True)
def tight_limits(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    settings.WEBHOOK_ALLOW_ANY_PORT = True
    settings.WEBHOOK_CONNECT_TIMEOUT = READ_TIMEOUT
    settings.WEBHOOK_READ_TIMEOUT = READ_TIMEOUT
    settings.WEBHOOK_TOTAL_TIMEOUT = TOTAL_TIMEOUT
    settings.WEBHOOK_MAX_RESPONSE_BYTES = CAP


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Faults"})


def attempt_once(url: str, deal, **webhook) -> Delivery:
    """Enqueue one delivery to url and make its first attempt in this process, as a worker would."""
    hook = webhook_create(module=deal.module, name="Faulty", url=url, entity=[("deal", "${Deals.Deal Name}")],
                          **webhook)
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [(pk, token)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=1)
    assert pk == delivery.pk
    delivery_engine.delivery_attempt(delivery_id=pk, token=token)
    return Delivery.objects.get(pk=pk)


@pytest.fixture
def serve():
    receivers: list[hostile.HostileReceiver] = []

    def start(behaviour) -> hostile.HostileReceiver:
        receivers.append(hostile.HostileReceiver(behaviour))
        return receivers[-1]

    yield start
    for receiver in receivers:
        receiver.stop()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]  # nothing listens there once this returns


# (behaviour, status, error class, the attempt's duration may reach) — retried ones wait for the policy's retry.
FAULTS = {
    "resets mid-response": (hostile.reset_mid_body, DeliveryStatus.RETRY, "connection_error", TOTAL_TIMEOUT),
    "answers past the read timeout": (hostile.silent, DeliveryStatus.RETRY, "timeout", READ_TIMEOUT + 1),
    "trickles its body forever": (hostile.trickle_body, DeliveryStatus.RETRY, "timeout", TOTAL_TIMEOUT + 1),
    "trickles its headers forever": (hostile.trickle_head, DeliveryStatus.RETRY, "timeout", TOTAL_TIMEOUT + 1),
    "answers 503": (hostile.answer("503 Service Unavailable", b"busy"), DeliveryStatus.RETRY, "http_503", 1),
    "answers 404": (hostile.answer("404 Not Found", b"no"), DeliveryStatus.FAILED, "http_404", 1),
}


@pytest.mark.django_db
@pytest.mark.parametrize("fault", FAULTS)
def test_a_misbehaving_receiver_ends_in_the_right_recorded_state(serve, deal, fault):
    behaviour, status, error_class, bound = FAULTS[fault]
    receiver = serve(behaviour)
    delivery = attempt_once(receiver.url(), deal)
    [attempt] = delivery.attempts.all()
    assert (delivery.status, delivery.last_error_class, attempt.error_class) == (status, error_class, error_class)
    assert attempt.duration_ms <= bound * 1000, f"{fault}: {attempt.duration_ms} ms"
    assert delivery.status_reason  # the log says why, in words
    if status == DeliveryStatus.RETRY:
        assert delivery.due_at > timezone.now() + datetime.timedelta(minutes=12)  # Zoho: 15 min ±10 %


@pytest.mark.django_db
def test_a_refused_connection_is_retried(deal):
    delivery = attempt_once(f"http://127.0.0.1:{closed_port()}/hook", deal)
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.RETRY, "connection_error")
    assert "cannot connect" in delivery.status_reason


@pytest.mark.django_db
def test_a_429_waits_for_its_retry_after_up_to_the_policys_cap(serve, deal):
    receiver = serve(hostile.answer("429 Too Many Requests", b"slow down", "Retry-After: 7200\r\n"))
    before = timezone.now()
    delivery = attempt_once(receiver.url(), deal)
    cap = delivery.retry_policy.max_retry_after
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.RETRY, "http_429")
    expected = before + datetime.timedelta(seconds=max(delivery.retry_policy.delays[0], min(7200, cap)))
    assert expected <= delivery.due_at <= expected + datetime.timedelta(seconds=5)


@pytest.mark.django_db
def test_a_redirect_to_a_private_address_is_not_followed(serve, deal):
    receiver = serve(hostile.answer("301 Moved Permanently", b"", "Location: http://169.254.169.254/latest/\r\n"))
    delivery = attempt_once(receiver.url(), deal)
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.FAILED, "redirect")
    assert receiver.connections == 1  # nothing went to the Location


@pytest.mark.django_db
def test_an_answer_that_is_not_utf8_is_stored_readably(serve, deal):
    receiver = serve(hostile.answer("200 OK", b'{"id": "\xff\xfe\xc3("}\x00', "Content-Type: application/json\r\n"))
    delivery = attempt_once(receiver.url(), deal)
    [attempt] = delivery.attempts.all()
    assert delivery.status == DeliveryStatus.SUCCESS
    assert attempt.response_body == '{"id": "\ufffd\ufffd\ufffd("}\ufffd'


@pytest.mark.django_db
def test_a_100_mb_answer_is_read_only_up_to_the_cap(serve, deal):
    receiver = serve(hostile.flood)
    delivery = attempt_once(receiver.url(), deal)
    [attempt] = delivery.attempts.all()
    assert delivery.status == DeliveryStatus.SUCCESS and attempt.response_truncated
    assert len(attempt.response_body) <= CAP


def test_reading_a_100_mb_answer_holds_no_more_than_the_cap_in_memory(request_send, serve, settings):
    receiver = serve(hostile.flood)
    tracemalloc.start()
    try:
        result = request_send(RenderedRequest("GET", receiver.url(), {}, b""))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status_code == 200 and result.truncated and len(result.body) == CAP
    assert peak < CAP + 10 * 1024 * 1024, f"peak {peak} bytes"  # the cap plus 10 MB, not the 100 MB sent
