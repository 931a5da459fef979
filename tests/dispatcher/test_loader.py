"""Claimed and loaded in one statement (delivery/claims.py, delivery/loader.py): on PostgreSQL the claim
returns each delivery with its endpoint, record, owner and module, built as the ORM builds them (an
encrypted request decrypted, JSON values read); webhooks come from the process's cache while unchanged.
A claim that fits is one statement; one that does not is shared out fairly (tests/dispatcher/
test_engine_scheduling.py)."""
import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import counters
from dispatcher.delivery.claims import claim_due
from dispatcher.delivery.loader import claim_load, deliveries_load
from dispatcher.models import Delivery, EngineCounter, Endpoint
from dispatcher.rendering.request import webhook_render_unsigned
from dispatcher.transport.request import RenderedRequest
from tests.factories import webhook_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("elsewhere the claimed rows are read with the ORM (tests/dispatcher/test_delivery_lifecycle.py)")


@pytest.fixture
def hook(receiver, modules):
    return webhook_create(module=modules["Deals"], name="Loaded", url=receiver.url_for("/hook"),
                          entity=[("deal", "${Deals.Deal Name}")], custom=[("token", "secret-1")])


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Loader <&>", "Amount": "12.50"})


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields
            if field.attname != "request_display"}


def test_a_claimed_delivery_is_built_as_the_orm_reads_it(on_postgresql, hook, deal):
    """A retry: it has its endpoint and its sealed (encrypted) request from the first attempt."""
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    endpoint = Endpoint.objects.create(organization=hook.organization, destination=hook.url)
    sealed = webhook_render_unsigned(webhook=hook, record=deal).seal()
    Delivery.objects.filter(pk=delivery.pk).update(endpoint=endpoint, request_sealed=sealed)
    [loaded] = deliveries_load(claim_due(now=timezone.now(), limit=10, load=claim_load()))
    expected = Delivery.objects.select_related("endpoint", "record__owner", "record__module").get(pk=delivery.pk)
    assert fields(loaded) == fields(expected)  # status, claim token, lease and attempt count as claimed
    assert RenderedRequest.unseal(loaded.request_sealed).body == RenderedRequest.unseal(sealed).body
    assert fields(loaded.endpoint) == fields(expected.endpoint)
    assert fields(loaded.record) == fields(expected.record) and loaded.record.values["Deal_Name"] == "Loader <&>"
    assert fields(loaded.record.owner) == fields(expected.record.owner)
    assert fields(loaded.record.module) == fields(expected.record.module)
    assert (loaded.webhook.pk, loaded.organization.pk, loaded.retry_policy.pk) == (
        hook.pk, hook.organization_id, expected.retry_policy_id)


def test_a_claim_that_fits_is_one_statement_and_an_unchanged_webhook_is_not_read_again(on_postgresql, hook, deal):
    for _ in range(3):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    deliveries_load(claim_due(now=timezone.now(), limit=10, load=claim_load()))  # the caches fill
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    with CaptureQueriesContext(connection) as statements:
        [loaded] = deliveries_load(claim_due(now=timezone.now(), limit=10, load=claim_load()))
    assert len(statements) == 1, [q["sql"][:120] for q in statements]
    assert loaded.webhook.name == "Loaded" and loaded.record.owner.last_name
    hook.name = "Renamed"
    hook.save()  # a new modified_at: the next claim reads it again
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [loaded] = deliveries_load(claim_due(now=timezone.now(), limit=10, load=claim_load()))
    assert loaded.webhook.name == "Renamed"


def test_a_claim_that_does_not_fit_is_shared_out_and_still_loaded_in_one_statement(on_postgresql, hook, deal):
    for _ in range(5):
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    loaded = deliveries_load(claim_due(now=timezone.now(), limit=3, load=claim_load()))
    assert len(loaded) == 3 and all(d.status == "dispatched" and d.record is not None for d in loaded)
    assert Delivery.objects.filter(status="dispatched").count() == 3


def test_a_delivery_whose_worker_died_is_taken_over_and_counted(on_postgresql, hook, deal, settings):
    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [(_, first_token)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=10)
    after_lease = timezone.now() + datetime.timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS + 1)
    claim = claim_due(now=after_lease, limit=10, load=claim_load())
    [loaded] = deliveries_load(claim)
    assert loaded.pk == delivery.pk and loaded.claim_token == claim.token != first_token
    assert loaded.attempt_count == 2
    counters.counters_flush()
    assert EngineCounter.objects.get(decision="lease_taken_over").count == 1
