"""The guarded HTTP client: the only way this project sends a request to a URL an admin typed.

- The host is resolved once; the address is checked (no private, loopback, link-local, reserved or
  metadata addresses) and that same address is connected to (requests-hardened pins it).
- Only allowed ports; redirects are never followed (a 3xx is the attempt's result).
- Connect and read timeouts, an overall deadline, and a cap on the response body. Socket timeouts
  bound each read only, so a receiver that trickles a byte at a time could hold a worker forever: a
  watchdog thread cuts the connection when the deadline passes, in the head or in the body.
- No proxies from the environment: they would bypass the address check.
- Never raises for a network problem: the result says what happened, the caller decides.
"""
import heapq
import http.cookiejar
import ipaddress
import itertools
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from dispatcher.validators import address_forbidden, literal_address, port_allowed

CHUNK_SIZE = 16 * 1024
POOLS_KEPT = 200  # destination addresses whose keep-alive connections a process keeps open


class ErrorClass(StrEnum):
    BLOCKED_ADDRESS = "blocked_address"
    BLOCKED_PORT = "blocked_port"
    INVALID_URL = "invalid_url"
    DNS_FAILURE = "dns_failure"
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"
    PROTOCOL_ERROR = "protocol_error"


@dataclass(frozen=True)
class HttpResult:
    """What one attempt produced: an HTTP answer (status_code set) or a network error (error_class set)."""

    status_code: int | None
    duration_ms: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    truncated: bool = False
    error_class: ErrorClass | None = None
    error_message: str = ""

    @property
    def is_success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and self.error_class is None


class _Deadline:
    """The moment one request must be over by, and the connections it uses (to cut them then)."""

    def __init__(self, at: float) -> None:
        self.at = at
        self.connections: list[HTTPConnection] = []
        self.done = False
        self.expired = False

    def cut(self) -> None:
        self.expired = True
        for connection in self.connections:
            if (sock := getattr(connection, "sock", None)) is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read in the sending thread
                except OSError:
                    pass


class _Watchdog:
    """One thread per process that cuts requests past their deadline (see the module docstring)."""

    def __init__(self) -> None:
        self.heap: list[tuple[float, int, _Deadline]] = []
        self.counter = itertools.count()
        self.condition = threading.Condition()
        self.pid = 0

    def watch(self, deadline: _Deadline) -> None:
        with self.condition:
            if self.pid != os.getpid():  # first use in this process (threads do not survive a fork)
                self.pid, self.heap = os.getpid(), []
                threading.Thread(target=self._run, name="http-deadline", daemon=True).start()
            heapq.heappush(self.heap, (deadline.at, next(self.counter), deadline))
            if self.heap[0][2] is deadline:
                self.condition.notify()

    def _run(self) -> None:
        with self.condition:
            while True:
                while self.heap and self.heap[0][2].done:
                    heapq.heappop(self.heap)
                if not self.heap:
                    self.condition.wait()
                    continue
                wait = self.heap[0][0] - time.monotonic()
                if wait > 0:
                    self.condition.wait(wait)
                    continue
                heapq.heappop(self.heap)[2].cut()


_watchdog = _Watchdog()
_current = threading.local()  # the _Deadline of the request this thread is sending


class _WatchedConnection:
    def request(self, *args, **kwargs):
        if (deadline := getattr(_current, "deadline", None)) is not None:
            deadline.connections.append(self)
        return super().request(*args, **kwargs)


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _GuardedAdapter(IPFilterAdapter):
    """requests-hardened's pinning adapter with our stricter rule (only globally routable addresses) and
    connections the deadline watchdog can cut."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        address = ipaddress.ip_address(host_params["host"].strip("[]"))
        if address_forbidden(address):
            raise InvalidIPAddress(address)
        return host_params, pool_kwargs


_session: requests.Session | None = None
_session_lock = threading.Lock()


def session() -> requests.Session:
    """One pooled session per process, shared by the sender pool's threads (urllib3's pools are
    thread-safe), so connections to a receiver are reused."""
    global _session
    with _session_lock:
        if _session is None:
            config = Config(
                ip_filter_enable=True,
                ip_filter_allow_loopback_ips=settings.WEBHOOK_ALLOW_LOOPBACK,
                never_redirect=True,
                default_timeout=(settings.WEBHOOK_CONNECT_TIMEOUT, settings.WEBHOOK_READ_TIMEOUT),
                user_agent_override=None,
            )
            new = HTTPSession(config)
            new.trust_env = False
            # A receiver's cookies are not sent to anyone, not even back to it: deliveries are not a browser session.
            new.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            for scheme, https in (("http://", False), ("https://", True)):
                adapter = _GuardedAdapter(is_https_proto=https, allow_loopback=settings.WEBHOOK_ALLOW_LOOPBACK)
                # One keep-alive pool per destination address, as large as the requests a process may have
                # in flight to it (the sender pool's per-destination cap), so none opens a throwaway connection.
                adapter.init_poolmanager(POOLS_KEPT, max(settings.WEBHOOK_MAX_IN_FLIGHT_PER_DESTINATION, 1))
                new.mount(scheme, adapter)
            _session = new
        return _session


def session_reset() -> None:
    """Forget the session (settings changed): the next request builds one with the new rules."""
    global _session
    with _session_lock:
        if _session is not None:
            _session.close()
        _session = None


def request_refusal(request) -> HttpResult | None:
    """Why this request must not be sent at all (URL, scheme, port, an address spelled in the URL), checked
    before any connection; None when it may go. Shared with the engine's client (dispatcher/async_client.py)."""
    try:
        parts = urlsplit(request.url)
        port = parts.port if parts.port is not None else (443 if parts.scheme == "https" else 80)
    except ValueError:
        return HttpResult(None, 0, error_class=ErrorClass.INVALID_URL, error_message="The URL is not valid.")
    if parts.scheme not in ("http", "https") or not parts.hostname or "%" in parts.hostname:
        return HttpResult(None, 0, error_class=ErrorClass.INVALID_URL, error_message="The URL is not valid.")
    if "@" in parts.netloc:  # user:password@host would be sent as Basic credentials by either client
        return HttpResult(None, 0, error_class=ErrorClass.INVALID_URL,
                          error_message="A URL with a user name or password is not sent; use Basic authentication.")
    if port == 0 or not port_allowed(port):
        return HttpResult(None, 0, error_class=ErrorClass.BLOCKED_PORT, error_message=f"Port {port} is not allowed.")
    # An address spelled in the URL is checked before anything is sent, in every spelling a resolver accepts.
    if (address := literal_address(parts.hostname)) is not None and address_forbidden(address):
        return HttpResult(None, 0, error_class=ErrorClass.BLOCKED_ADDRESS,
                          error_message=f"The address {address} is not a public address.")
    return None


def request_send(request, *, total_seconds: float | None = None) -> HttpResult:
    """Send a RenderedRequest and read at most WEBHOOK_MAX_RESPONSE_BYTES of the answer, within total_seconds
    in all (default WEBHOOK_TOTAL_TIMEOUT; shorter for a call someone waits on, such as a verification)."""
    started = time.monotonic()
    total = settings.WEBHOOK_TOTAL_TIMEOUT if total_seconds is None else min(total_seconds,
                                                                             settings.WEBHOOK_TOTAL_TIMEOUT)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    if (refused := request_refusal(request)) is not None:
        return refused
    deadline = _current.deadline = _Deadline(started + total)
    _watchdog.watch(deadline)
    try:
        try:
            response = session().request(
                request.method, request.url, headers=request.headers, data=request.body or None,
                stream=True, allow_redirects=False,
                timeout=(min(settings.WEBHOOK_CONNECT_TIMEOUT, total), min(settings.WEBHOOK_READ_TIMEOUT, total)),
            )
        except InvalidIPAddress as error:
            return HttpResult(None, elapsed_ms(), error_class=ErrorClass.BLOCKED_ADDRESS,
                              error_message=f"The host resolves to a forbidden address ({error}).")
        except requests.RequestException as error:
            error_class, message = total_timeout(total) if deadline.expired else classify(error)
            return HttpResult(None, elapsed_ms(), error_class=error_class, error_message=message)
        with response:
            body, truncated, error_class, message = _read_capped(response, deadline, total)
    finally:
        deadline.done = True
        _current.deadline = None
    return HttpResult(
        status_code=response.status_code, duration_ms=elapsed_ms(), headers=dict(response.headers),
        body=body, truncated=truncated, error_class=error_class, error_message=message,
    )


def _read_capped(response: requests.Response, deadline: _Deadline,
                 total: float) -> tuple[bytes, bool, ErrorClass | None, str]:
    cap = settings.WEBHOOK_MAX_RESPONSE_BYTES
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.raw.stream(CHUNK_SIZE, decode_content=True):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                return b"".join(chunks)[:cap], True, None, ""
            if deadline.expired or time.monotonic() > deadline.at:
                return (b"".join(chunks), True, *total_timeout(total))
    except Exception as error:  # urllib3 raises its own errors mid-body (reset, timeout, bad chunking)
        error_class, message = total_timeout(total) if deadline.expired else classify(error)
        return b"".join(chunks), True, error_class, message
    if deadline.expired:  # cut while reading: what arrived is not the whole answer
        return b"".join(chunks), True, *total_timeout(total)
    return b"".join(chunks), False, None, ""


def total_timeout(seconds: float | None = None) -> tuple[ErrorClass, str]:
    seconds = settings.WEBHOOK_TOTAL_TIMEOUT if seconds is None else seconds
    return ErrorClass.TIMEOUT, f"The receiver took longer than {seconds:g} s in all."


_ERRNO_RE = re.compile(r"\[Errno -?\d+\][^'\"\)]*")


def classify(error: BaseException) -> tuple[ErrorClass, str]:
    """Map an exception to an error class and a message without the URL (it may carry tokens)."""
    text = " ".join(str(e) for e in exception_chain(error))
    detail = match.group(0).strip() if (match := _ERRNO_RE.search(text)) else type(error).__name__
    names = {type(e).__name__ for e in exception_chain(error)}
    if "ConnectionRefusedError" in names:
        detail = "[Errno 111] Connection refused"  # asyncio words it "Connect call failed (address)"
    if names & {"ConnectTimeout", "ReadTimeout", "Timeout", "ReadTimeoutError", "ConnectTimeoutError", "timeout",
                 "ServerTimeoutError", "ConnectionTimeoutError", "SocketTimeoutError", "TimeoutError"}:
        return ErrorClass.TIMEOUT, f"Timed out ({detail})."
    if names & {"SSLError", "SSLCertVerificationError", "ClientConnectorCertificateError", "ClientSSLError",
                 "ClientConnectorSSLError"}:
        return ErrorClass.TLS_ERROR, "The TLS handshake failed (certificate or protocol)."
    if names & {"NameResolutionError", "gaierror", "ClientConnectorDNSError"} or "Failed to resolve" in text:
        return ErrorClass.DNS_FAILURE, "The host name could not be resolved."
    if names & {"InvalidURL", "MissingSchema", "InvalidSchema", "LocationParseError"}:
        return ErrorClass.INVALID_URL, "The URL is not valid."
    if names & {"IncompleteRead", "ConnectionResetError", "ClientPayloadError", "ServerDisconnectedError",
                 "ContentLengthError"} or "Connection broken" in text:
        return ErrorClass.CONNECTION_ERROR, "The connection broke before the whole answer arrived."
    if names & {"ConnectionError", "NewConnectionError", "ConnectionRefusedError", "ClientConnectorError",
                 "ClientOSError"}:
        return ErrorClass.CONNECTION_ERROR, f"Could not connect or the connection broke ({detail})."
    return ErrorClass.PROTOCOL_ERROR, f"The receiver's answer was not valid HTTP ({detail})."


def exception_chain(error: BaseException):
    """The error and every error it carries (cause, context, arguments, urllib3's reason)."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        stack.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
        if (reason := getattr(current, "reason", None)) is not None and isinstance(reason, BaseException):
            stack.append(reason)
