"""What the guarded HTTP client (dispatcher/transport/client.py) answers, and the checks it makes before any
connection: the result of one request (an HTTP answer or a classified network error, never an exception),
the refusal of a URL that must not be sent, and the mapping of exceptions to error classes.
"""
import re
from dataclasses import dataclass, field
from enum import StrEnum
import yarl
from django.conf import settings
from django.core.exceptions import ValidationError

from dispatcher.transport.addresses import address_forbidden, literal_address, port_allowed, url_parse

CHUNK_SIZE = 16 * 1024


class ErrorClass(StrEnum):
    BLOCKED_ADDRESS = "blocked_address"
    BLOCKED_PORT = "blocked_port"
    INVALID_URL = "invalid_url"
    DNS_FAILURE = "dns_failure"
    CONNECTION_ERROR = "connection_error"
    TIMEOUT = "timeout"
    TLS_ERROR = "tls_error"
    PROTOCOL_ERROR = "protocol_error"
    TOKEN_ERROR = "token_error"  # the OAuth 2.0 token endpoint failed: the request itself was not sent


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
    retryable: bool | None = None  # set when the error class alone does not say (a token endpoint's answer)

    @property
    def is_success(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and self.error_class is None


def url_checked(url: str) -> yarl.URL | HttpResult:
    """The URL the client will use (normalised: addresses.url_parse), or why it must not be sent at all
    (scheme, port, credentials, an address spelled in the URL in any form), checked before any connection.
    The caller sends exactly the object returned, so what was checked is what is used."""
    try:
        parsed = url_parse(url)
        port = parsed.port if parsed.port is not None else 0
    except (ValidationError, ValueError):
        return HttpResult(None, 0, error_class=ErrorClass.INVALID_URL, error_message="The URL is not valid.")
    host = parsed.raw_host or ""
    if parsed.scheme not in ("http", "https") or not host or "%" in host:
        return HttpResult(None, 0, error_class=ErrorClass.INVALID_URL, error_message="The URL is not valid.")
    if parsed.raw_user is not None or parsed.raw_password is not None:  # either client would send them as Basic
        return HttpResult(None, 0, error_class=ErrorClass.INVALID_URL,
                          error_message="A URL with a user name or password is not sent; use Basic authentication.")
    if port == 0 or not port_allowed(port):
        return HttpResult(None, 0, error_class=ErrorClass.BLOCKED_PORT, error_message=f"Port {port} is not allowed.")
    # An address spelled in the URL is checked before anything is sent, in every spelling a resolver accepts;
    # the connect-time guard checks it again, whatever the spelling.
    if (address := literal_address(host)) is not None and address_forbidden(address):
        return HttpResult(None, 0, error_class=ErrorClass.BLOCKED_ADDRESS,
                          error_message=f"The address {address} is not a public address.")
    return parsed


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


RETRIED_STATUS_CODES = frozenset({408, 429})  # and every 5xx
RETRIED_ERRORS = frozenset({
    ErrorClass.CONNECTION_ERROR, ErrorClass.TIMEOUT, ErrorClass.DNS_FAILURE, ErrorClass.TLS_ERROR,
    ErrorClass.PROTOCOL_ERROR,
})


def is_retryable(result: HttpResult) -> bool:
    """Connection failures, timeouts, 408, 429 and 5xx may heal; refused URLs, 3xx and other 4xx do not."""
    if result.retryable is not None:
        return result.retryable
    if result.error_class is not None:
        return result.error_class in RETRIED_ERRORS
    code = result.status_code or 0
    return code in RETRIED_STATUS_CODES or 500 <= code < 600
