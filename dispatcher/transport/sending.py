"""How a rendered request reaches its receiver: the authentication that is added at send time, through
the guarded client (dispatcher/transport/client.py), in the sender pool or once (test sends, verification).

What is rendered once and kept with the delivery (headers, Basic, bearer token) is in the request. What
changes or must not be stored in it is added here, for each attempt:
- OAuth 2.0 client credentials: a token from the receiver's token URL, fetched through the guarded client
  (the token URL obeys the same address rules), kept in this process until shortly before it expires, and
  fetched again once when the receiver answers 401 to a kept token. A token endpoint that fails ends the
  attempt with the error class token_error, and the request is not sent.
- Mutual TLS: the webhook's client certificate and key, and its CA bundle for the receiver, as an SSL
  context kept per certificate (ssl can load a key only from a file: it is written to a private temporary
  file and removed at once).
"""
import asyncio
import base64
import hashlib
import json
import math
import os
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from functools import lru_cache
from urllib.parse import quote, urlencode

import aiohttp
from django.conf import settings

from config.caches import cache_register
from dispatcher.transport import client as async_client
from dispatcher.transport.result import ErrorClass, HttpResult, is_retryable
from dispatcher.transport.request import RenderedRequest

CLIENT_AUTH_BASIC = "basic"  # RFC 6749 2.3.1: client id and secret as Basic (client_secret_basic)
CLIENT_AUTH_BODY = "body"  # ... or in the form body (client_secret_post)
TOKEN_LIFETIME_DEFAULT = 300  # seconds a token without expires_in (or with one that is not a number) is kept
TOKEN_LIFETIME_MAX = 24 * 3600  # a token is fetched again at least daily, whatever its server says (1e308)
TOKEN_REFRESH_MARGIN = 30  # seconds before expiry a kept token is no longer used
TOKEN_ERROR_EXCERPT = 200  # characters of a token endpoint's error shown in the log
TOKENS_KEPT = 1000
TLS_CONTEXTS_KEPT = 256
PERMANENT_TOKEN_ANSWERS = frozenset({400, 401, 403})  # invalid_client, invalid_scope...: retrying will not help


@dataclass(frozen=True)
class OAuthClient:
    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    scope: str = ""
    client_auth: str = CLIENT_AUTH_BASIC

    @property
    def key(self) -> tuple:
        """What a kept token belongs to (the secret only as a digest)."""
        digest = hashlib.sha256(self.client_secret.encode()).hexdigest()
        return self.token_url, self.client_id, digest, self.scope, self.client_auth


@dataclass(frozen=True)
class SendAuth:
    """Authentication added at send time; None of it for most webhooks."""

    oauth: OAuthClient | None = None
    tls: ssl.SSLContext | None = field(default=None, compare=False)


@lru_cache(maxsize=TLS_CONTEXTS_KEPT)
def tls_context(certificate: str, key: str, ca_bundle: str) -> ssl.SSLContext:
    """A client context verifying the receiver (against ca_bundle if given) and presenting the certificate.
    Raises ssl.SSLError or ValueError for PEM that does not load (checked when the webhook is saved)."""
    context = ssl.create_default_context(cadata=ca_bundle or None)
    if certificate:
        with tempfile.TemporaryDirectory(prefix="webhook-tls-") as folder:  # created 0700
            path = os.path.join(folder, "client.pem")
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(key.strip() + "\n" + certificate.strip() + "\n")
            context.load_cert_chain(path)
    return context


def tls_problem(*, certificate: str, key: str, ca_bundle: str) -> tuple[str, str] | None:
    """(field, message) when the PEM given cannot be used, for the admin form and the import."""
    if bool(certificate) != bool(key):
        return ("tls_client_key" if certificate else "tls_client_certificate",
                "Give both the client certificate and its key, or neither.")
    if ca_bundle:
        try:
            ssl.create_default_context(cadata=ca_bundle)
        except (ssl.SSLError, ValueError):
            return "tls_ca_bundle", "The CA bundle is not valid PEM (-----BEGIN CERTIFICATE----- …)."
    if certificate:
        try:
            tls_context(certificate, key, "")
        except (ssl.SSLError, ValueError, OSError):
            return "tls_client_key", ("The client certificate and key do not load: both must be PEM, the key "
                                      "unencrypted, and the key must belong to the certificate.")
    return None


# --- OAuth 2.0 client credentials -----------------------------------------------------------------------
class _Tokens:
    """Access tokens kept in this process by client (thread-safe: the sender pool's loop and one-off sends
    share it), with at most one fetch in flight per client and event loop."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.kept: dict[tuple, tuple[str, float]] = {}
        self.fetching: dict[tuple, asyncio.Future] = {}

    def get(self, client: OAuthClient) -> str | None:
        with self.lock:
            token, until = self.kept.get(client.key, ("", 0.0))
        return token if token and time.monotonic() < until else None

    def keep(self, client: OAuthClient, token: str, lifetime: float) -> None:
        with self.lock:
            if len(self.kept) >= TOKENS_KEPT:
                self.kept.clear()
            self.kept[client.key] = (token, time.monotonic() + lifetime)

    def forget(self, client: OAuthClient, token: str) -> None:
        with self.lock:
            if self.kept.get(client.key, ("",))[0] == token:
                del self.kept[client.key]

    def clear(self) -> None:
        with self.lock:
            self.kept.clear()


tokens = _Tokens()


def token_request(client: OAuthClient) -> RenderedRequest:
    """The client credentials grant (RFC 6749, section 4.4), the client authenticated as configured."""
    form = {"grant_type": "client_credentials"}
    if client.scope:
        form["scope"] = client.scope
    headers = {"User-Agent": settings.WEBHOOK_USER_AGENT, "Accept": "application/json",
               "Content-Type": "application/x-www-form-urlencoded"}
    if client.client_auth == CLIENT_AUTH_BODY:
        form |= {"client_id": client.client_id, "client_secret": client.client_secret}
    else:  # RFC 6749 2.3.1: each part form-encoded before Basic
        pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return RenderedRequest("POST", client.token_url, headers, urlencode(form).encode(),
                           secrets=(client.client_secret,))


def token_of(result: HttpResult, request: RenderedRequest) -> tuple[str, float] | HttpResult:
    """The access token and how long to keep it, or the failed result to record (class token_error)."""
    def failed(message: str, retryable: bool) -> HttpResult:
        return HttpResult(None, result.duration_ms, error_class=ErrorClass.TOKEN_ERROR,
                          error_message=request.mask(message)[:500], retryable=retryable)

    if result.status_code is None:  # a refused URL stays refused; a network failure may heal
        return failed(f"The token URL could not be reached: {result.error_message}", is_retryable(result))
    try:
        data = json.loads(result.body)
    except ValueError:
        data = None
    if not result.is_success:
        detail = ""
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            detail = ": " + " ".join(str(data.get(k, "")) for k in ("error", "error_description")).strip()
        return failed(f"The token URL answered {result.status_code}{detail[:TOKEN_ERROR_EXCERPT]}.",
                      result.status_code not in PERMANENT_TOKEN_ANSWERS)
    token = data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token or not token.isprintable():
        return failed("The token URL answered without an access_token.", False)
    if str(data.get("token_type", "bearer")).lower() != "bearer":
        return failed(f"The token URL gave a {str(data['token_type'])[:30]} token; only bearer tokens are supported.",
                      False)
    lifetime = token_lifetime(data.get("expires_in"))
    return token, lifetime - min(TOKEN_REFRESH_MARGIN, lifetime / 10)


def token_lifetime(expires_in: object) -> float:
    """Seconds to keep a token, from a server's expires_in (RFC 6749: a number of seconds; some send it as a
    string): within 0 (already expired: used once) and TOKEN_LIFETIME_MAX, and TOKEN_LIFETIME_DEFAULT for
    what is not a number at all (missing, NaN, text, an object)."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float, str)):
        return TOKEN_LIFETIME_DEFAULT
    try:
        seconds = float(expires_in)
    except ValueError:
        return TOKEN_LIFETIME_DEFAULT
    except OverflowError:  # an integer of hundreds of digits
        return TOKEN_LIFETIME_MAX if isinstance(expires_in, int) and expires_in > 0 else 0.0
    if math.isnan(seconds):
        return TOKEN_LIFETIME_DEFAULT
    return min(max(seconds, 0.0), TOKEN_LIFETIME_MAX)


async def _token_fetch(session: aiohttp.ClientSession, client: OAuthClient, total: float) -> str | HttpResult:
    request = token_request(client)
    outcome = token_of(await async_client.request_send(session, request, total_seconds=total), request)
    if isinstance(outcome, HttpResult):
        return outcome
    token, lifetime = outcome
    tokens.keep(client, token, lifetime)
    return token


async def _token(session: aiohttp.ClientSession, client: OAuthClient, total: float) -> str | HttpResult:
    """A kept token, or one fetched now; concurrent requests of one client wait for the same fetch."""
    if (kept := tokens.get(client)) is not None:
        return kept
    key = (id(asyncio.get_running_loop()), client.key)
    if (pending := tokens.fetching.get(key)) is not None:
        return await asyncio.shield(pending)
    future = asyncio.ensure_future(_token_fetch(session, client, total))
    tokens.fetching[key] = future
    try:
        return await asyncio.shield(future)
    finally:
        if future.done():
            tokens.fetching.pop(key, None)
        else:
            future.add_done_callback(lambda _: tokens.fetching.pop(key, None))


def with_token(request: RenderedRequest, token: str) -> RenderedRequest:
    return replace(request, headers={**request.headers, "Authorization": f"Bearer {token}"},
                   secrets=tuple(sorted({*request.secrets, token}, key=len, reverse=True)))


# --- sending ---------------------------------------------------------------------------------------------
async def send(session: aiohttp.ClientSession, request: RenderedRequest, auth: SendAuth | None, *,
               total_seconds: float | None = None) -> tuple[HttpResult, RenderedRequest]:
    """Send with the authentication of auth; returns the result and the request as sent (whose secrets
    mask the answer). The whole exchange, token included, stays within total_seconds."""
    if auth is None or auth.oauth is None:
        return await async_client.request_send(session, request, total_seconds=total_seconds,
                                               tls=auth.tls if auth else None), request
    total = settings.WEBHOOK_TOTAL_TIMEOUT if total_seconds is None else total_seconds
    deadline = time.monotonic() + total
    kept = tokens.get(auth.oauth)
    for _ in range(2):
        token = await _token(session, auth.oauth, deadline - time.monotonic())
        if isinstance(token, HttpResult):
            return token, request
        sent = with_token(request, token)
        result = await async_client.request_send(session, sent, total_seconds=deadline - time.monotonic(),
                                                 tls=auth.tls)
        if result.status_code != 401 or token != kept:  # a fresh token refused is the receiver's answer
            return result, sent
        tokens.forget(auth.oauth, token)  # the receiver no longer takes the kept token: once more, fetched anew
        kept = None
    return result, sent


def send_now(request: RenderedRequest, auth: SendAuth | None = None, *,
             total_seconds: float | None = None) -> tuple[HttpResult, RenderedRequest]:
    """Send once, from synchronous code (the web process, a task), with a session of its own."""
    async def once() -> tuple[HttpResult, RenderedRequest]:
        async with async_client.session_create(max_in_flight=4) as session:
            return await send(session, request, auth, total_seconds=total_seconds)

    return asyncio.run(once())


cache_register("OAuth access tokens", tokens.clear)
cache_register("TLS contexts", tls_context.cache_clear)
