"""OAuth 2.0 token endpoints that say nonsense about how long a token lasts (issue 25): a token is kept at most
24 hours whatever expires_in says (1e308 would keep it for the life of the process), and negative, NaN, text
or enormous values neither break a send nor keep a token longer than they should."""
import json

import pytest
from werkzeug import Response

from config.caches import caches_reset
from crm import services as crm_services
from dispatcher.senders import webhooks as services
from dispatcher.transport.result import HttpResult
from dispatcher.transport.sending import TOKEN_LIFETIME_MAX, OAuthClient, token_of, token_request
from tests.factories import webhook_create


@pytest.fixture(autouse=True)
def fresh_tokens():
    caches_reset()
    yield
    caches_reset()


class TokenEndpoint:
    """Hands out tok-1, tok-2, … with expires_in written into the JSON exactly as given (NaN included)."""

    def __init__(self, receiver, expires_in: str) -> None:
        self.fetches = 0
        self.expires_in = expires_in
        receiver.expect_request("/token", method="POST").respond_with_handler(self)

    def __call__(self, request) -> Response:
        self.fetches += 1
        body = f'{{"access_token": "tok-{self.fetches}", "token_type": "Bearer", "expires_in": {self.expires_in}}}'
        return Response(body, content_type="application/json")


@pytest.mark.parametrize(("expires_in", "fetches"), [
    ("3600", 1),
    ("1e308", 1),  # kept, but for a day at most (below)
    ("1" + "0" * 400, 1),  # an integer of 401 digits
    ('"3600"', 1),  # a number as a string, as some servers send it
    ('"soon"', 1),  # not a number: kept for the default 5 minutes
    ("NaN", 1),
    ('{"seconds": 60}', 1),
    ("null", 1),
    ("-5", 2),  # already expired: used once, fetched again for the next send
    ("0", 2),
])
def test_a_test_send_works_whatever_expires_in_says(receiver, owner, modules, expires_in, fetches):
    tokens = TokenEndpoint(receiver, expires_in)
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=[("deal", "${Deals.Deal Name}")],
                          auth_type="oauth2", oauth_token_url=receiver.url_for("/token"), oauth_client_id="crm-client",
                          oauth_client_secret="client-sekrit")
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    for _ in range(2):
        _, result, logged = services.webhook_send_test(webhook=hook, record=deal)
        assert (result.status_code, result.error_class) == (200, None), logged.status_reason
    assert tokens.fetches == fetches
    sent = [request.headers["Authorization"] for request, _ in receiver.log if request.path == "/hook"]
    assert sent == ["Bearer tok-1", f"Bearer tok-{fetches}"]


@pytest.mark.parametrize("expires_in", [1e308, float("inf"), 10**400, "1e999", 365 * 86400])
def test_a_token_is_kept_a_day_at_most(expires_in):
    request = token_request(OAuthClient("https://auth.example.com/token", "crm-client", "client-sekrit"))
    answer = HttpResult(200, 5, body=json.dumps({"access_token": "tok-1", "expires_in": expires_in}).encode())
    token, keep_seconds = token_of(answer, request)
    assert token == "tok-1" and 0 < keep_seconds <= TOKEN_LIFETIME_MAX == 24 * 3600
