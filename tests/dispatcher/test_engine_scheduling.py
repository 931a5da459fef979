"""Scheduling in the engine: claims are fair across organizations, and a receiver that hangs delays only
its own deliveries. Outcomes are asserted, never timings."""
import threading

import pytest
from django.utils import timezone

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery
from tests.e2e.conftest import wait_for
from tests.factories import CrmUserFactory, OrganizationFactory, webhook_create
from tests.faults.hostile import HostileReceiver, read_request

pytestmark = pytest.mark.django_db


def deal_and_hook(organization, url: str, name: str = "Hook"):
    owner = CrmUserFactory(organization=organization)
    deals = organization.modules.get(api_name="Deals")
    deal = crm_services.record_create(module=deals, owner=owner, values={"Deal_Name": "Fair"})
    return deal, webhook_create(module=deals, name=name, url=url, entity=[("deal", "${Deals.Deal Name}")])


def test_one_organizations_import_does_not_hold_up_another_organizations_delivery(receiver):
    big, small = OrganizationFactory(), OrganizationFactory()
    big_deal, big_hook = deal_and_hook(big, receiver.url_for("/big"))
    small_deal, small_hook = deal_and_hook(small, receiver.url_for("/small"))
    delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(big_hook, big_deal) for _ in range(300)])
    late = delivery_engine.delivery_enqueue(webhook=small_hook, record=small_deal)  # due after all 300
    claimed = dict(delivery_engine.deliveries_claim(now=timezone.now(), limit=50))
    assert late.pk in claimed  # in the first claim, not after the 300
    assert len(claimed) == 50  # the small organization's unused share went to the big one


def test_shares_are_equal_between_organizations_with_due_work(receiver):
    organizations = [OrganizationFactory() for _ in range(3)]
    for organization in organizations:
        deal, hook = deal_and_hook(organization, receiver.url_for("/hook"))
        delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(40)])
    claimed = delivery_engine.deliveries_claim(now=timezone.now(), limit=30)
    by_organization = sorted(Delivery.objects.filter(pk__in=[pk for pk, _ in claimed])
                             .values_list("organization_id", flat=True))
    assert [by_organization.count(o.pk) for o in organizations] == [10, 10, 10]


class HoldingReceiver(HostileReceiver):
    """Answers 200 only once released: until then every request it gets hangs (with fast_path: every request
    but those for that path, which are answered at once, so two destinations share one host and port)."""

    def __init__(self, fast_path: str | None = None) -> None:
        self.fast_path, self.fast = fast_path, 0
        self.release = threading.Event()
        self.holding = self.most = 0
        self.lock = threading.Lock()
        super().__init__(self._hold)

    def _handle(self, conn) -> None:
        try:
            head = read_request(conn)
            if self.fast_path and head.split(b" ", 2)[1].decode().startswith(self.fast_path):
                with self.lock:
                    self.fast += 1
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            else:
                self._hold(conn, self.stopped)
        except OSError:
            pass
        finally:
            conn.close()

    def _hold(self, conn, stopped) -> None:
        with self.lock:
            self.holding += 1
            self.most = max(self.most, self.holding)
        self.release.wait(120)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        with self.lock:
            self.holding -= 1

    def release_once(self, condition, what: str) -> tuple[threading.Thread, dict]:
        """A thread that lets every held request go once condition() holds (or after 60 s, recording that it
        never did); the dict says which."""
        seen: dict[str, bool] = {}

        def wait_then_release() -> None:
            try:
                seen["held until"] = bool(wait_for(condition, timeout=60, what=what))
            finally:
                self.release.set()

        thread = threading.Thread(target=wait_then_release)
        thread.start()
        return thread, seen


def test_a_hanging_receiver_delays_only_its_own_deliveries(receiver, settings, owner, modules):
    """The hanging receiver is let go only once the fast one has had all its requests: a sender stuck behind
    a hanging request would never get there. The hanging one gets only its per-destination share of the
    slots, and none of its deliveries is lost."""
    settings.WEBHOOK_READ_TIMEOUT = settings.WEBHOOK_TOTAL_TIMEOUT = 120  # it hangs until the test lets go
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = 2
    receiver.expect_request("/fast").respond_with_data("ok")
    hanging = HoldingReceiver()
    try:
        deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Hang"})
        fast_hook = webhook_create(module=modules["Deals"], name="Fast", url=receiver.url_for("/fast"))
        slow_hook = webhook_create(module=modules["Deals"], name="Hanging", url=hanging.url())
        # Interleaved, hanging ones first: a sequential sender would be stuck behind the first one.
        items = [delivery_engine.Enqueue(hook, deal) for _ in range(6) for hook in (slow_hook, fast_hook, fast_hook)]
        delivery_engine.deliveries_enqueue(items)
        releaser, seen = hanging.release_once(
            lambda: len(receiver.log) >= 12 and hanging.holding >= 2,
            "the fast receiver to get every request while the hanging one holds its share")
        delivery_engine.deliveries_drain(batch=50, budget_seconds=0)
        releaser.join(60)
        assert seen == {"held until": True}
        assert sorted(Delivery.objects.filter(webhook=fast_hook).values_list("status", flat=True)) == ["success"] * 12
        assert hanging.most == 2  # never more than its share in flight
        slow = Delivery.objects.filter(webhook=slow_hook)
        assert list(slow.order_by().values_list("status", "attempt_count").distinct()) == [("success", 1)]  # none lost
    finally:
        hanging.release.set()
        hanging.stop()


def test_a_hanging_destination_does_not_starve_another_on_the_same_host(settings, owner, modules):
    """Destinations differ by path: /hang holds its share of slots, /fast on the same host and port still
    gets every request through while /hang hangs (connections are not pooled per host against it)."""
    settings.WEBHOOK_READ_TIMEOUT = settings.WEBHOOK_TOTAL_TIMEOUT = 120
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, True
    settings.WEBHOOK_MAX_IN_FLIGHT, settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = 4, 2
    server = HoldingReceiver(fast_path="/fast")
    try:
        deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Host"})
        fast_hook = webhook_create(module=modules["Deals"], name="Fast", url=server.url("/fast"))
        slow_hook = webhook_create(module=modules["Deals"], name="Hanging", url=server.url("/hang"))
        delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hook, deal) for _ in range(4)
                                            for hook in (slow_hook, fast_hook, fast_hook)])
        releaser, seen = server.release_once(lambda: server.fast >= 8 and server.holding >= 2,
                                             "every /fast request while /hang holds its share")
        delivery_engine.deliveries_drain(batch=50, budget_seconds=30)  # claims again as slots free
        releaser.join(60)
        assert seen == {"held until": True}
        assert set(Delivery.objects.filter(webhook=fast_hook).values_list("status", flat=True)) == {"success"}
        assert server.most == 2
    finally:
        server.release.set()
        server.stop()
