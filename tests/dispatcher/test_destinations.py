"""A drain loop's book of destinations (delivery/destinations.py): one endpoint object per destination, a
delivery sent at once while its destination has room, waiting (holding its organization's slot) while it
is at its limit, handed back to the database when it is slow, and the room a claim may take. Real
deliveries, claims, the real sender pool and a real receiver."""
import pytest
from django.test.utils import CaptureQueriesContext
from django.db import connection
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery.attempt import Send
from dispatcher.delivery.claims import Claim
from dispatcher.delivery.destinations import Destinations
from dispatcher.delivery.loader import deliveries_load
from dispatcher.delivery.pool import sender_pool
from dispatcher.delivery.quota_reservation import QuotaReservation
from dispatcher.models import Delivery, DeliveryStatus, Endpoint
from dispatcher.rendering.request import webhook_render_unsigned
from tests.factories import webhook_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Book"})


def claimed(hook, deal, n: int) -> list[Delivery]:
    """n deliveries of the hook, claimed and loaded as a drain loop gets them."""
    for _ in range(n):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    pairs = delivery_engine.deliveries_claim(now=timezone.now(), limit=n)
    return deliveries_load(Claim(pairs[0][1], [pk for pk, _ in pairs]))


def sends(book: Destinations, deliveries: list[Delivery]) -> list[Send]:
    """Prepared as attempt_prepare prepares them (the book finds the endpoint); not signed: not sent here."""
    prepared = []
    for delivery in deliveries:
        request = webhook_render_unsigned(webhook=delivery.webhook, record=delivery.record)
        endpoint = book.endpoint(delivery, request.url)
        prepared.append(Send(delivery, delivery.claim_token, request, endpoint.pk, timezone.now()))
    return prepared


def test_one_endpoint_object_per_destination_found_once(receiver, modules, deal):
    """Two webhooks whose URLs differ only in their query share the destination: the first delivery's lookup
    creates its endpoint, the second finds it in the book without a statement."""
    one = webhook_create(module=modules["Deals"], name="One", url=receiver.url_for("/hook") + "?a=1")
    two = webhook_create(module=modules["Deals"], name="Two", url=receiver.url_for("/hook") + "?b=2")
    book = Destinations(sender_pool(), QuotaReservation())
    first, second = claimed(one, deal, 1)[0], claimed(two, deal, 1)[0]
    assert first.endpoint is None and second.endpoint is None  # first attempts
    endpoint = book.endpoint(first, first.webhook.url)
    with CaptureQueriesContext(connection) as statements:
        assert book.endpoint(second, second.webhook.url) is endpoint
    assert len(statements) == 0
    assert Endpoint.objects.count() == 1


def test_endpoints_a_claim_loads_replace_the_books_and_are_shared(receiver, modules, deal):
    hook = webhook_create(module=modules["Deals"], name="Known", url=receiver.url_for("/hook"))
    endpoint = Endpoint.objects.create(organization=hook.organization, destination=receiver.url_for("/hook"))
    book = Destinations(sender_pool(), QuotaReservation())
    deliveries = claimed(hook, deal, 3)
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(endpoint=endpoint)  # after an attempt
    loaded = deliveries_load(Claim(deliveries[0].claim_token, [d.pk for d in deliveries]))
    book.adopt(loaded)
    assert len({id(d.endpoint) for d in loaded}) == 1 and loaded[0].endpoint.pk == endpoint.pk
    newcomer = claimed(hook, deal, 1)[0]  # on its first attempt, to the same destination
    assert book.endpoint(newcomer, hook.url) is loaded[0].endpoint


def test_a_destination_at_its_limit_makes_the_next_wait_and_its_slot_held_until_sent(receiver, modules, deal,
                                                                                     settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = 1  # one request in flight to a destination at most
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], name="Limited", url=receiver.url_for("/hook"))
    pool = sender_pool()
    book = Destinations(pool, QuotaReservation())
    first, second = sends(book, claimed(hook, deal, 2))
    assert book.place(first, closing=False)  # room: send it now
    pool.submit("first", first.destination, first.request)
    assert not book.place(second, closing=False)  # at its limit: it waits here
    organization = second.delivery.organization_id
    assert book.slots.held[organization] == 2 and book.room() == pool.room() - 1
    submitted: list[Send] = []
    book.send_waiting(closing=False, submit=submitted.append)
    assert submitted == []  # the first is still in flight
    while not pool.collect(timeout=1.0):
        pass
    book.ended(first)
    book.send_waiting(closing=False, submit=submitted.append)
    assert submitted == [second] and book.waiting == {}
    assert book.slots.held[organization] == 1  # the second's, until its request ends


def test_a_slow_destination_at_its_limit_gets_its_delivery_back_in_the_database_with_its_call(receiver, modules,
                                                                                               deal):
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], name="Slow", url=receiver.url_for("/hook"))
    pool, reservation = sender_pool(), QuotaReservation()
    book = Destinations(pool, reservation)
    send, closing_send = sends(book, claimed(hook, deal, 2))
    assert reservation.take(send.delivery, timezone.now())
    pool.limits.answered("earlier request", send.destination, seconds=5.0)  # it answered slowly: limit halved
    for n in range(pool.limits.limit(send.destination)):  # and it has as many in flight as it may
        pool.submit(("in flight", n), send.destination, send.request)
    assert book.is_slow(send.destination)
    assert not book.place(send, closing=False)
    stored = Delivery.objects.get(pk=send.delivery.pk)
    assert (stored.status, stored.attempt_count, stored.claim_token) == (DeliveryStatus.QUEUED, 0, None)
    assert "as many requests in flight" in stored.status_reason and stored.due_at > timezone.now()
    assert reservation.unused[send.delivery.organization_id][1] == 1  # its call went back to the reservation
    assert book.slots.held == {} and book.waiting == {}
    assert not book.place(closing_send, closing=True)  # near the loop's end a slow destination gets nothing
    assert "stops claiming soon" in Delivery.objects.get(pk=closing_send.delivery.pk).status_reason
    # A claim takes none of its deliveries while it is at its limit, nor near the loop's end.
    assert book.claim_room(refill=10, closing=False, idle=True).slow_destinations == {send.destination: 0}
    assert book.claim_room(refill=10, closing=True, idle=True).slow_destinations == {send.destination: 0}
    while pool.in_flight:
        pool.collect(timeout=1.0)
