"""What receivers need, over real sockets: signatures that survive a secret rotation (checked with the
independent standardwebhooks package), custom headers, bearer tokens, OAuth 2.0 client credentials
against a local token endpoint, mutual TLS against a local server that demands a client certificate,
and an egress proxy that records what it is asked to CONNECT to."""
import base64
import datetime
import http.server
import json
import ssl
import threading

import pytest
import trustme
from django.core.exceptions import ValidationError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from standardwebhooks.webhooks import WebhookVerificationError
from werkzeug import Response

from crm import services as crm_services
from dispatcher import delivery as delivery_engine
from dispatcher.senders import webhooks as services
from dispatcher.senders import secret_rotation
from dispatcher.models import Delivery, DeliveryStatus, RetryPolicy, Webhook
from dispatcher.transport.request import MASK
from config.caches import caches_reset
from tests.factories import webhook_create
from tests.faults.proxy import ConnectProxy

ENTITY = [("deal", "${Deals.Deal Name}")]


@pytest.fixture(autouse=True)
def fresh_tokens():
    caches_reset()
    yield
    caches_reset()


@pytest.fixture
def deal(owner, modules):
    return crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})


def run_due(now=None) -> list[Delivery]:
    claimed = delivery_engine.deliveries_claim(now=now or timezone.now(), limit=100)
    return [delivery_engine.delivery_attempt(delivery_id=pk, token=token) for pk, token in claimed]


def deliver(hook, deal) -> Delivery:
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [delivery] = run_due()
    return delivery


def verifies(secret: str, request) -> bool:
    headers = {name: request.headers[name] for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    try:
        StandardWebhook(secret).verify(request.get_data(), headers)
    except WebhookVerificationError:
        return False
    return True


# --- signing-secret rotation ---------------------------------------------------------------------------
def test_after_a_rotation_receivers_with_either_secret_verify_until_the_grace_period_ends(receiver, modules, deal,
                                                                                            settings):
    settings.WEBHOOK_SECRET_GRACE_HOURS = 24
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY)
    old = hook.signing_secret
    expires = secret_rotation.signing_secret_rotate(sender=hook)
    new = Webhook.objects.get(pk=hook.pk).signing_secret
    assert new != old and expires > timezone.now() + datetime.timedelta(hours=23)
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
    request = receiver.log[-1][0]
    assert len(request.headers["webhook-signature"].split()) == 2
    assert verifies(old, request) and verifies(new, request)  # both receivers accept it
    assert not verifies("whsec_" + base64.b64encode(b"x" * 24).decode(), request)
    # The grace period is over: only the new secret signs.
    Webhook.objects.filter(pk=hook.pk).update(previous_secret_expires_at=timezone.now() - datetime.timedelta(seconds=1),
                                              modified_at=timezone.now())
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
    request = receiver.log[-1][0]
    assert len(request.headers["webhook-signature"].split()) == 1
    assert verifies(new, request) and not verifies(old, request)
    assert secret_rotation.previous_secrets_purge(now=timezone.now()) == 1
    assert Webhook.objects.get(pk=hook.pk).previous_signing_secret == ""


def test_the_admin_shows_both_secrets_and_expires_the_old_one_on_request(admin_client, receiver, modules, deal):
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY)
    old = hook.signing_secret
    changelist = "/admin/dispatcher/webhook/"
    response = admin_client.post(changelist, {"action": "rotate_signing_secret", "_selected_action": [hook.pk]},
                                 follow=True)
    assert "the old secrets keep signing until" in response.content.decode()
    hook.refresh_from_db()
    page = admin_client.get(f"{changelist}{hook.pk}/change/").content.decode()
    assert hook.signing_secret in page and old in page and "still signing until" in page
    response = admin_client.post(changelist, {"action": "expire_previous_signing_secret",
                                              "_selected_action": [hook.pk]}, follow=True)
    assert "no longer signs deliveries" in response.content.decode()
    assert old not in admin_client.get(f"{changelist}{hook.pk}/change/").content.decode()
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
    assert not verifies(old, receiver.log[-1][0]) and verifies(hook.signing_secret, receiver.log[-1][0])


def test_a_channel_rotates_through_the_api_and_signs_with_both_secrets(client, receiver, owner, modules):
    headers = {"HTTP_X_API_KEY": crm_services.api_key_create(user=owner, name="Integration")[1]}
    receiver.expect_request("/notify").respond_with_data("ok")
    created = client.post("/api/v1/channels/", json.dumps({"events": ["Deals.create"],
                                                             "notify_url": receiver.url_for("/notify")}),
                          content_type="application/json", **headers).json()["data"]
    old = created["signing_secret"]
    rotated = client.post(f"/api/v1/channels/{created['id']}/rotate-secret/", content_type="application/json",
                          **headers).json()["data"]
    assert rotated["signing_secret"] != old and rotated["previous_secret_expiry_time"]
    listed = client.get(f"/api/v1/channels/{created['id']}/", **headers).json()["data"]
    assert "signing_secret" not in listed and listed["previous_secret_expiry_time"] == rotated[
        "previous_secret_expiry_time"]
    crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    run_due()
    request = receiver.log[-1][0]
    assert verifies(old, request) and verifies(rotated["signing_secret"], request)
    response = client.delete(f"/api/v1/channels/{created['id']}/previous-secret/", **headers)
    assert response.status_code == 200 and response.json()["data"]["previous_secret_expiry_time"] is None
    again = client.delete(f"/api/v1/channels/{created['id']}/previous-secret/", **headers)
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


# --- custom headers and bearer tokens ------------------------------------------------------------------
def test_custom_headers_are_sent_with_merge_fields_and_secret_values_are_masked(receiver, modules, deal):
    receiver.expect_request("/hook").respond_with_handler(
        lambda request: Response(json.dumps({"echo": request.headers.get("X-Api-Key")}), content_type="application/json"))
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY, headers=[
        ("X-Api-Key", "key-sekrit-42", True), ("X-Deal", "deal ${Deals.Deal Name}", False)])
    delivery = deliver(hook, deal)
    request = receiver.log[-1][0]
    assert request.headers["X-Api-Key"] == "key-sekrit-42" and request.headers["X-Deal"] == "deal Website"
    assert "key-sekrit-42" not in delivery.request_display and f"X-Api-Key: {MASK}" in delivery.request_display
    assert "X-Deal: deal Website" in delivery.request_display
    assert "key-sekrit-42" not in delivery.attempts.get().response_body  # the receiver echoed it
    preview = services.webhook_preview(webhook=hook, record=deal).as_text()
    assert "key-sekrit-42" not in preview and f"X-Api-Key: {MASK}" in preview


def test_a_record_value_cannot_add_a_header(receiver, modules, owner):
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY,
                          headers=[("X-Deal", "${Deals.Deal Name}", False)])
    deal = crm_services.record_create(module=modules["Deals"], owner=owner,
                                      values={"Deal_Name": "Evil\r\nX-Injected: yes"})
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
    request = receiver.log[-1][0]
    assert "X-Injected" not in request.headers and request.headers["X-Deal"] == "Evil  X-Injected: yes"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("Host", "evil.example", "The header Host is set by the connection"),
    ("Content-Length", "1", "The header Content-Length is set by the connection"),
    ("Connection", "close", "The header Connection is set by the connection"),
    ("Transfer-Encoding", "chunked", "The header Transfer-Encoding is set"),
    ("webhook-signature", "v1,forged", "The header webhook-signature is set"),
    ("X-Ok", "one\r\nX-Injected: yes", "cannot contain line breaks"),
    ("Bad Name", "x", "is not a valid header name"),
])
def test_headers_that_would_break_the_request_are_refused_with_a_reason(modules, name, value, message):
    with pytest.raises(ValidationError) as error:
        webhook_create(module=modules["Deals"], entity=ENTITY, headers=[(name, value, False)])
    assert any(message in line for line in error.value.message_dict["headers"])


def test_an_authorization_header_beside_the_webhooks_own_authorization_is_refused(modules):
    with pytest.raises(ValidationError) as error:
        webhook_create(module=modules["Deals"], entity=ENTITY, auth_type="bearer", auth_token="tok",
                       headers=[("Authorization", "Bearer other", True)])
    assert "comes from the webhook's authorization" in error.value.message_dict["headers"][0]


def test_a_bearer_token_is_sent_and_masked(receiver, modules, deal):
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY,
                          auth_type="bearer", auth_token="tok-bearer-77")
    delivery = deliver(hook, deal)
    assert receiver.log[-1][0].headers["Authorization"] == "Bearer tok-bearer-77"
    assert "tok-bearer-77" not in delivery.request_display and f"Authorization: Bearer {MASK}" in delivery.request_display
    with pytest.raises(ValidationError, match="Enter the bearer token"):
        webhook_create(module=modules["Deals"], entity=ENTITY, name="No token", auth_type="bearer")


# --- OAuth 2.0 client credentials ----------------------------------------------------------------------
class TokenEndpoint:
    """A token endpoint on the receiver's server: hands out tok-1, tok-2, … and records each request."""

    def __init__(self, receiver, *, status: int = 200, answer: dict | None = None) -> None:
        self.requests, self.status, self.answer = [], status, answer
        receiver.expect_request("/token", method="POST").respond_with_handler(self)

    def __call__(self, request):
        self.requests.append({"authorization": request.headers.get("Authorization"), "form": dict(request.form)})
        answer = self.answer or {"access_token": f"tok-{len(self.requests)}", "token_type": "Bearer",
                                 "expires_in": 3600}
        return Response(json.dumps(answer), status=self.status, content_type="application/json")


def oauth_hook(modules, receiver, **extra) -> Webhook:
    return webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY, auth_type="oauth2",
                          oauth_token_url=receiver.url_for("/token"), oauth_client_id="crm-client",
                          oauth_client_secret="client-sekrit", oauth_scope="hooks.write", **extra)


def test_an_oauth_token_is_fetched_once_kept_and_sent_as_bearer(receiver, modules, deal):
    tokens = TokenEndpoint(receiver)
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = oauth_hook(modules, receiver)
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
    delivery = deliver(hook, deal)
    assert delivery.status == DeliveryStatus.SUCCESS
    assert len(tokens.requests) == 1  # kept until shortly before it expires
    [fetch] = tokens.requests
    assert fetch["authorization"] == "Basic " + base64.b64encode(b"crm-client:client-sekrit").decode()
    assert fetch["form"] == {"grant_type": "client_credentials", "scope": "hooks.write"}
    hook_requests = [request for request, _ in receiver.log if request.path == "/hook"]
    assert [r.headers["Authorization"] for r in hook_requests] == ["Bearer tok-1", "Bearer tok-1"]
    assert "tok-1" not in delivery.request_display and "client-sekrit" not in delivery.request_display
    preview = services.webhook_preview(webhook=hook, record=deal).as_text()
    assert f"Authorization: Bearer {MASK}" in preview


def test_a_401_to_a_kept_token_fetches_a_new_one_once(receiver, modules, deal):
    tokens = TokenEndpoint(receiver)
    answers = iter([Response("ok"), Response("expired", status=401), Response("ok")])
    receiver.expect_request("/hook").respond_with_handler(lambda request: next(answers))
    hook = oauth_hook(modules, receiver)
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS  # tok-1 fetched and kept
    delivery = deliver(hook, deal)  # tok-1 refused: tok-2 fetched, the request sent once more
    assert delivery.status == DeliveryStatus.SUCCESS and delivery.attempts.count() == 1
    assert len(tokens.requests) == 2
    assert [r.headers["Authorization"] for r, _ in receiver.log if r.path == "/hook"] == [
        "Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_a_token_endpoint_that_refuses_the_client_fails_the_delivery_without_sending_it(receiver, modules, deal):
    TokenEndpoint(receiver, status=401, answer={"error": "invalid_client", "error_description": "Unknown client"})
    receiver.expect_request("/hook").respond_with_data("ok")
    delivery = deliver(oauth_hook(modules, receiver), deal)
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.FAILED, "token_error")
    assert "The token URL answered 401: invalid_client Unknown client" in delivery.status_reason
    assert delivery.status_reason.startswith("OAuth token error:")
    assert not [r for r, _ in receiver.log if r.path == "/hook"]


def test_a_token_endpoint_that_is_down_is_retried(receiver, modules, deal):
    TokenEndpoint(receiver, status=503, answer={"error": "temporarily_unavailable"})
    receiver.expect_request("/hook").respond_with_data("ok")
    delivery = deliver(oauth_hook(modules, receiver, retry_policy=RetryPolicy.objects.get(code="vtiger")), deal)
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.RETRY, "token_error")


def test_the_token_url_obeys_the_address_rules(receiver, modules, deal, settings):
    TokenEndpoint(receiver)
    hook = oauth_hook(modules, receiver)
    settings.WEBHOOK_ALLOW_LOOPBACK = False  # the token URL is on 127.0.0.1
    hook.url = "https://books.example.com/hook"  # the webhook's own URL would be fine
    Webhook.objects.filter(pk=hook.pk).update(url=hook.url, modified_at=timezone.now())
    delivery = deliver(hook, deal)
    assert delivery.last_error_class == "token_error" and "not a public address" in delivery.status_reason
    assert delivery.status == DeliveryStatus.FAILED  # a refused address does not heal: not retried
    assert not receiver.log


# --- mutual TLS ------------------------------------------------------------------------------------------
@pytest.fixture
def tls_server(settings):
    """An HTTPS server on 127.0.0.1 with a certificate of a private CA that requires a client certificate of
    that CA; it answers with the client certificate's common name."""
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, True  # this test's server only
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            subject = dict(pair[0] for pair in self.connection.getpeercert()["subject"])
            body = json.dumps({"client": subject.get("commonName", "")}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = ca.issue_cert("crm-webhooks.example", common_name="crm-webhooks")
    yield {"url": f"https://127.0.0.1:{server.server_address[1]}/hook", "ca": ca.cert_pem.bytes().decode(),
           "certificate": "".join(blob.bytes().decode() for blob in client.cert_chain_pems),
           "key": client.private_key_pem.bytes().decode()}
    server.shutdown()
    server.server_close()


def test_mutual_tls_presents_the_webhooks_client_certificate(tls_server, modules, deal):
    hook = webhook_create(module=modules["Deals"], url=tls_server["url"], entity=ENTITY,
                          tls_client_certificate=tls_server["certificate"], tls_client_key=tls_server["key"],
                          tls_ca_bundle=tls_server["ca"])
    delivery = deliver(hook, deal)
    assert delivery.status == DeliveryStatus.SUCCESS, delivery.status_reason
    assert json.loads(delivery.attempts.get().response_body) == {"client": "crm-webhooks"}
    assert "PRIVATE KEY" not in delivery.request_display
    _, result, _ = services.webhook_send_test(webhook=hook, record=deal)  # the one-off path too
    assert result.status_code == 200


def test_without_the_client_certificate_or_the_ca_the_tls_handshake_fails(tls_server, modules, deal):
    no_certificate = webhook_create(module=modules["Deals"], url=tls_server["url"], entity=ENTITY, name="No cert",
                                    tls_ca_bundle=tls_server["ca"])
    assert deliver(no_certificate, deal).last_error_class in ("tls_error", "connection_error")
    unknown_ca = webhook_create(module=modules["Deals"], url=tls_server["url"], entity=ENTITY, name="System CAs",
                                tls_client_certificate=tls_server["certificate"], tls_client_key=tls_server["key"])
    assert deliver(unknown_ca, deal).last_error_class == "tls_error"


def test_a_client_key_that_does_not_load_is_refused_when_saving(tls_server, modules):
    with pytest.raises(ValidationError) as error:
        webhook_create(module=modules["Deals"], entity=ENTITY, tls_client_certificate=tls_server["certificate"],
                       tls_client_key="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    assert "do not load" in error.value.message_dict["tls_client_key"][0]
    with pytest.raises(ValidationError) as error:
        webhook_create(module=modules["Deals"], entity=ENTITY, name="Only a cert",
                       tls_client_certificate=tls_server["certificate"])
    assert "Give both" in error.value.message_dict["tls_client_key"][0]


# --- egress proxy -----------------------------------------------------------------------------------------
@pytest.fixture
def proxy(settings):
    made = []

    def start(**options) -> ConnectProxy:
        made.append(ConnectProxy(**options))
        settings.WEBHOOK_EGRESS_PROXY = made[-1].url
        return made[-1]

    yield start
    for each in made:
        each.close()


def test_all_webhook_traffic_goes_through_the_egress_proxy_to_the_checked_address(receiver, proxy, modules, deal):
    tunnel = proxy()
    receiver.expect_request("/hook").respond_with_data("ok")
    port = receiver.port
    hook = webhook_create(module=modules["Deals"], url=f"http://localhost:{port}/hook", entity=ENTITY)
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
    # The proxy was asked for the address the guarded resolver checked, never for the name.
    assert tunnel.asked and all(line in (f"CONNECT 127.0.0.1:{port} HTTP/1.1", f"CONNECT [::1]:{port} HTTP/1.1")
                                for line in tunnel.asked)
    assert receiver.log[-1][0].headers["Host"] == f"localhost:{port}"
    _, result, _ = services.webhook_send_test(webhook=hook, record=deal)  # test sends too
    assert result.status_code == 200 and len(tunnel.asked) >= 2


def test_an_address_in_the_url_is_tunnelled_to_and_sent_as_the_host(receiver, proxy, modules, deal):
    tunnel = proxy()
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=f"http://127.0.0.1:{receiver.port}/hook", entity=ENTITY)
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
    assert tunnel.asked == [f"CONNECT 127.0.0.1:{receiver.port} HTTP/1.1"]
    assert receiver.log[-1][0].headers["Host"] == f"127.0.0.1:{receiver.port}"


def test_tls_runs_end_to_end_through_the_proxy_with_the_client_certificate(tls_server, proxy, modules, deal):
    tunnel = proxy()
    port = tls_server["url"].split(":")[2].split("/")[0]
    hook = webhook_create(module=modules["Deals"], url=tls_server["url"], entity=ENTITY,
                          tls_client_certificate=tls_server["certificate"], tls_client_key=tls_server["key"],
                          tls_ca_bundle=tls_server["ca"])
    delivery = deliver(hook, deal)
    assert delivery.status == DeliveryStatus.SUCCESS, delivery.status_reason
    assert json.loads(delivery.attempts.get().response_body) == {"client": "crm-webhooks"}
    assert tunnel.asked == [f"CONNECT 127.0.0.1:{port} HTTP/1.1"]


def test_the_address_rules_apply_before_the_proxy_is_asked(receiver, proxy, modules, deal, settings):
    tunnel = proxy()
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=f"http://localhost:{receiver.port}/hook", entity=ENTITY)
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    delivery = deliver(hook, deal)
    assert delivery.last_error_class == "url_refused" and tunnel.asked == [] and not receiver.log


def test_a_proxy_that_refuses_the_tunnel_is_a_connection_error_with_its_answer(receiver, proxy, modules, deal):
    proxy(refuse=True)
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY)
    delivery = deliver(hook, deal)
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.RETRY, "connection_error")
    assert "The egress proxy refused the tunnel (HTTP/1.1 403 Forbidden)" in delivery.status_reason
    assert not receiver.log


def test_environment_proxies_stay_ignored(receiver, modules, deal, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    receiver.expect_request("/hook").respond_with_data("ok")
    hook = webhook_create(module=modules["Deals"], url=receiver.url_for("/hook"), entity=ENTITY)
    assert deliver(hook, deal).status == DeliveryStatus.SUCCESS
