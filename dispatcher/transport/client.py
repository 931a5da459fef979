"""The guarded HTTP client: the only way this project sends a request to a URL someone typed. asyncio and
aiohttp; the delivery engine's sender pool keeps one session per process, one-off sends (test sends,
channel verification, through dispatcher/transport/sending.py) make a short-lived one.

- The URL is normalised as aiohttp itself does (yarl: IDNA, so `１２７．０．０．１` is 127.0.0.1) and checked
  before any connection (result.url_checked: scheme, port, address literals); that very URL object
  is what is sent.
- The host is resolved by _GuardedResolver, which refuses the request if any address is not public
  (private, loopback, link-local, reserved, metadata) and hands aiohttp exactly the checked addresses.
  No DNS cache: each new connection resolves again.
- **The address connected to is checked**: every socket the connector opens is made by guarded_socket
  (aiohttp's public socket_factory hook), which refuses a forbidden peer address before the socket
  exists, so no byte is sent to it whatever the URL looked like (an address literal never reaches the
  resolver). Through the egress proxy, the CONNECT target is checked by the same rule.
- Redirects are never followed (a 3xx is the attempt's result); no proxies from the environment; no
  cookies kept.
- Connect and read timeouts, and a total deadline held by the event loop (a receiver that trickles a
  byte at a time is cut at WEBHOOK_TOTAL_TIMEOUT); the body is read up to WEBHOOK_MAX_RESPONSE_BYTES.
- Keep-alive connections are pooled per destination and reused.
- With WEBHOOK_EGRESS_PROXY set, every connection is an HTTP CONNECT tunnel through that proxy to the
  address the resolver checked (never to the host name: the proxy's own DNS answer is not trusted), plain
  http included, and TLS runs end to end inside it, verified for the URL's host name. The proxy's address
  is the operator's and is not checked. The tunnel is made through the same two public aiohttp hooks
  (Tunnels: the resolver opens it, socket_factory hands it over), no private aiohttp method, and every
  process checks at start that aiohttp still uses them so (probes.egress_problem, system check dispatcher.E004).
- Never raises for a network problem: the result says what happened, the caller decides.

Why aiohttp rather than the threaded requests client: measured against a receiver answering in 100 ms
(docs/internals/benchmarks.md), requests in 100 threads tops out at ~670 requests/s using 1.6 ms of CPU per
request, aiohttp at ~940/s (100 in flight) using 0.3 ms, which leaves the CPU to the database work.
"""
import asyncio
import base64
import errno
import ipaddress
import itertools
import socket
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiohappyeyeballs
import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from django.conf import settings

from dispatcher.transport.result import (
    CHUNK_SIZE, ErrorClass, HttpResult, classify, exception_chain, total_timeout, url_checked,
)
from dispatcher.transport.addresses import address_forbidden

MAX_HEADER_BYTES = 64 * 1024  # one response header line, as http.client allows; longer is a protocol error
MAX_PROXY_HEAD_BYTES = 16 * 1024  # the egress proxy's answer to CONNECT


class BlockedAddress(OSError):
    """The address a connection would use is not public. An OSError, so that aiohttp and aiohappyeyeballs
    treat it as a failed connect (no socket is left open) and keep it as the cause."""

    MESSAGE = "Refused to connect to the forbidden address"

    def __init__(self, address: str) -> None:
        super().__init__(errno.EACCES, f"{self.MESSAGE} {address}")
        self.address = address


def guarded_socket(addr_info: tuple) -> socket.socket:
    """aiohttp's socket_factory: the one place every connection's peer address passes through before a
    socket exists, on every path (engine, test sends, channel verification, OAuth token calls)."""
    family, type_, proto, _, sockaddr = addr_info
    address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
    if address_forbidden(address):
        raise BlockedAddress(str(address))
    return socket.socket(family=family, type=type_, proto=proto)


class _GuardedResolver(AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        results: list[ResolveResult] = []
        for info_family, _, proto, _, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address_forbidden(address):
                raise BlockedAddress(str(address))
            results.append(ResolveResult(hostname=host, host=str(address), port=int(sockaddr[1]),
                                         family=info_family, proto=proto, flags=socket.AI_NUMERICHOST))
        if not results:
            raise OSError(socket.EAI_NONAME, "Failed to resolve")
        return results

    async def close(self) -> None:
        return None


class EgressRefused(Exception):
    """The egress proxy could not be used or did not open the tunnel."""


@dataclass(frozen=True)
class EgressProxy:
    """WEBHOOK_EGRESS_PROXY: http://[user:password@]host:port."""

    host: str
    port: int
    authorization: str  # Proxy-Authorization value, or ""

    @classmethod
    def from_url(cls, url: str) -> "EgressProxy":
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError("WEBHOOK_EGRESS_PROXY must look like http://proxy.internal:3128 "
                             "(optionally http://user:password@proxy.internal:3128).")
        authorization = ""
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            authorization = "Basic " + base64.b64encode(pair).decode()
        return cls(parts.hostname, parts.port or 80, authorization)

    async def tunnel(self, loop: asyncio.AbstractEventLoop, address: str, port: int) -> socket.socket:
        """A socket connected through the proxy to address:port (an address the resolver checked)."""
        if address_forbidden(ipaddress.ip_address(address.split("%", 1)[0])):
            raise BlockedAddress(address)  # never ask the proxy to reach inside, whatever the URL spelled
        infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        try:
            sock = await aiohappyeyeballs.start_connection(infos, loop=loop)
        except OSError as error:
            raise EgressRefused(f"The egress proxy {self.host}:{self.port} cannot be reached ({error.strerror or error}).") from error
        target = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
        head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
        if self.authorization:
            head += f"Proxy-Authorization: {self.authorization}\r\n"
        try:
            await loop.sock_sendall(sock, (head + "\r\n").encode())
            answer = b""
            while b"\r\n\r\n" not in answer:  # nothing follows before we speak: neither HTTP nor TLS servers talk first
                chunk = await loop.sock_recv(sock, 4096)
                if not chunk or len(answer) > MAX_PROXY_HEAD_BYTES:
                    raise EgressRefused("The egress proxy closed the connection before opening the tunnel.")
                answer += chunk
            status = answer.split(b"\r\n", 1)[0].decode("latin-1")
            if status.split(" ")[1:2] != ["200"]:
                raise EgressRefused(f"The egress proxy refused the tunnel ({status[:100]}).")
        except BaseException:
            sock.close()
            raise
        return sock


LITERAL_SUFFIX = ".address.invalid"  # a literal's name for the tunnel resolver (.invalid: RFC 6761, never in DNS)
TICKETS = 65535  # tunnels numbered in turn; one is taken in the step it is made, so they never run out


async def _checked_addresses(host: str, port: int, family: socket.AddressFamily) -> list[str]:
    """Where a tunnel for host may go: the addresses the guarded resolver accepts, or the address a
    literal's name spells (_as_sent); EgressProxy.tunnel checks the one it is given again."""
    if host.endswith(LITERAL_SUFFIX):
        try:
            return [str(ipaddress.ip_address(bytes.fromhex(host.removesuffix(LITERAL_SUFFIX))))]
        except ValueError:
            raise OSError(socket.EAI_NONAME, "Failed to resolve") from None
    return [result["host"] for result in await _GuardedResolver().resolve(host, port, family)]


class NotThroughTheProxy(OSError):
    """With the egress proxy, a connection aiohttp would open itself rather than take a tunnel."""

    def __init__(self, address: object) -> None:
        super().__init__(errno.EACCES, f"Refused to connect to {address} other than through the egress proxy")


class _OpenTunnel(socket.socket):
    """A socket already connected through the egress proxy. Connecting it again does nothing, so the connect
    step aiohttp takes with what socket_factory returned (asyncio's sock_connect calls connect()) keeps it
    as it is; egress_problem checks at start that this still holds."""

    def connect(self, address: object, /) -> None:
        return None


class Tunnels(AbstractResolver):
    """With WEBHOOK_EGRESS_PROXY: the connector's resolver and its socket_factory, aiohttp's public hooks.

    resolve() takes the target's checked addresses, opens a CONNECT tunnel to the first and answers with a
    ticket: the unspecified address (no one's: a changed aiohttp connecting there itself would reach only
    this machine, and nothing is looked up) and a port that numbers the tunnel. aiohttp hands that answer to
    socket_factory in the same step, and socket_for gives back the tunnel instead of a new socket; no other
    socket is made, so nothing bypasses the proxy. aiohttp's TLS (server name verification, client
    certificate) then runs over the tunnel unchanged, and its pool keeps the connection per URL host."""

    def __init__(self, open_tunnel: Callable[[str, int], Awaitable[socket.socket]],
                 lookup: Callable[[str, int, socket.AddressFamily], Awaitable[list[str]]] = _checked_addresses
                 ) -> None:
        self._open_tunnel = open_tunnel
        self._lookup = lookup
        self._waiting: dict[tuple[str, int], socket.socket] = {}
        self._numbers = itertools.count()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        addresses = await self._lookup(host, port, family)
        sock = await self._open_tunnel(addresses[0], port)
        ticket = ("::" if sock.family == socket.AF_INET6 else "0.0.0.0", next(self._numbers) % TICKETS + 1)
        if (left := self._waiting.pop(ticket, None)) is not None:
            left.close()  # its request was given up before it connected, TICKETS tunnels ago
        self._waiting[ticket] = sock
        return [ResolveResult(hostname=host, host=ticket[0], port=ticket[1], family=sock.family, proto=0,
                              flags=socket.AI_NUMERICHOST)]

    def socket_for(self, addr_info: tuple) -> socket.socket:
        """socket_factory: the tunnel the ticket names."""
        sockaddr = addr_info[4]
        sock = self._waiting.pop((str(sockaddr[0]), int(sockaddr[1])), None)
        if sock is None:
            raise NotThroughTheProxy(sockaddr[0])
        return _OpenTunnel(fileno=sock.detach())

    async def close(self) -> None:
        for sock in self._waiting.values():
            sock.close()
        self._waiting.clear()


_TUNNELLED: "weakref.WeakSet[aiohttp.ClientSession]" = weakref.WeakSet()  # the sessions through the proxy


def _as_sent(session: aiohttp.ClientSession, url: yarl.URL, headers: dict[str, str]
             ) -> tuple[yarl.URL, dict[str, str], str | None]:
    """URL, headers and TLS server name to hand aiohttp. aiohttp asks no resolver about an address literal,
    so through the proxy a literal is sent as a name the tunnel resolver reads back (LITERAL_SUFFIX); the
    Host header and the TLS server name stay the URL's."""
    try:
        address = ipaddress.ip_address(url.raw_host or "")
    except ValueError:
        return url, headers, None
    if session not in _TUNNELLED:
        return url, headers, None
    renamed = url.with_host(f"{address.packed.hex()}{LITERAL_SUFFIX}")
    return renamed, {**headers, "Host": url.host_port_subcomponent or ""}, url.raw_host


def egress_proxy() -> EgressProxy | None:
    return EgressProxy.from_url(settings.WEBHOOK_EGRESS_PROXY) if settings.WEBHOOK_EGRESS_PROXY else None


_FROM_SETTINGS = EgressProxy("", 0, "")  # session_create's default: the proxy WEBHOOK_EGRESS_PROXY names


def session_create(*, max_in_flight: int, egress: EgressProxy | None = _FROM_SETTINGS) -> aiohttp.ClientSession:
    """A session of the guarded client, used only by the event loop it was created in."""
    proxy = egress_proxy() if egress is _FROM_SETTINGS else egress
    if proxy is None:
        return _session(max_in_flight, _GuardedResolver(), guarded_socket)
    return tunnelled_session(max_in_flight, Tunnels(
        lambda address, port: proxy.tunnel(asyncio.get_running_loop(), address, port)))


def tunnelled_session(max_in_flight: int, tunnels: Tunnels) -> aiohttp.ClientSession:
    session = _session(max_in_flight, tunnels, tunnels.socket_for)
    _TUNNELLED.add(session)
    return session


def _session(max_in_flight: int, resolver: AbstractResolver, socket_factory: Callable[[tuple], socket.socket]
             ) -> aiohttp.ClientSession:
    # No per-host limit here: aiohttp counts host and port, while a destination is also its path (two
    # webhooks on one host, one of them hanging, must not share slots); the sender pool caps each destination.
    # Waiting for a pooled connection would also count against the connect timeout.
    connector = aiohttp.TCPConnector(limit=max_in_flight, limit_per_host=0, resolver=resolver,
                                     socket_factory=socket_factory, use_dns_cache=False, enable_cleanup_closed=True)
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                                 max_line_size=MAX_HEADER_BYTES, max_field_size=MAX_HEADER_BYTES)


async def request_send(session: aiohttp.ClientSession, request, *, total_seconds: float | None = None,
                       tls: ssl.SSLContext | None = None) -> HttpResult:
    """Send a RenderedRequest and read at most WEBHOOK_MAX_RESPONSE_BYTES of the answer, within total_seconds
    in all (default and at most WEBHOOK_TOTAL_TIMEOUT); tls: the webhook's own context (client certificate,
    CA bundle)."""
    started = time.monotonic()
    total = settings.WEBHOOK_TOTAL_TIMEOUT if total_seconds is None else min(total_seconds,
                                                                             settings.WEBHOOK_TOTAL_TIMEOUT)

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    checked = url_checked(request.url)
    if isinstance(checked, HttpResult):
        return checked
    url, request_headers, server_hostname = _as_sent(session, checked, request.headers)
    timeout = aiohttp.ClientTimeout(total=None, connect=settings.WEBHOOK_CONNECT_TIMEOUT,
                                    sock_read=settings.WEBHOOK_READ_TIMEOUT)
    status, headers, chunks = None, {}, []
    try:
        async with asyncio.timeout(max(total, 0.001)):
            async with session.request(request.method, url, headers=request_headers,
                                       data=request.body or None, allow_redirects=False, timeout=timeout,
                                       ssl=tls if tls is not None else True,
                                       server_hostname=server_hostname) as response:
                status = response.status
                headers = _headers_as_sent(response.raw_headers)
                cap, size = settings.WEBHOOK_MAX_RESPONSE_BYTES, 0
                async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > cap:
                        return HttpResult(status, elapsed_ms(), headers, b"".join(chunks)[:cap], truncated=True)
    except TimeoutError:
        error_class, message = total_timeout(total) if time.monotonic() - started >= total \
            else (ErrorClass.TIMEOUT, "Timed out (connecting, or waiting for the next part of the answer).")
        return _failed(status, elapsed_ms(), headers, chunks, error_class, message)
    except Exception as error:  # noqa: BLE001 - aiohttp's own errors, OSError, and BlockedAddress from the resolver
        if (blocked := blocked_address(error)) is not None:
            return HttpResult(None, elapsed_ms(), error_class=ErrorClass.BLOCKED_ADDRESS,
                              error_message=f"The address {blocked} is not a public address: nothing was sent to it.")
        if (egress := next((e for e in exception_chain(error) if isinstance(e, EgressRefused)), None)) is not None:
            return HttpResult(None, elapsed_ms(), error_class=ErrorClass.CONNECTION_ERROR, error_message=str(egress))
        error_class, message = classify(error)
        return _failed(status, elapsed_ms(), headers, chunks, error_class, message)
    return HttpResult(status, elapsed_ms(), headers, b"".join(chunks))


def _headers_as_sent(raw: tuple[tuple[bytes, bytes], ...]) -> dict[str, str]:
    """Names as the receiver spelled them (aiohttp's own mapping respells well-known ones), values decoded
    as http.client decodes them; repeated headers joined."""
    headers: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name_bytes, value_bytes in raw:
        name, value = name_bytes.decode("latin-1"), value_bytes.decode("latin-1")
        key = seen.setdefault(name.lower(), name)
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _failed(status, duration_ms, headers, chunks, error_class, message) -> HttpResult:
    """An error before the answer (no status) or in the middle of its body (what arrived is kept, truncated)."""
    if status is None:
        return HttpResult(None, duration_ms, error_class=error_class, error_message=message)
    return HttpResult(status, duration_ms, headers, b"".join(chunks), truncated=True, error_class=error_class,
                      error_message=message)


def blocked_address(error: BaseException) -> str | None:
    """The forbidden address that stopped a connection; aiohappyeyeballs folds the errors of several
    addresses into one OSError of their messages, so the message is looked for too."""
    for e in exception_chain(error):
        if isinstance(e, BlockedAddress):
            return e.address
        if BlockedAddress.MESSAGE in str(e):
            return str(e).split(BlockedAddress.MESSAGE, 1)[1].split(",", 1)[0].strip()
    return None
