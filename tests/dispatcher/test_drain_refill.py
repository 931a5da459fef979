"""A drain loop keeps its slots busy without polling (issue 27): an organization left with due work claims
its refill as soon as requests end, and a worker's loop hears new work by notification while it is busy.
The poll interval is set to an hour in each test, so only those two paths can claim the deliveries the
test waits for; requests to /hang are held until the test has seen what it asserts. Outcomes, never
timings. PostgreSQL only: on SQLite claims stay with the poll (each takes the one write lock) and no loop
listens."""
import pytest

from dispatcher import delivery as delivery_engine
from dispatcher.delivery import run, wakeups
from dispatcher.models import Delivery
from tests.dispatcher.test_awake_drain import AwakeDrain, on_postgresql, transactional  # noqa: F401 - fixture
from tests.dispatcher.test_engine_scheduling import HoldingReceiver, deal_and_hook
from tests.e2e.conftest import wait_for
from tests.factories import OrganizationFactory

HOUR = 3600.0


@pytest.fixture
def server(settings):
    settings.WEBHOOK_READ_TIMEOUT = settings.WEBHOOK_TOTAL_TIMEOUT = 120  # /hang holds until the test lets go
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, True
    settings.WEBHOOK_CLAIM_POLL_SECONDS = HOUR  # no claim comes from the poll within the test
    server = HoldingReceiver(fast_path="/fast")
    yield server
    server.release.set()
    server.stop()


def backlog(organization, server) -> tuple:
    """Two deliveries to /hang, then twenty to /fast behind them: the organization's two webhooks."""
    deal, hang = deal_and_hook(organization, server.url("/hang"), name="Hanging")
    _, fast = deal_and_hook(organization, server.url("/fast"), name="Fast")
    delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hang, deal) for _ in range(2)])
    delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(fast, deal) for _ in range(20)])
    return hang, fast


def drain_behind_hanging(server, settings, *, organizations: int, slots: int, batch: int) -> tuple[list, int]:
    """Each organization's backlog drained with this many slots, the hanging requests held until every fast
    one has been sent (which only a refill while they hang can do), then let go: the webhooks of every
    organization's backlog, and what the drain attempted."""
    settings.WEBHOOK_MAX_IN_FLIGHT, settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION = slots, slots
    hooks = [hook for _ in range(organizations) for hook in backlog(OrganizationFactory(), server)]
    releaser, seen = server.release_once(
        lambda: server.fast >= 20 * organizations and server.holding == 2 * organizations,
        f"every fast request while the {2 * organizations} hanging ones are held")
    attempted = delivery_engine.deliveries_drain(batch=batch, budget_seconds=30)
    releaser.join(60)
    assert seen == {"held until": True}
    return hooks, attempted


@pytest.mark.django_db
def test_an_organization_with_more_due_than_its_slots_refills_them_as_requests_end(on_postgresql, server,  # noqa: F811
                                                                                    settings):
    """Four slots, two held by requests that hang: the twenty fast deliveries behind them are claimed a few at
    a time as each fast request ends, while the hanging two are still in flight."""
    (hang, fast), attempted = drain_behind_hanging(server, settings, organizations=1, slots=4, batch=50)
    assert attempted == 22
    assert set(Delivery.objects.filter(webhook=fast).values_list("status", flat=True)) == {"success"}
    assert set(Delivery.objects.filter(webhook=hang).values_list("status", flat=True)) == {"success"}


@pytest.mark.django_db
def test_two_organizations_with_more_due_than_the_slots_both_refill_as_requests_end(on_postgresql, server,  # noqa: F811
                                                                                     settings):
    """Twelve slots, two organizations each holding two with requests that hang and twenty fast deliveries
    behind them: each claim is cut at its limit (8) and shared between them, and both refill as their fast
    requests end, while all four hanging requests are still in flight."""
    hooks, attempted = drain_behind_hanging(server, settings, organizations=2, slots=12, batch=8)
    assert attempted == 44
    assert set(Delivery.objects.filter(webhook__in=hooks).values_list("status", flat=True)) == {"success"}


@transactional
def test_a_busy_worker_loop_hears_another_organizations_new_delivery(on_postgresql, server, settings,  # noqa: F811
                                                                     monkeypatch):
    """A worker's loop is busy with two hanging requests; another organization's delivery committed meanwhile
    is sent at once: the loop listens once a claim brought it work, and the notification makes it claim (its
    look for work due by the clock is an hour away here)."""
    monkeypatch.setattr(run, "LISTENING_CLAIM_SECONDS", HOUR)
    busy, other = OrganizationFactory(), OrganizationFactory()
    deal, hang = deal_and_hook(busy, server.url("/hang"), name="Hanging")
    delivery_engine.deliveries_enqueue([delivery_engine.Enqueue(hang, deal) for _ in range(2)])
    drain = AwakeDrain(linger_seconds=120)
    try:
        wait_for(lambda: server.holding == 2 and wakeups.loop_awake(), timeout=60,
                 what="the loop to send both hanging requests and listen")
        other_deal, fast = deal_and_hook(other, server.url("/fast"), name="Fast")
        late = delivery_engine.delivery_enqueue(webhook=fast, record=other_deal)
        wait_for(lambda: Delivery.objects.filter(pk=late.pk, status="success").exists(), timeout=60,
                 what="the busy loop to send the other organization's delivery")
        assert server.holding == 2  # sent while the loop was still busy with the hanging ones
    finally:
        server.release.set()
        drain.wind_down.set()
    assert drain.join() == 3
