"""Failure isolation: one delivery whose answer cannot be stored, or whose request cannot be signed, fails
or is cleaned alone. The others of the same batch end Success exactly once, are charged once and tell
nobody anything. Real sockets throughout; the poisons are what PostgreSQL refuses (CI runs on it).

Slot isolation (below): an organization whose receivers hang or trickle holds only its share of a worker
process's slots, and a slow destination only a few; another organization's deliveries are sent meanwhile,
also by a drain past its time budget. A drain runs in a thread of its own, as in a worker process, while the
test enqueues and watches; outcomes are asserted, never timings."""
import collections
import json
import math
import threading

import pytest
from django.core import mail
from django.db import connection
from django.test import TestCase
from django.utils import timezone

from crm import services as crm_services
from crm.models import Field
from dispatcher import delivery as delivery_engine
from dispatcher.delivery import outcomes
from dispatcher.delivery.claims import ClaimRoom
from dispatcher.models import Attempt, Capture, DailyUsage, Delivery, DeliveryStatus, EngineCounter, Webhook
from tests.e2e.conftest import wait_for
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create
from tests.faults.hostile import HostileReceiver, answer, read_request

HEALTHY = 5


@pytest.fixture
def deal(owner, modules):
    owner.is_admin = True
    owner.save()
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Poison"})


@pytest.fixture
def hostile():
    started: list[HostileReceiver] = []

    def start(behaviour) -> HostileReceiver:
        started.append(HostileReceiver(behaviour))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def hook_to(modules, name: str, url: str) -> Webhook:
    return webhook_create(module=modules["Deals"], name=name, url=url, entity=[("deal", "${Deals.Deal Name}")])


def nul_in_header():
    return answer("200 OK", b"ok", headers="X-Poison: a\x00b\r\n")


def six_megabytes_of_headers():
    return answer("200 OK", b"ok", headers="".join(f"X-Big-{i}: {'h' * 64_000}\r\n" for i in range(95)))


def capture_hook(modules, url: str) -> Webhook:
    field = Field.objects.create(module=modules["Deals"], label="Invoice Ref", api_name="Invoice_Ref")
    hook = hook_to(modules, "Capturing", url)
    hook.capture_response, hook.capture_type = True, "JSONPATH"
    hook.save()
    Capture.objects.create(webhook=hook, when="success", expression="$.ref", field=field)
    Capture.objects.create(webhook=hook, when="success", expression="$.other", field=Field.objects.create(
        module=modules["Deals"], label="Other Ref", api_name="Other_Ref"))
    return hook


def run_one_batch(hooks: list[Webhook], deal) -> dict[str, Delivery]:
    """Every delivery of the test claimed together and attempted as one batch."""
    made = {hook.name: delivery_engine.delivery_enqueue(webhook=hook, record=deal) for hook in hooks}
    claimed = delivery_engine.deliveries_claim(now=Delivery.objects.latest("pk").due_at, limit=100)
    assert len(claimed) == len(made)
    with TestCase.captureOnCommitCallbacks(execute=True):  # a worker's e-mails are queued as its writes commit
        delivery_engine.deliveries_attempt(claimed=claimed)
    return {name: Delivery.objects.get(pk=d.pk) for name, d in made.items()}


def assert_healthy_unharmed(by_name: dict[str, Delivery], receiver) -> None:
    healthy = [d for name, d in by_name.items() if name.startswith("Healthy")]
    assert [d.status for d in healthy] == [DeliveryStatus.SUCCESS] * HEALTHY
    assert [d.attempts.count() for d in healthy] == [1] * HEALTHY  # sent once, stored once
    seen = [request.headers["webhook-id"] for request, _ in receiver.log]
    assert sorted(seen) == sorted(d.message_id for d in healthy)
    failure_mails = [m for m in mail.outbox if "Healthy" in m.subject]
    assert failure_mails == []


@pytest.fixture
def healthy(receiver, modules):
    receiver.expect_request("/hook").respond_with_data("ok")
    return [hook_to(modules, f"Healthy {i}", receiver.url_for("/hook")) for i in range(HEALTHY)]


def test_a_nul_byte_in_a_response_header_fails_its_attempt_alone(healthy, receiver, hostile, modules, deal):
    """The engine's HTTP parser refuses the header: a protocol error, retried later, for this delivery only."""
    poison = hook_to(modules, "NUL header", hostile(nul_in_header()).url())
    by_name = run_one_batch([*healthy[:2], poison, *healthy[2:]], deal)
    assert_healthy_unharmed(by_name, receiver)
    poisoned = by_name["NUL header"]
    assert (poisoned.status, poisoned.last_error_class) == (DeliveryStatus.RETRY, "protocol_error")
    assert DailyUsage.objects.get().calls == HEALTHY + 1  # each charged once


def test_a_nul_byte_and_a_lone_surrogate_in_the_body_are_cleaned_in_the_log(healthy, receiver, hostile, modules,
                                                                            deal):
    poison = hook_to(modules, "NUL body", hostile(answer("200 OK", b"a\x00b \xed\xa0\x80")).url())
    by_name = run_one_batch([*healthy, poison], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["NUL body"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    assert attempt.response_body.startswith("a\ufffdb ") and "NUL" in attempt.cleaned


def test_the_cleaning_is_recorded_for_headers_too(settings):
    from dispatcher.transport.cleaning import clean_headers

    kept, notes = clean_headers({"X-Poison": "a\x00b", "X-Lone": "\ud800", **{f"X-{i}": "h" * 64_000 for i in range(3)}})
    assert (kept["X-Poison"], kept["X-Lone"]) == ("a\ufffdb", "\ufffd")
    assert sum(len(k) + len(v) for k, v in kept.items()) <= settings.WEBHOOK_MAX_STORED_HEADER_BYTES
    assert notes == ["NUL bytes or invalid text in response headers replaced", "response headers cut at 64 KB (4 of 5 kept)"]


def test_six_megabytes_of_headers_are_cut_to_the_cap_and_the_cut_recorded(healthy, receiver, hostile, modules,
                                                                          deal, settings):
    poison = hook_to(modules, "Huge headers", hostile(six_megabytes_of_headers()).url())
    by_name = run_one_batch([poison, *healthy], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["Huge headers"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    assert len(json.dumps(attempt.response_headers)) <= settings.WEBHOOK_MAX_STORED_HEADER_BYTES + 2048
    assert "cut at 64 KB" in attempt.cleaned


def test_a_captured_nul_and_lone_surrogate_are_cleaned_in_the_record_and_the_log(healthy, receiver, hostile,
                                                                                  modules, deal):
    body = b'{"ref": "INV\\u00001", "other": "x\\ud800y"}'
    poison = capture_hook(modules, hostile(answer("200 OK", body, "Content-Type: application/json\r\n")).url())
    by_name = run_one_batch([*healthy, poison], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["Capturing"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    assert attempt.captured["Invoice Ref"]["written"] == "INV\ufffd1"
    assert attempt.captured["Other Ref"]["written"] == "x\ufffdy"
    assert "cleaned" in attempt.captured["Invoice Ref"]
    deal.refresh_from_db()
    assert (deal.values["Invoice_Ref"], deal.values["Other_Ref"]) == ("INV\ufffd1", "x\ufffdy")


def test_a_malformed_signing_secret_fails_its_delivery_alone_uncharged(healthy, receiver, modules, deal):
    broken = hook_to(modules, "Bad secret", receiver.url_for("/hook"))
    broken.signing_secret = "whsec_!!not-base64"  # as an old import_config could store it
    broken.save(update_fields=["signing_secret"])
    by_name = run_one_batch([broken, *healthy], deal)
    assert_healthy_unharmed(by_name, receiver)
    failed = by_name["Bad secret"]
    assert (failed.status, failed.last_error_class) == (DeliveryStatus.FAILED, "internal_error")
    assert "signing secret is not valid" in failed.status_reason
    assert DailyUsage.objects.get().calls == HEALTHY  # nothing was sent for it, nothing charged
    assert [m.subject for m in mail.outbox] == ["Webhook “Bad secret” failed for Deals #%s" % deal.pk]
    assert EngineCounter.objects.get(decision="sign_failed").count == 1


def test_when_a_batch_write_fails_the_rows_are_written_one_by_one(healthy, receiver, hostile, modules, deal,
                                                                  monkeypatch):
    """With the cleaning switched off, PostgreSQL refuses the batch: the fallback stores each outcome on its
    own and the poisoned one without the receiver's answer."""
    monkeypatch.setattr(outcomes, "outcome_clean", lambda outcome: None)
    poison = hook_to(modules, "NUL body", hostile(answer("200 OK", b"a\x00b")).url())
    by_name = run_one_batch([*healthy, poison], deal)
    assert_healthy_unharmed(by_name, receiver)
    [attempt] = by_name["NUL body"].attempts.all()
    assert attempt.outcome == DeliveryStatus.SUCCESS
    if connection.vendor == "postgresql":
        assert attempt.response_body == "" and "could not be stored" in attempt.cleaned
        assert EngineCounter.objects.get(decision="write_fallback").count == 1
    assert Attempt.objects.count() == HEALTHY + 1


# --- slot isolation -----------------------------------------------------------------------------------------
class SlowReceiver(HostileReceiver):
    """Holds every request until released, counting those it holds at once per path: paths starting with
    /trickle answer at once but send their body one byte every 0.2 s until released (each read is quick, the
    answer never ends), the others send nothing until released."""

    BODY = 1000

    def __init__(self) -> None:
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.holding: collections.Counter[str] = collections.Counter()
        self.most: collections.Counter[str] = collections.Counter()
        super().__init__(answer("200 OK", b"ok"))

    def _handle(self, conn) -> None:
        try:
            path = read_request(conn).split(b" ", 2)[1].decode()
            with self.lock:
                self.holding[path] += 1
                self.most[path] = max(self.most[path], self.holding[path])
            try:
                if path.startswith("/trickle"):
                    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {self.BODY}\r\nConnection: close\r\n\r\n"
                                 .encode())
                    sent = 0
                    while sent < self.BODY - 1 and not self.released.wait(0.2):
                        conn.sendall(b"x")
                        sent += 1
                    conn.sendall(b"x" * (self.BODY - sent))
                else:
                    self.released.wait(120)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            finally:
                with self.lock:
                    self.holding[path] -= 1
        except OSError:
            pass
        finally:
            conn.close()

    def held(self) -> int:
        with self.lock:
            return sum(self.holding.values())

    def stop(self) -> None:
        self.released.set()
        super().stop()


@pytest.fixture
def slow_receiver(receiver):
    """A receiver that hangs or trickles, on a loopback port the guarded client may reach in this test."""
    server = SlowReceiver()
    yield server
    server.stop()


class Drain:
    """deliveries_drain in a thread of its own, with its own database connection, as a worker process runs it."""

    def __init__(self, budget_seconds: float) -> None:
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(budget_seconds,), daemon=True)
        self.thread.start()

    def _run(self, budget_seconds: float) -> None:
        try:
            delivery_engine.deliveries_drain(batch=50, budget_seconds=budget_seconds)
        except BaseException as error:  # noqa: BLE001 - reported by join()
            self.errors.append(error)
        finally:
            connection.close()

    def join(self) -> None:
        self.thread.join(120)
        assert not self.thread.is_alive(), "the drain never ended"
        assert self.errors == []


def organization_hooks(url_of: dict[str, str]) -> tuple[object, dict[str, Webhook]]:
    """A new organization with a deal and one webhook per name, to the given URLs."""
    organization = OrganizationFactory()
    owner = CrmUserFactory(organization=organization)
    deals = organization.modules.get(api_name="Deals")
    deal = crm_services.record_create(module=deals, owner=owner, values={"Deal_Name": "Shared worker"})
    return deal, {name: webhook_create(module=deals, name=name, url=url, entity=[("deal", "${Deals.Deal Name}")])
                  for name, url in url_of.items()}


def enqueue(deal, hooks: list[Webhook], each: int) -> list[int]:
    """`each` deliveries per webhook, interleaved, committed (the drain's thread sees them)."""
    made = delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(each) for hook in hooks])
    return [d.pk for d in made]


def statuses(ids: list[int]) -> collections.Counter:
    return collections.Counter(Delivery.objects.filter(pk__in=ids).values_list("status", flat=True))


transactional = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@transactional
def test_another_organization_is_served_while_one_fills_its_share_with_receivers_that_hang_and_trickle(
        receiver, slow_receiver, settings):
    """Organization A's deliveries go to two receivers that hang and one that trickles, more than the process
    has slots for. Once A holds all it may, B's deliveries are claimed and end Success while every one of A's
    requests is still in flight."""
    settings.WEBHOOK_READ_TIMEOUT = settings.WEBHOOK_TOTAL_TIMEOUT = 120  # they hang until the test lets go
    settings.WEBHOOK_MAX_IN_FLIGHT = settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = 10  # one destination may
    # take all that A may hold: whichever of A's deliveries are claimed, each is sent at once
    receiver.expect_request("/b").respond_with_data("ok")
    a_deal, a_hooks = organization_hooks({path.strip("/"): slow_receiver.url(path)
                                          for path in ("/hang-1", "/hang-2", "/trickle")})
    b_deal, b_hooks = organization_hooks({"B": receiver.url_for("/b")})
    a_ids = enqueue(a_deal, list(a_hooks.values()), each=8)
    most_of_a = 10 - math.ceil(10 * settings.WEBHOOK_ORGANIZATION_RESERVE)  # the rest is kept for others
    drain = Drain(budget_seconds=60)
    try:
        wait_for(lambda: slow_receiver.held() >= most_of_a, timeout=60, what="A to hold all the slots it may")
        b_ids = enqueue(b_deal, list(b_hooks.values()), each=3)
        wait_for(lambda: statuses(b_ids) == {DeliveryStatus.SUCCESS: 3}, timeout=60,
                 what="B's deliveries to succeed while A's requests hang")
        assert slow_receiver.held() >= most_of_a  # A's requests are all still in flight
        assert DeliveryStatus.SUCCESS not in statuses(a_ids)
        assert [request.path for request, _ in receiver.log] == ["/b"] * 3
    finally:
        slow_receiver.released.set()
        drain.join()
    assert set(statuses(a_ids)) <= {DeliveryStatus.SUCCESS, DeliveryStatus.QUEUED}  # none failed, none lost
    assert not Attempt.objects.filter(delivery__in=a_ids).exclude(number=1).exists()


@transactional
@pytest.mark.parametrize("path", ["/hang", "/trickle"])
def test_a_slow_destination_is_held_to_a_few_slots_and_the_next_drain_remembers_it(receiver, slow_receiver,
                                                                                    settings, path):
    """A receiver that hangs, or trickles its answer (each read quick, the whole never ending), gets a new
    destination's limit of requests at once, not the 20 allowed; the rest go back to the database
    unattempted. The next drain of the process sends it one at a time, and once it answers quickly again
    every delivery ends Success, sent once."""
    settings.WEBHOOK_READ_TIMEOUT = settings.WEBHOOK_TOTAL_TIMEOUT = 30
    settings.WEBHOOK_MAX_IN_FLIGHT = settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = 20
    settings.WEBHOOK_DESTINATION_START_SLOTS, settings.WEBHOOK_SLOW_DESTINATION_SLOTS = 4, 1
    deal, hooks = organization_hooks({"Slow": slow_receiver.url(path)})
    ids = enqueue(deal, list(hooks.values()), each=12)

    def unattempted() -> int:
        return Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED, attempt_count=0).count()

    first = Drain(budget_seconds=0)  # it claims all 12 at once
    try:
        wait_for(lambda: slow_receiver.held() == 4 and unattempted() == 8, timeout=60,
                 what="4 requests held and the other 8 deliveries given back")
        assert slow_receiver.most[path] == 4
        assert "as many requests in flight" in Delivery.objects.filter(pk__in=ids, attempt_count=0)[0].status_reason
    finally:
        slow_receiver.released.set()
        first.join()
    assert statuses(ids) == {DeliveryStatus.SUCCESS: 4, DeliveryStatus.QUEUED: 8}

    slow_receiver.released.clear()
    slow_receiver.most.clear()  # no setting changes from here on: that would start a new sender pool
    Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.QUEUED).update(due_at=timezone.now())
    second = Drain(budget_seconds=60)
    try:
        wait_for(lambda: slow_receiver.held() == 1 and unattempted() == 7, timeout=60,
                 what="one request held, the other 7 deliveries left in the database")
        assert slow_receiver.most[path] == 1  # the limit the first drain left it with
    finally:
        slow_receiver.released.set()
        second.join()
    assert statuses(ids) == {DeliveryStatus.SUCCESS: 12}
    assert list(Attempt.objects.filter(delivery__in=ids).values_list("number", flat=True)) == [1] * 12


@transactional
def test_a_drain_past_its_budget_goes_on_claiming_while_a_slow_request_holds_it(receiver, slow_receiver, settings):
    """A drain with no budget left waits for A's request, which hangs: meanwhile B's delivery, made after the
    drain's only claim of its budget, is claimed in the drain's tail and ends Success."""
    settings.WEBHOOK_READ_TIMEOUT = settings.WEBHOOK_TOTAL_TIMEOUT = 120
    settings.WEBHOOK_DRAIN_TAIL_SECONDS = 60
    receiver.expect_request("/b").respond_with_data("ok")
    a_deal, a_hooks = organization_hooks({"A": slow_receiver.url("/hang")})
    b_deal, b_hooks = organization_hooks({"B": receiver.url_for("/b")})
    a_ids = enqueue(a_deal, list(a_hooks.values()), each=1)
    drain = Drain(budget_seconds=0)  # whatever it claims after its first claim, it claims in its tail
    try:
        wait_for(lambda: slow_receiver.held() == 1, timeout=60, what="A's request to hang")
        b_ids = enqueue(b_deal, list(b_hooks.values()), each=1)
        wait_for(lambda: statuses(b_ids) == {DeliveryStatus.SUCCESS: 1}, timeout=60,
                 what="B's delivery to succeed while the drain waits for A's")
        assert slow_receiver.held() == 1
        assert statuses(a_ids) == {DeliveryStatus.DISPATCHED: 1}
    finally:
        slow_receiver.released.set()
        drain.join()
    assert statuses(a_ids) == {DeliveryStatus.SUCCESS: 1}


@pytest.mark.django_db
def test_an_organization_with_no_room_in_the_process_is_left_out_of_the_claim(receiver):
    """The claim takes for each organization at most what the claiming process can start for it now: none of
    an organization over its share, so its 30 due deliveries do not crowd out another's 2."""
    a_deal, a_hooks = organization_hooks({"A": receiver.url_for("/a")})
    b_deal, b_hooks = organization_hooks({"B": receiver.url_for("/b")})
    enqueue(a_deal, list(a_hooks.values()), each=30)
    b_ids = enqueue(b_deal, list(b_hooks.values()), each=2)
    a = a_hooks["A"].organization_id
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=10,
                                               room=ClaimRoom(organizations={a: 0}, newcomer=10))
    assert sorted(pk for pk, _ in claimed) == sorted(b_ids)
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=10,
                                               room=ClaimRoom(organizations={a: 3}, newcomer=10))
    assert statuses([pk for pk, _ in claimed]) == {DeliveryStatus.DISPATCHED: 3}
    assert Delivery.objects.filter(organization_id=a, status=DeliveryStatus.DISPATCHED).count() == 3
