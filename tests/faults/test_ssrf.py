"""Hostile URLs: each is refused, at save time where it can be known, and always at send time,
and the socket layer proves that no connection was even tried."""
import socket

import pytest
from django.core.exceptions import ValidationError

from dispatcher.http_client import ErrorClass
from dispatcher.rendering.request import RenderedRequest
from dispatcher.validators import validate_webhook_url

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
