"""Behind PgBouncer in transaction pooling (DATABASE_POOLER=transaction, docs/operate/scaling.md): a worker
delivers without what needs a session of its own (LISTEN, the AWAKE lock), and a product process connects only
because the setting keeps the startup options PgBouncer refuses out of its connections."""
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.db import connection, transaction
from werkzeug import Response

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.delivery.wakeups import AWAKE_LOCK, loop_awake
from dispatcher.models import Delivery, DeliveryStatus
from tests.e2e.conftest import BASE_DIR, wait_for
from tests.factories import webhook_create

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
STACKS = ("pgbouncer",)  # tests/e2e/conftest.py: only behind PgBouncer

CONNECT = """
import django, json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
django.setup()
from django.db import connection
from dispatcher.models import Delivery
try:
    rows = sum(1 for _ in Delivery.objects.iterator(chunk_size=1))  # a server-side cursor unless disabled
except Exception as error:
    print(json.dumps({"error": str(error)}))
else:
    print(json.dumps({"rows": rows, "server_side_cursors": not connection.settings_dict.get(
        "DISABLE_SERVER_SIDE_CURSORS"), "options": connection.settings_dict["OPTIONS"].get("options", "")}))
"""


def connect(stack, **env: str) -> dict:
    """What a product process reports after connecting through the stack's PgBouncer with this environment."""
    done = subprocess.run([sys.executable, "-c", CONNECT], cwd=BASE_DIR, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **stack.env, "DJANGO_SECRET_KEY": settings.SECRET_KEY, **env})
    if done.returncode:  # the settings refused to start: their last word
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def awake_locks() -> int:
    """Sessions of this database holding the AWAKE lock (as loop_awake asks, but counting)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM "
                       "pg_database WHERE datname = current_database()) AND classid = %s::oid AND objid = %s::oid "
                       "AND objsubid = 2", list(AWAKE_LOCK))
        return cursor.fetchone()[0]


def listening_sessions() -> int:
    """Server sessions of this database whose last statement was a LISTEN."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND query ILIKE 'LISTEN%%'")
        return cursor.fetchone()[0]


def test_a_worker_behind_pgbouncer_delivers_each_commit_without_listening(start_worker, receiver, owner, modules):
    receiver.expect_request("/hook").respond_with_handler(lambda request: Response("ok"))
    webhook = webhook_create(module=modules["Deals"], name="Pooled", url=receiver.url_for("/hook"))
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Pooled"})
    start_worker()
    for expected in (1, 2):  # the second commit comes after the first drain: a broker wake-up, not a NOTIFY
        with transaction.atomic():
            delivery_engine.delivery_enqueue(webhook=webhook, record=deal)
        wait_for(lambda n=expected: Delivery.objects.filter(status=DeliveryStatus.SUCCESS).count() == n,
                 what=f"delivery {expected} to succeed")
        assert awake_locks() == 0 and listening_sessions() == 0
        assert not loop_awake()  # so every commit sends its broker wake-up
    assert len(receiver.log) == 2


def test_a_process_connects_through_pgbouncer_only_with_the_pooler_setting(stack):
    pooled = connect(stack)  # stack.env has DATABASE_POOLER=transaction
    assert pooled == {"rows": 0, "server_side_cursors": False, "options": ""}
    # Without it the session timeouts travel as startup options, which PgBouncer refuses.
    assert "unsupported startup parameter: options" in connect(stack, DATABASE_POOLER="")["error"]
    # An explicit timeout could not travel either: the process refuses to start and says to set it on the role.
    refused = connect(stack, DATABASE_IDLE_IN_TRANSACTION_TIMEOUT="60")
    assert "cannot be sent through a pooler" in refused["error"] and "ALTER ROLE" in refused["error"]
