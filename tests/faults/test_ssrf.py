"""Hostile URLs: each is refused, at save time where it can be known, and always at send time,
and the socket layer proves that no connection was even tried."""
import asyncio
import ipaddress
import json
import socket
from io import StringIO

import aiohttp
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from crm import services as crm_services
from crm.models import ApiScope
from dispatcher.transport import client as async_client
from dispatcher import delivery as delivery_engine
from dispatcher.transport.result import ErrorClass
from dispatcher.models import DeliveryStatus
from dispatcher.transport.request import RenderedRequest
from dispatcher.transport.addresses import address_display, validate_webhook_url
from tests.factories import webhook_create
from tests.faults.proxy import ConnectProxy

# (url, refused when saved too) — host names are only known to be bad once resolved, at send time.
HOSTILE = [
    ("http://127.0.0.1/", True), ("http://127.1/", True), ("http://2130706433/", True),
    ("http://0x7f000001/", True), ("http://0177.0.0.1/", True), ("http://0x7f.0.0.1/", True),
    ("http://localhost/", False), ("http://[::1]/", True), ("http://[0:0:0:0:0:0:0:1]/", True),
    ("http://[::ffff:127.0.0.1]/", True), ("http://[::ffff:7f00:1]/", True), ("http://0.0.0.0/", True),
    ("http://0/", True), ("http://[::]/", True), ("http://10.0.0.1/", True), ("http://0x0a000001/", True),
    ("http://172.16.0.1/", True), ("http://192.168.1.1/", True), ("http://169.254.169.254/latest/meta-data/", True),
    ("http://[::ffff:169.254.169.254]/", True), ("http://[fd00:ec2::254]/", True), ("http://100.64.0.1/", True),
    ("http://192.0.0.170/", True), ("http://198.18.0.1/", True), ("http://224.0.0.1/", True),
    ("http://255.255.255.255/", True), ("http://[fc00::1]/", True), ("http://[fe80::1]/", True),
    ("http://[ff02::1]/", True), ("http://[64:ff9b::7f00:1]/", True), ("http://[2002:7f00:1::]/", True),
    ("http://example.com@127.0.0.1/", True), ("http://127.0.0.1#@example.com/", True),
    ("http://example.com:22/", True), ("http://example.com:6379/", True), ("https://example.com:8443/", True),
    ("ftp://example.com/", True), ("file:///etc/passwd", True), ("gopher://127.0.0.1:6379/_INFO", True),
    ("http://127.0.0.1:80/", True), ("https://[::1]:443/", True),
    # IPv4-mapped, -compatible and -translated IPv6 spellings of inside addresses
    ("http://[::ffff:10.0.0.1]/", True), ("http://[::ffff:a9fe:a9fe]/", True), ("http://[0:0:0:0:0:ffff:7f00:1]/", True),
    ("http://[::127.0.0.1]/", True), ("http://[::ffff:0:7f00:1]/", True), ("http://[::ffff:192.168.1.1]:443/", True),
    ("http://[fe80::1%25eth0]/", True), ("http://[fd00::]/", True),
    # cloud metadata and other non-public ranges
    ("http://100.100.100.200/", True), ("http://[fd00:ec2::254]:80/latest/", True), ("http://192.0.2.1/", True),
    ("http://198.51.100.1/", True), ("http://203.0.113.5/", True), ("http://240.0.0.1/", True),
    ("http://192.88.99.1/", True),
    # odd spellings of loopback, userinfo tricks, ports
    ("http://127.0.0.1./", False), ("HTTP://LOCALHOST/", False), ("http://user:secret@127.0.0.1/", True),
    ("http://example.com%40127.0.0.1/", True), ("http://127.0.0.1:8080/", True), ("http://example.com:0/", True),
    ("http://example.com:65536/", True), ("https://10.1.1.1:443/", True),
    # credentials in the URL to a public host: refused by the client itself, not only when saved
    ("https://user:secret@example.com/", True), ("https://token@example.com/hook", True),
]
REFUSED = {ErrorClass.BLOCKED_ADDRESS, ErrorClass.BLOCKED_PORT, ErrorClass.INVALID_URL}


@pytest.fixture
def no_connections(monkeypatch, settings):
    """Record every connect() a socket makes in this test; with the guard working there is none."""
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    settings.WEBHOOK_ALLOW_ANY_PORT = False
    attempts: list = []

    def connect(sock, address):
        attempts.append(address)
        raise ConnectionRefusedError(111, "refused by the test")  # nothing leaves this machine in any case

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: connect(None, address))
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: attempts.append(address) or 111)
    return attempts


def test_the_corpus_is_large_enough():
    assert len({url for url, _ in HOSTILE}) == len(HOSTILE) >= 50


@pytest.mark.parametrize(("url", "refused_on_save"), HOSTILE)
def test_hostile_urls_are_refused_without_a_connection(request_send, no_connections, url, refused_on_save):
    result = request_send(RenderedRequest("POST", url, {"Content-Type": "application/json"}, b"{}"))
    assert result.status_code is None and result.error_class in REFUSED, (url, result)
    assert no_connections == []
    if refused_on_save:
        with pytest.raises(ValidationError):
            validate_webhook_url(url)


def test_credentials_in_a_url_are_refused_by_the_client_with_a_reason(request_send, no_connections):
    result = request_send(RenderedRequest("POST", "https://crm:hunter2@books.example.com/", {}, b"{}"))
    assert result.error_class == ErrorClass.INVALID_URL and "hunter2" not in result.error_message
    assert result.error_message == "A URL with a user name or password is not sent; use Basic authentication."
    assert no_connections == []


def resolving(monkeypatch, *answers: str) -> list[str]:
    """A host name whose DNS answer changes from call to call (rebinding): the answers in turn."""
    calls: list[str] = []

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.example":
            return real(host, port, *args, **kwargs)  # the pinned address itself, when connecting
        address = answers[min(len(calls), len(answers) - 1)]
        calls.append(address)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port or 80))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


@pytest.mark.parametrize("answers", [("127.0.0.1",), ("10.0.0.7",), ("169.254.169.254",), ("::ffff:127.0.0.1",),
                                     ("10.0.0.7", "93.184.216.34")])
def test_a_name_that_resolves_inside_is_refused_without_a_connection(request_send, no_connections, monkeypatch, answers):
    calls = resolving(monkeypatch, *answers)
    result = request_send(RenderedRequest("POST", "http://rebind.example/hook", {}, b"{}"))
    assert result.error_class == ErrorClass.BLOCKED_ADDRESS and no_connections == []
    assert len(calls) == 1  # resolved once, and that answer decided


def test_a_rebinding_name_is_connected_to_at_the_address_that_was_checked(request_send, no_connections, monkeypatch):
    """Public at the check, private a moment later: the connection goes to the checked (public) address."""
    calls = resolving(monkeypatch, "93.184.216.34", "127.0.0.1")
    result = request_send(RenderedRequest("POST", "http://rebind.example/hook", {}, b"{}"))
    assert result.error_class == ErrorClass.CONNECTION_ERROR  # the test refuses every connection
    assert {address[0] for address in no_connections} == {"93.184.216.34"}
    assert calls == ["93.184.216.34"]


# --- host names that normalise to an address (issue 25) ------------------------------------------------
# Each is an inside address spelled with Unicode: the URL library (yarl, aiohttp's own) turns the host into
# the ASCII address it reads as (IDNA), so a check of the spelling alone lets it through.
UNICODE_SPELLINGS = [
    ("http://１２７.０.０.１/", "127.0.0.1"),  # full-width digits
    ("http://127。0。0。1/", "127.0.0.1"),  # ideographic full stops
    ("http://127．0．0．1/", "127.0.0.1"),  # full-width full stops
    ("http://127｡0｡0｡1/", "127.0.0.1"),  # half-width ideographic full stops
    ("http://①②⑦.⓪.⓪.①/", "127.0.0.1"),  # circled digits
    ("http://𝟏𝟐𝟕.𝟎.𝟎.𝟏/", "127.0.0.1"),  # mathematical bold digits
    ("http://₁₂₇.0.0.1/", "127.0.0.1"),  # subscript digits
    ("http://¹²⁷.0.0.1/", "127.0.0.1"),  # superscript digits
    ("http://⑩.⓪.⓪.①/", "10.0.0.1"),  # a circled ten
    ("http://１０.０.０.１/hook", "10.0.0.1"),
    ("http://１６９.２５４.１６９.２５４/latest/meta-data/", "169.254.169.254"),
    ("http://169．254．169．254．/latest/", "169.254.169.254"),  # and a trailing full-width stop
    ("http://２１３０７０６４３３/", "127.0.0.1"),  # the decimal form of issue 8, full-width
    ("http://０ｘ７ｆ０００００１/", "127.0.0.1"),  # the hexadecimal form
    ("http://０x7f.1/", "127.0.0.1"),  # the short hexadecimal form
    ("http://[::ｆｆｆｆ:127.0.0.1]/", "::ffff:127.0.0.1"),  # IPv4-mapped IPv6 with full-width hex
    ("http://[::１]/", "::1"),
    ("https://１９２.１６８.１.１:443/", "192.168.1.1"),
    ("http://１００.６４.０.１/", "100.64.0.1"),  # carrier-grade NAT
]
UNICODE_URLS = [url for url, _ in UNICODE_SPELLINGS]


@pytest.mark.parametrize("url", UNICODE_URLS)
def test_unicode_spellings_of_inside_addresses_are_refused_by_the_client_without_a_socket(request_send,
                                                                                          no_connections, url):
    result = request_send(RenderedRequest("POST", url, {"Content-Type": "application/json"}, b"{}"))
    assert result.status_code is None and result.error_class == ErrorClass.BLOCKED_ADDRESS, (url, result)
    assert no_connections == []


@pytest.mark.parametrize(("url", "address"), UNICODE_SPELLINGS)
def test_unicode_spellings_are_refused_when_saved_naming_the_address_they_read_as(settings, url, address):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    with pytest.raises(ValidationError) as error:
        validate_webhook_url(url)
    message = error.value.messages[0]
    assert "private, loopback, link-local or reserved" in message
    assert address_display(ipaddress.ip_address(address)) in message


def test_the_url_is_stored_and_shown_as_the_client_will_use_it(modules, admin_client):
    hook = webhook_create(module=modules["Deals"], url="HTTPS://ＢＯＯＫＳ．Example.com:443/hook?a=1")
    hook.refresh_from_db()
    assert hook.url == "https://books.example.com/hook?a=1"
    page = admin_client.get(f"/admin/dispatcher/webhook/{hook.pk}/change/").content.decode()
    assert 'value="https://books.example.com/hook?a=1"' in page and "ＢＯＯＫＳ" not in page


def test_the_socket_guard_refuses_a_forbidden_peer_whatever_the_url_was(no_connections):
    """The connect-time check on its own: a request that skips every URL check (an address literal never
    reaches the resolver) still opens no connection to an inside address."""

    async def send_bypassing_the_url_checks(url: str):
        async with async_client.session_create(max_in_flight=2) as session:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)):
                pass

    for url in ("http://127.0.0.1/", "http://[::1]/", "http://169.254.169.254/", "http://１０.０.０.１/"):
        with pytest.raises(aiohttp.ClientConnectorError) as error:
            asyncio.run(send_bypassing_the_url_checks(url))
        assert isinstance(error.value.__cause__, async_client.BlockedAddress), url
    with pytest.raises(async_client.BlockedAddress):
        async_client.guarded_socket((socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 80)))
    assert no_connections == []


def _unicode_channel_body(port: int) -> dict:
    return {"events": ["Deals.create"], "notify_url": f"http://１２７.０.０.１:{port}/latest/meta-data/"}


def test_a_channel_to_a_unicode_inside_address_is_refused_by_the_api(client, owner, settings, no_connections):
    from dispatcher.models import Channel

    settings.WEBHOOK_ALLOW_ANY_PORT = True  # only the address stands in the way
    key = crm_services.api_key_create(user=owner, name="Integration")[1]
    response = client.post("/api/v1/channels/", data=json.dumps(_unicode_channel_body(8080)),
                           content_type="application/json", headers={"X-API-Key": key})
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    assert "127.0.0.1" in json.dumps(response.json()) and not Channel.objects.exists()
    assert no_connections == []


@pytest.mark.parametrize("through", ["api", "cli"])
def test_config_import_refuses_a_unicode_inside_address(client, owner, modules, settings, tmp_path, through,
                                                        no_connections):
    from dispatcher.models import Webhook
    from workflows.config_io import config_export_all

    webhook_create(module=modules["Deals"], name="Books", url="https://books.example.com/hook")
    exported = config_export_all(organization=owner.organization)
    exported["webhooks"][0]["url"] = "http://１６９.２５４.１６９.２５４/latest/meta-data/"
    if through == "api":
        key = crm_services.api_key_create(user=owner, name="CI", scopes=[ApiScope.CONFIG])[1]
        response = client.post("/api/v1/config/", data=json.dumps(exported), content_type="application/json",
                               headers={"X-API-Key": key})
        assert response.status_code == 422 and "169.254.169.254" in "\n".join(response.json()["problems"])
    else:
        path = tmp_path / "config.json"
        path.write_text(json.dumps(exported))
        with pytest.raises(CommandError, match="169.254.169.254"):
            call_command("import_config", str(path), stdout=StringIO())
    assert Webhook.objects.get(name="Books").url == "https://books.example.com/hook"
    assert no_connections == []


def test_the_engine_refuses_a_stored_unicode_address_without_a_socket(modules, owner, no_connections):
    """A row that skipped validation (an older version, a raw update): the send-time checks still hold."""
    from dispatcher.models import Webhook

    hook = webhook_create(module=modules["Deals"], url="https://books.example.com/hook", entity=[("d", "x")])
    Webhook.objects.filter(pk=hook.pk).update(url="http://１６９.２５４.１６９.２５４/latest/meta-data/",
                                              modified_at=timezone.now())
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [(pk, token)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=10)
    delivery = delivery_engine.delivery_attempt(delivery_id=pk, token=token)
    assert (delivery.status, delivery.last_error_class) == (DeliveryStatus.FAILED, "url_refused")
    assert "169.254.169.254" in delivery.status_reason
    assert no_connections == []


def test_an_oauth_token_url_with_a_unicode_inside_address_is_never_called(modules, owner, no_connections):
    from dispatcher.models import AuthType, Webhook

    hook = webhook_create(module=modules["Deals"], url="https://books.example.com/hook", entity=[("d", "x")],
                          auth_type=AuthType.OAUTH2, oauth_token_url="https://auth.example.com/token",
                          oauth_client_id="crm", oauth_client_secret="s3cret-client")
    Webhook.objects.filter(pk=hook.pk).update(oauth_token_url="http://①②⑦.⓪.⓪.①/token", modified_at=timezone.now())
    deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
    delivery_engine.delivery_enqueue(webhook=hook, record=deal)
    [(pk, token)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=10)
    delivery = delivery_engine.delivery_attempt(delivery_id=pk, token=token)
    assert delivery.last_error_class == "token_error" and "127.0.0.1" in delivery.status_reason
    assert no_connections == []


def test_the_egress_proxy_is_never_asked_for_an_inside_address(settings, modules, owner):
    """The proxy's own address is the operator's; the CONNECT target is checked like any socket's peer."""
    from dispatcher.models import Webhook

    proxy = ConnectProxy()
    settings.WEBHOOK_EGRESS_PROXY = proxy.url
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    try:
        hook = webhook_create(module=modules["Deals"], url="https://books.example.com/hook", entity=[("d", "x")])
        Webhook.objects.filter(pk=hook.pk).update(url="http://１６９.２５４.１６９.２５４/", modified_at=timezone.now())
        deal = crm_services.record_create(module=modules["Deals"], owner=owner, values={"Deal_Name": "Website"})
        delivery_engine.delivery_enqueue(webhook=hook, record=deal)
        [(pk, token)] = delivery_engine.deliveries_claim(now=timezone.now(), limit=10)
        delivery = delivery_engine.delivery_attempt(delivery_id=pk, token=token)
        assert delivery.last_error_class == "url_refused"

        async def tunnel_to(address: str):
            return await async_client.egress_proxy().tunnel(asyncio.get_running_loop(), address, 80)

        for address in ("169.254.169.254", "10.0.0.1", "::1"):
            with pytest.raises(async_client.BlockedAddress):
                asyncio.run(tunnel_to(address))
        assert proxy.asked == []
    finally:
        proxy.close()


def test_a_name_spelling_an_inside_address_is_refused_before_the_proxy_is_asked(request_send, settings,
                                                                                no_connections):
    """Through the proxy an address literal travels as such a name (async_client.LITERAL_SUFFIX); typed by
    someone, it is judged as the address it spells."""
    proxy = ConnectProxy()
    settings.WEBHOOK_EGRESS_PROXY = proxy.url
    try:
        for host in ("7f000001.address.invalid", "a9fea9fe.address.invalid", f"{'0' * 31}1.address.invalid"):
            result = request_send(RenderedRequest("POST", f"http://{host}/hook", {}, b"{}"))
            assert result.status_code is None and result.error_class == ErrorClass.BLOCKED_ADDRESS, (host, result)
        assert proxy.asked == [] and no_connections == []
    finally:
        proxy.close()


def test_through_the_egress_proxy_no_connection_is_opened_directly(settings, no_connections):
    """A request that skips the client's own steps (an address literal aiohttp would connect to itself) finds
    no tunnel waiting, and no socket is made for it."""
    proxy = ConnectProxy()
    settings.WEBHOOK_EGRESS_PROXY = proxy.url

    async def send_bypassing_the_client(url: str):
        async with async_client.session_create(max_in_flight=2) as session:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)):
                pass

    try:
        with pytest.raises(aiohttp.ClientConnectorError) as error:
            asyncio.run(send_bypassing_the_client("http://93.184.216.34/"))
        assert isinstance(error.value.__cause__, async_client.NotThroughTheProxy)
        assert proxy.asked == [] and no_connections == []
    finally:
        proxy.close()


def test_processes_refuse_to_start_if_the_http_library_stops_calling_the_socket_guard(monkeypatch, no_connections):
    from dispatcher.checks import guard_check, insecure_start_reason

    assert guard_check() == [] and no_connections == []
    original = aiohttp.TCPConnector.__init__

    def ignoring_socket_factory(self, *args, socket_factory=None, **kwargs):  # as a changed aiohttp might
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.TCPConnector, "__init__", ignoring_socket_factory)
    [error] = guard_check()
    assert error.id == "dispatcher.E004" and "192.0.2.1" in error.msg
    assert "The worker refuses to start: The outbound guard is not in effect" in insecure_start_reason("worker")
    assert {address[0] for address in no_connections} == {"192.0.2.1"}  # only the probes, refused by this test


def test_processes_with_a_proxy_refuse_to_start_if_the_http_library_would_not_use_the_tunnel(monkeypatch, settings,
                                                                                            no_connections):
    """The egress path relies on aiohttp connecting through the socket socket_factory returns for the
    resolver's answer; its probe runs in memory, so a healthy start opens no connection at all."""
    from dispatcher.checks import guard_check, insecure_start_reason

    settings.WEBHOOK_EGRESS_PROXY = "http://egress.internal:3128"
    assert guard_check() == [] and no_connections == []
    original = aiohttp.TCPConnector.__init__

    def ignoring_socket_factory(self, *args, socket_factory=None, **kwargs):  # as a changed aiohttp might
        original(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.TCPConnector, "__init__", ignoring_socket_factory)
    errors = guard_check()
    assert [error.id for error in errors] == ["dispatcher.E004", "dispatcher.E004"]
    assert errors[1].msg.startswith("The egress proxy cannot be used: a request through a tunnel failed")
    assert "The egress proxy cannot be used" in insecure_start_reason("worker")
    # Only the probes were tried, and neither could leave this machine (both refused by this test).
    assert {address[0] for address in no_connections} == {"192.0.2.1", "0.0.0.0"}
