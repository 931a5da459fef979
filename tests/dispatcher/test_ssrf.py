"""Hostile URLs: each is refused, at save time where it can be known, and always at send time,
and the socket layer proves that no connection was even tried."""
import socket

import pytest
from django.core.exceptions import ValidationError

from dispatcher.http_client import ErrorClass, request_send
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
]
REFUSED = {ErrorClass.BLOCKED_ADDRESS, ErrorClass.BLOCKED_PORT, ErrorClass.INVALID_URL}


@pytest.fixture
def no_connections(monkeypatch, settings):
    """Record every connect() a socket makes in this test; with the guard working there is none."""
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    settings.WEBHOOK_ALLOW_ANY_PORT = False
    attempts: list = []
    real_connect = socket.socket.connect

    def connect(sock, address):
        attempts.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda sock, address: attempts.append(address) or 111)
    return attempts


def test_the_corpus_is_large_enough():
    assert len(HOSTILE) >= 30


@pytest.mark.parametrize(("url", "refused_on_save"), HOSTILE)
def test_hostile_urls_are_refused_without_a_connection(no_connections, url, refused_on_save):
    result = request_send(RenderedRequest("POST", url, {"Content-Type": "application/json"}, b"{}"))
    assert result.status_code is None and result.error_class in REFUSED, (url, result)
    assert no_connections == []
    if refused_on_save:
        with pytest.raises(ValidationError):
            validate_webhook_url(url)
