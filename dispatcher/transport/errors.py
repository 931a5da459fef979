"""Error classes stored on attempts, and what they mean to an admin (seed 003's error table)."""
from dispatcher.transport.result import ErrorClass, HttpResult

URL_REFUSED = "url_refused"
LIMIT_REACHED = "limit_reached"
INTERNAL_ERROR = "internal_error"
REDIRECT = "redirect"
CLAIM_LOST = "claim_lost"

URL_REFUSED_CLASSES = {ErrorClass.BLOCKED_ADDRESS, ErrorClass.BLOCKED_PORT, ErrorClass.INVALID_URL}

MEANINGS: dict[str, str] = {
    "http_400": "400 Bad request: often a required parameter is missing.",
    "http_401": "401 Unauthorized: no valid authentication token was given.",
    "http_402": "402 Request failed: the parameters were valid but the request failed.",
    "http_404": "404 Not found: the requested item does not exist.",
    "http_408": "408 Request timeout: the receiver gave up waiting.",
    "http_429": "429 Too many requests: the receiver asks to slow down (its Retry-After is honoured).",
    "http_5xx": "Server error: something went wrong in the third-party app.",
    "http_4xx": "The receiver refused the request.",
    ErrorClass.CONNECTION_ERROR: "Error code 1: cannot connect to the API server for now. Check its logs and firewall "
                                 "for requests from the CRM.",
    ErrorClass.TIMEOUT: "Error code 1: the receiver did not answer in time.",
    ErrorClass.DNS_FAILURE: "Error code 1: the host name of the URL could not be resolved.",
    ErrorClass.TLS_ERROR: "Error code 1: the secure connection failed (certificate or TLS version).",
    ErrorClass.PROTOCOL_ERROR: "The receiver's answer was not valid HTTP.",
    ErrorClass.TOKEN_ERROR: "OAuth token error: no access token could be obtained from the token URL, so the "
                            "request was not sent.",
    URL_REFUSED: "URL refused: vulnerable to SSRF or invalid.",
    LIMIT_REACHED: "Daily limit reached: the organization made its maximum number of webhook calls today.",
    INTERNAL_ERROR: "Internal processing error: the webhook could not be prepared or sent.",
    REDIRECT: "The receiver answered with a redirect, which is not followed; update the URL.",
    CLAIM_LOST: "Sent by a worker that was cut off past its lease: another worker had taken the delivery over and "
                "sent it again (same webhook-id), and that attempt decides the outcome. The receiver got both.",
}


def error_class_of(result: HttpResult) -> str:
    """One class per attempt: network problems first, then the HTTP status."""
    if result.error_class in URL_REFUSED_CLASSES:
        return URL_REFUSED
    if result.error_class is not None:
        return str(result.error_class)
    if result.status_code is None or 200 <= result.status_code < 300:
        return ""
    if 300 <= result.status_code < 400:
        return REDIRECT
    return f"http_{result.status_code}"


def failure_reason(error_class: str, error_message: str, what_next: str) -> str:
    """The reason a failed attempt shows in the log and the e-mail: the error's meaning, its detail, and what
    happens next ("retry 1 of 3 at …", "no retry left …", "not retried: 404.")."""
    text = meaning(error_class) + (f" {error_message}" if error_message else "")
    return f"{text.rstrip('. ')}; {what_next}"


def meaning(error_class: str) -> str:
    if not error_class:
        return ""
    if error_class in MEANINGS:
        return MEANINGS[error_class]
    if error_class.startswith("http_5"):
        return MEANINGS["http_5xx"]
    if error_class.startswith("http_4"):
        return MEANINGS["http_4xx"]
    return error_class
