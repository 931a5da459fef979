"""Throttles (issues 16 and 25): admin logins by user name (django-axes), API calls per key and per organization,
and calls with an invalid key per client address (429 with Retry-After and a problem document)."""
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
    assert login("other", "other-password").status_code == 302  # the lock is for that user name


def test_an_organizations_keys_together_are_limited_and_another_organization_goes_on(client, keys, settings,
                                                                                  monkeypatch):
    settings.API_RATE_LIMIT_PER_ORGANIZATION = 4
    moment = timezone.now().replace(second=50, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: moment)
    busy, calm = keys  # two keys of one organization, each under its own limit of 600
    stranger = crm_services.api_key_create(user=CrmUserFactory(), name="Elsewhere")[1]

    def get(key):
        return client.get("/api/v1/channels/", headers={"X-API-Key": key})

    assert [get(busy).status_code for _ in range(3)] + [get(calm).status_code] == [200, 200, 200, 200]
    refused = get(calm)
    assert (refused.status_code, refused["Retry-After"], refused["Content-Type"]) == (429, "10",
                                                                                      "application/problem+json")
    assert refused.json()["code"] == "rate_limited" and refused.json()["retry_after"] == 10
    assert refused.json()["detail"] == ("This organization's keys made 4 calls this minute, the most they may "
                                        "together; try again in 10 s.")
    assert get(stranger).status_code == 200  # per organization
    moment += datetime.timedelta(seconds=10)
    assert get(calm).status_code == 200  # the next minute


def test_guessing_keys_from_one_address_is_throttled_and_then_costs_no_query(client, keys, settings, monkeypatch,
                                                                            django_assert_num_queries):
    settings.API_AUTH_FAILURES_PER_MINUTE = 3
    moment = timezone.now().replace(second=20, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: moment)
    busy, _ = keys

    def get(key, address="203.0.113.7"):
        return client.get("/api/v1/channels/", headers={"X-API-Key": key}, REMOTE_ADDR=address)

    assert [get(f"crm_guess-{n}").status_code for n in range(3)] == [401, 401, 401]
    refused = get("crm_guess-3")
    assert (refused.status_code, refused["Retry-After"], refused["Content-Type"]) == (429, "40",
                                                                                      "application/problem+json")
    assert refused.json()["code"] == "rate_limited" and refused.json()["retry_after"] == 40
    assert refused.json()["detail"] == ("Too many calls with an API key that is not valid came from your address "
                                        "this minute (3 at most); try again in 40 s.")
    with django_assert_num_queries(0):  # no key lookup, no counter: refusing a guesser costs nothing
        assert get("crm_guess-4").status_code == 429
    assert get(busy, address="198.51.100.9").status_code == 200  # per address
    assert get("crm_other-guess", address="198.51.100.9").status_code == 401
    moment += datetime.timedelta(seconds=40)
    assert get("crm_guess-5").status_code == 401  # the next minute: told the key is wrong again


def test_behind_proxies_the_address_is_the_one_the_outermost_proxy_saw(client, settings, db, monkeypatch):
    settings.API_AUTH_FAILURES_PER_MINUTE = 1
    settings.AXES_IPWARE_PROXY_COUNT = 1  # AXES_PROXY_COUNT=1: one proxy in front, at 10.0.0.1
    moment = timezone.now().replace(second=0, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: moment)  # one minute, whatever the machine's speed

    def get(forwarded_for):
        return client.get("/api/v1/channels/", headers={"X-API-Key": "crm_guess", "X-Forwarded-For": forwarded_for},
                          REMOTE_ADDR="10.0.0.1")

    assert get("203.0.113.7").status_code == 401
    assert get("203.0.113.7").status_code == 429
    assert get("198.51.100.9").status_code == 401  # another client behind the same proxy
    assert get("1.2.3.4, 203.0.113.7").status_code == 429  # what the client wrote itself does not count


def test_a_locked_user_name_stays_locked_from_another_address(client, db, settings):
    settings.AXES_FAILURE_LIMIT = 3
    get_user_model().objects.create_superuser("boss", "boss@example.com", "right-password")

    def login(password, address):
        return client.post("/admin/login/?next=/admin/", {"username": "boss", "password": password},
                           REMOTE_ADDR=address)

    assert [login("wrong", f"203.0.113.{n}").status_code for n in range(3)] == [200, 200, 429]  # spread out
    moved = login("right-password", "198.51.100.9")
    assert moved.status_code == 429 and "_auth_user_id" not in client.session


def test_a_key_in_use_from_an_address_keeps_working_while_guesses_from_it_are_refused(client, keys, settings,
                                                                                       monkeypatch):
    """Clients behind one NAT or proxy share an address: a guesser among them blocks guesses, not the keys
    this process has seen valid; a key not seen yet waits for the minute like a guess."""
    settings.API_AUTH_FAILURES_PER_MINUTE = 2
    moment = timezone.now().replace(second=20, microsecond=0)
    monkeypatch.setattr(timezone, "now", lambda: moment)
    busy, calm = keys

    def get(key):
        return client.get("/api/v1/channels/", headers={"X-API-Key": key}, REMOTE_ADDR="203.0.113.8")

    assert get(busy).status_code == 200
    assert [get(f"crm_guess-{n}").status_code for n in range(3)] == [401, 401, 429]
    assert get(busy).status_code == 200  # seen valid: still served
    assert get(calm).status_code == 429  # not seen yet from here: refused with the guesses until the minute ends
    assert get("crm_guess-9").status_code == 429
