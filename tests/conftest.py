import os

import pytest
from django.conf import settings
from hypothesis import settings as hypothesis_settings

from tests.factories import CrmUserFactory, OrganizationFactory

# No property test may depend on how fast the machine is: hypothesis's 200 ms deadline per example fails
# under `-n 4` on two busy cores, so the whole suite runs without it (a test's own settings still win).
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")


def pytest_configure(config) -> None:
    """In CI the suite must run on the real services; an unreachable one fails the run, never skips."""
    if not os.environ.get("CI"):
        return
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        raise pytest.UsageError(f"CI is set but DATABASE_URL is not PostgreSQL ({engine}).")
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        raise pytest.UsageError("CI is set but CELERY_BROKER_URL is not Redis.")
    if not os.environ.get("CELERY_BROKER_URL_AMQP", "").startswith(("amqp://", "pyamqp://")):
        raise pytest.UsageError("CI is set but CELERY_BROKER_URL_AMQP (RabbitMQ, for the end-to-end tests: "
                                "tests/e2e/conftest.py) is not an amqp:// URL.")
    import redis

    try:
        redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_connect_timeout=3).ping()
    except redis.RedisError as error:
        raise pytest.UsageError(f"CI is set but Redis is unreachable: {error}") from error


def pytest_collection_modifyitems(items) -> None:
    """Every transactional test restores the migrated rows (serialized_rollback): one that does not ends with
    a flush after which Django creates the content types again, and the next serialized test of the same
    worker, inserting them from its copy, fails with duplicate keys — in whichever test follows it."""
    unsafe = [item.nodeid for item in items if (marker := item.get_closest_marker("django_db"))
              and marker.kwargs.get("transaction") and not marker.kwargs.get("serialized_rollback")]
    if unsafe:
        raise pytest.UsageError("django_db(transaction=True) needs serialized_rollback=True: " + ", ".join(unsafe))


@pytest.fixture(autouse=True)
def process_caches_reset():
    """Each test starts with a process that has kept none of its rows (ids can repeat after a rollback)."""
    from config.caches import caches_reset

    caches_reset()
    yield


@pytest.fixture(autouse=True)
def celery_tasks_run_here():
    """Tasks queued with apply_async (the e-mails) run in the test's process, as a worker would run them;
    wake-ups (send_task) still go to the broker, where the in-process tests do not need them."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def organization(db):
    return OrganizationFactory()


@pytest.fixture
def owner(organization):
    return CrmUserFactory(organization=organization, first_name="Ted", last_name="Watson",
                          email="ted@zylker.example", mobile="+31 6 8765 4321")


@pytest.fixture
def modules(organization):
    return {module.api_name: module for module in organization.modules.all()}


@pytest.fixture
def receiver(httpserver, settings):
    """A real HTTP server on 127.0.0.1 that the guarded client is allowed to reach for this test."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    settings.WEBHOOK_ALLOW_ANY_PORT = True
    return httpserver


@pytest.fixture(scope="session")
def httpserver_listen_address():
    return ("127.0.0.1", 0)


def _send_through_the_engine(request):
    """The engine's client: the request goes through the sender pool, as a delivery's would."""
    import time

    from dispatcher.delivery.pool import sender_pool

    pool, key = sender_pool(), object()
    pool.submit(key, "test destination", request)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for sent in pool.collect(timeout=1.0):
            if sent.key is key:
                return sent.result
    raise AssertionError("the sender pool never finished the request")


@pytest.fixture(params=["one-off client", "engine client"])
def request_send(request):
    """Both ways through the guarded client: one-off sends (test sends, channel verification) and the engine's
    sender pool."""
    from dispatcher.transport.sending import send_now

    return (lambda rendered: send_now(rendered)[0]) if request.param == "one-off client" else _send_through_the_engine
