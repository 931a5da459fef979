"""The guarded client against real sockets: what it sends, what it refuses, how it fails."""
import json
import socket
import threading

import pytest
from werkzeug import Response

from dispatcher.transport.result import ErrorClass
from dispatcher.transport.request import RenderedRequest


def post(url: str, body: bytes = b'{"a": 1}') -> RenderedRequest:
    return RenderedRequest("POST", url, {"Content-Type": "application/json", "webhook-id": "msg_1"}, body)


def test_a_success_returns_status_headers_and_body(request_send, receiver):
    receiver.expect_oneshot_request("/hook", method="POST", json={"a": 1}, headers={"webhook-id": "msg_1"}) \
        .respond_with_json({"id": "INV-7"}, status=201, headers={"X-Request-Id": "r1"})
    result = request_send(post(receiver.url_for("/hook")))
    assert (result.status_code, result.error_class, result.is_success) == (201, None, True)
    assert json.loads(result.body) == {"id": "INV-7"}
    assert result.headers["X-Request-Id"] == "r1"
    receiver.check_assertions()


def test_a_server_error_is_an_answer_not_an_exception(request_send, receiver):
    receiver.expect_oneshot_request("/hook").respond_with_data("boom", status=503)
    result = request_send(post(receiver.url_for("/hook")))
    assert (result.status_code, result.body, result.is_success, result.error_class) == (503, b"boom", False, None)


def test_redirects_are_not_followed(request_send, receiver):
    receiver.expect_request("/hook").respond_with_data(
        "", status=302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    result = request_send(post(receiver.url_for("/hook")))
    assert result.status_code == 302 and not result.is_success
    assert result.headers["Location"] == "http://169.254.169.254/latest/meta-data/"
    assert len(receiver.log) == 1


def test_loopback_is_refused_unless_allowed_and_nothing_is_sent(request_send, receiver, settings):
    receiver.expect_request("/hook").respond_with_data("ok")
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    for url in (receiver.url_for("/hook"), receiver.url_for("/hook").replace("127.0.0.1", "localhost")):
        result = request_send(post(url))
        assert (result.status_code, result.error_class) == (None, ErrorClass.BLOCKED_ADDRESS), url
    assert receiver.log == []


def test_ports_other_than_80_and_443_are_refused_before_connecting(request_send, receiver, settings):
    receiver.expect_request("/hook").respond_with_data("ok")
    settings.WEBHOOK_ALLOW_ANY_PORT = False
    result = request_send(post(receiver.url_for("/hook")))
    assert result.error_class == ErrorClass.BLOCKED_PORT
    assert result.error_message == f"Port {receiver.port} is not allowed."
    assert receiver.log == []


@pytest.mark.parametrize("url", [
    "http://10.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://0.0.0.0/",
    "http://[::ffff:127.0.0.1]/", "http://100.64.0.1/", "http://192.168.1.1:443/",
])
def test_private_link_local_and_metadata_addresses_are_refused(request_send, url, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK = False
    result = request_send(post(url))
    assert (result.status_code, result.error_class) == (None, ErrorClass.BLOCKED_ADDRESS)


def test_the_response_body_is_capped(request_send, receiver, settings):
    settings.WEBHOOK_MAX_RESPONSE_BYTES = 1000
    receiver.expect_request("/hook").respond_with_data(b"x" * 200_000)
    result = request_send(post(receiver.url_for("/hook")))
    assert (result.status_code, len(result.body), result.truncated) == (200, 1000, True)


def test_a_receiver_that_does_not_answer_times_out(request_send, receiver, settings):
    settings.WEBHOOK_READ_TIMEOUT = 0.3
    release = threading.Event()
    receiver.expect_request("/hook").respond_with_handler(lambda request: release.wait(10) and Response("late"))
    try:
        result = request_send(post(receiver.url_for("/hook")))
    finally:
        release.set()
    assert (result.status_code, result.error_class) == (None, ErrorClass.TIMEOUT)
    assert 300 <= result.duration_ms < 5000


def test_a_refused_connection_is_a_connection_error(request_send, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, True
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = request_send(post(f"http://127.0.0.1:{port}/hook"))
    assert result.error_class == ErrorClass.CONNECTION_ERROR
    assert "Connection refused" in result.error_message


def test_a_connection_reset_mid_response_is_recorded(request_send, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, True
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer_half_and_hang_up() -> None:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial")
        connection.close()

    thread = threading.Thread(target=answer_half_and_hang_up)
    thread.start()
    result = request_send(post(f"http://127.0.0.1:{server.getsockname()[1]}/hook"))
    thread.join()
    server.close()
    assert result.status_code == 200 and result.truncated and not result.is_success
    assert result.error_class == ErrorClass.CONNECTION_ERROR
    assert result.error_message == "The connection broke before the whole answer arrived."


def test_an_unknown_host_is_a_dns_failure(request_send):
    result = request_send(post("https://no-such-host.invalid/hook"))
    assert (result.status_code, result.error_class) == (None, ErrorClass.DNS_FAILURE)


def test_proxy_variables_are_ignored(request_send, receiver, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    receiver.expect_oneshot_request("/hook").respond_with_data("direct")
    assert request_send(post(receiver.url_for("/hook"))).body == b"direct"


def test_error_messages_never_contain_the_url(request_send, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK, settings.WEBHOOK_ALLOW_ANY_PORT = True, True
    result = request_send(post("http://127.0.0.1:9/hook?authtoken=SECRET-TOKEN"))
    assert result.error_class is not None
    assert "SECRET-TOKEN" not in result.error_message
