"""Throttles (issue 16): admin logins by user name and address (django-axes), API calls per key (429)."""
import datetime
import json

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from crm import services as crm_services
from tests.factories import CrmUserFactory


@pytest.fixture
def keys(owner):
    return (crm_services.api_key_create(user=owner, name="Busy")[1],
            crm_services.api_key_create(user=CrmUserFactory(organization=owner.organization), name="Calm")[1])


def test_an_api_key_over_its_rate_gets_429_with_retry_after_and_the_others_go_on(client, keys, settings, monkeypatch):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    moment = timezone.now().replace(second=15, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: moment)  # one minute, whatever the machine's speed
    busy, calm = keys

    def get(key):
        return client.get("/api/v1/channels/", headers={"X-API-Key": key})

    assert [get(busy).status_code for _ in range(3)] == [200, 200, 200]
    refused = get(busy)
    assert (refused.status_code, refused["Retry-After"]) == (429, "45")
    assert refused.json()["error"] == {"code": "rate_limited", "retry_after": 45, "message":
                                       "This key made 3 calls this minute, the most it may; try again in 45 s."}
    assert refused["Content-Type"] == "application/problem+json"
    assert get(calm).status_code == 200  # per key
    moment += datetime.timedelta(seconds=45)
    assert get(busy).status_code == 200  # the next minute
    assert client.post("/api/v1/records/Deals/", data=json.dumps({"Deal_Name": "x"}), content_type="application/json",
                       headers={"X-API-Key": calm}).status_code == 201


def test_admin_logins_are_locked_after_repeated_wrong_passwords(client, db, settings):
    settings.AXES_FAILURE_LIMIT = 3
    get_user_model().objects.create_superuser("boss", "boss@example.com", "right-password")
    get_user_model().objects.create_superuser("other", "other@example.com", "other-password")

    def login(username, password):
        return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})

    assert [login("boss", "wrong").status_code for _ in range(3)] == [200, 200, 429]
    locked = login("boss", "right-password")
    assert locked.status_code == 429 and "_auth_user_id" not in client.session  # even the right one, for now
    assert login("other", "other-password").status_code == 302  # the lock is for that user name and address
