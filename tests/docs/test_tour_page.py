"""The first tour's "receiver on your own machine" step (docs/use/tour.md), as printed: the settings it puts
in .env, and its receiver.py run as a process of its own, which gets real signed deliveries from the engine,
says `valid` and answers 204, and says `INVALID` and answers 401 when the signature was made with another
secret."""
import json
import os
import re
import subprocess
import sys

import pytest
from environ import Env

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.models import Delivery, DeliveryStatus, signing_secret_generate
from tests.docs.pages import blocks, page, section
from tests.factories import webhook_create

TOUR = "use/tour.md"
RECEIVER_DEFAULT_PORT = "8001"  # what the step's URL and WEBHOOK_ALLOWED_PORTS use


def tour_step() -> tuple[dict[str, str], str]:
    """The step's .env lines, as a dict, and its receiver's code."""
    step = section(page(TOUR), "A receiver on your own machine")
    [dotenv], [code] = blocks(step, "bash"), blocks(step, "python")
    settings = dict(line.strip().split("=", 1) for line in dotenv.splitlines() if line.strip())
    return settings, code


@pytest.fixture
def start_receiver(tmp_path):
    """receiver.py as the step prints it, started with a webhook's secret on a port of its choosing (a fixed
    one could be taken by another test); its first line says where it listens."""
    processes = []

    def start(secret: str) -> tuple[subprocess.Popen, int]:
        path = tmp_path / "receiver.py"
        path.write_text(tour_step()[1])
        process = subprocess.Popen([sys.executable, str(path), "0"], stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "WEBHOOK_SECRET": secret})
        processes.append(process)
        listening = process.stdout.readline()
        port = re.fullmatch(r"Listening on http://127\.0\.0\.1:(\d+)/\n", listening)
        assert port, listening
        return process, int(port.group(1))

    yield start
    for process in processes:
        process.kill()
        process.wait(timeout=10)
        process.stdout.close()


def test_the_step_allows_the_receiver_it_starts_and_nothing_else(settings):
    dotenv, _ = tour_step()
    assert set(dotenv) == {"WEBHOOK_ALLOW_LOOPBACK", "WEBHOOK_ALLOWED_PORTS"}
    env = Env()
    env.ENVIRON = dotenv
    assert env.bool("WEBHOOK_ALLOW_LOOPBACK") is True
    assert env.list("WEBHOOK_ALLOWED_PORTS") == ["80", "443", RECEIVER_DEFAULT_PORT]
    assert f"http://127.0.0.1:{RECEIVER_DEFAULT_PORT}/hook" in page(TOUR)


def test_the_tour_receiver_gets_signed_deliveries_and_refuses_a_wrong_signature(settings, owner, modules,
                                                                                 start_receiver):
    # As the step's .env sets them, with the port this receiver got instead of 8001.
    secret, other_secret = signing_secret_generate(), signing_secret_generate()
    receiver, port = start_receiver(secret)
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, False
    settings.WEBHOOK_ALLOWED_PORTS = [80, 443, port]
    hook = webhook_create(module=modules["Deals"], name="My receiver", url=f"http://127.0.0.1:{port}/hook",
                          entity=[("deal", "${Deals.Deal Name}")], signing_secret=secret)
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Café & Co"})

    delivery = delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    delivery_engine.delivery_run(delivery_id=delivery.pk)

    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCESS
    method, path, msg_id, verdict, body = receiver.stdout.readline().rstrip("\n").split(" ", 4)
    assert (method, path, msg_id, verdict) == ("POST", "/hook", f"msg_{delivery.public_id.hex}", "valid")
    assert json.loads(body) == {"deal": "Café & Co"}

    # The same receiver, sent to by a webhook whose secret it was not given (one copied wrong).
    stranger = webhook_create(module=modules["Deals"], name="Not my receiver", url=f"http://127.0.0.1:{port}/hook",
                              entity=[("deal", "${Deals.Deal Name}")], signing_secret=other_secret)
    forged = delivery_engine.delivery_enqueue(webhook=stranger, record=deal)
    delivery_engine.delivery_run(delivery_id=forged.pk)

    assert Delivery.objects.get(pk=forged.pk).status != DeliveryStatus.SUCCESS
    assert forged.attempts.get().status_code == 401
    assert receiver.stdout.readline().split(" ", 4)[:4] == ["POST", "/hook", f"msg_{forged.public_id.hex}", "INVALID"]
