"""DATABASE_POOLER (config/settings.py): what the product stops asking of a connection behind a pooler. The
end-to-end proof behind a real PgBouncer is tests/e2e/test_pooler.py."""
import json
import os
import subprocess
import sys

import pytest
from django.db import connection

from dispatcher.delivery.wakeups import Listener, loop_awake, sessions_kept
from tests.processes import ROOT

SHOW = """
import json, os
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({"options": db["OPTIONS"].get("options", ""), "keepalives": db["OPTIONS"].get("keepalives"),
                  "no_server_side_cursors": db.get("DISABLE_SERVER_SIDE_CURSORS", False),
                  "linger": settings.WEBHOOK_DRAIN_LINGER_SECONDS}))
"""


def settings_with(**env: str) -> dict:
    """The database and drain settings a product process gets with this environment (nothing is connected)."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "WEBHOOK_DRAIN"))}
    done = subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**clean, "DATABASE_URL": "postgres://app@db.internal:6432/webhooks", **env})
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout)


def test_without_a_pooler_sessions_get_their_timeouts_and_drains_linger():
    assert settings_with() == {"options": "-c idle_in_transaction_session_timeout=60000", "keepalives": 1,
                               "no_server_side_cursors": False, "linger": 5.0}


def test_session_pooling_sends_no_startup_options_and_keeps_the_rest():
    assert settings_with(DATABASE_POOLER="session") == {"options": "", "keepalives": 1,
                                                        "no_server_side_cursors": False, "linger": 5.0}


def test_transaction_pooling_also_turns_off_server_side_cursors_and_the_awake_drain():
    assert settings_with(DATABASE_POOLER="transaction") == {"options": "", "keepalives": 1,
                                                            "no_server_side_cursors": True, "linger": 0.0}
    # What an operator sets explicitly still wins (and is then theirs to make work).
    assert settings_with(DATABASE_POOLER="transaction", WEBHOOK_DRAIN_LINGER_SECONDS="5")["linger"] == 5.0


def test_a_session_timeout_given_with_a_pooler_stops_the_process_and_says_where_to_set_it():
    error = settings_with(DATABASE_POOLER="transaction", DATABASE_STATEMENT_TIMEOUT="30")["error"]
    assert "cannot be sent through a pooler" in error and "ALTER ROLE" in error


def test_an_unknown_pool_mode_stops_the_process():
    assert "DATABASE_POOLER is 'statement'" in settings_with(DATABASE_POOLER="statement")["error"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)  # autocommit: where a loop would listen
def test_in_transaction_pooling_no_loop_listens_and_every_commit_asks_the_broker(settings):
    """Even with a linger set: LISTEN and the AWAKE lock would stay with whichever server session ran them."""
    if connection.vendor != "postgresql":
        pytest.skip("LISTEN and advisory locks are PostgreSQL's (CI runs on it)")
    settings.DATABASE_POOLER = "transaction"
    settings.WEBHOOK_DRAIN_LINGER_SECONDS = 5.0
    assert not sessions_kept()
    assert Listener.open() is None
    assert loop_awake() is False
    settings.DATABASE_POOLER = "session"  # the same connection, told it keeps its session: the loop listens
    listener = Listener.open()
    try:
        assert listener is not None and loop_awake() is True
    finally:
        if listener is not None:
            listener.close()
    assert loop_awake() is False
