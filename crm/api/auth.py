"""API keys: X-API-Key (or ?zapikey=, as Zoho's API accepts), each with scopes, under the throttles.

One ``ApiKeyAuth(scope)`` per operation (django-ninja's auth): a key without the scope is refused with 403
and says which one it lacks. 429 with Retry-After, each throttle kept in the database so that it holds
across web processes: a key over API_RATE_LIMIT_PER_MINUTE (crm.services.api_rate_take), an organization
whose keys together are over API_RATE_LIMIT_PER_ORGANIZATION, and a client address over
API_AUTH_FAILURES_PER_MINUTE calls with an invalid key (crm/api/throttle.py).
"""
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import APIKeyHeader as NinjaKeyHeader
from ninja.security import APIKeyQuery as NinjaKeyQuery

from crm import services
from crm.api import throttle
from crm.api.errors import ApiError
from crm.models import ApiKey, ApiScope


class ApiRequest(HttpRequest):
    """A request key_auth let in. ``auth`` is its API key (django-ninja sets it); views annotate their
    request with this type so that what they read of the key is checked."""

    auth: ApiKey


def authenticate(request: HttpRequest, scope: str) -> ApiKey:
    """The key of this request, allowed this scope and under its rate limit; else an ApiError."""
    raw = request.headers.get("X-API-Key") or request.GET.get("zapikey")
    if not raw:
        raise ApiError(401, "unauthorized", "Send a valid API key in the X-API-Key header or the zapikey query "
                       "parameter.")
    now, address = timezone.now(), throttle.client_address(request)
    if (wait := throttle.address_refused(address=address, now=now)) is not None and not throttle.known_valid(raw):
        raise _guessing(wait)  # a key this process saw valid still works: a guesser behind one's address blocks only guesses
    key = services.api_key_authenticate(raw=raw)
    if key is None:
        throttle.known_valid_forget(raw)
        if (wait := throttle.auth_failure_take(address=address, now=now)) is not None:
            raise _guessing(wait)
        raise ApiError(401, "unauthorized", "This API key is not valid or was revoked.")
    throttle.known_valid_note(raw)
    if (wait := services.api_rate_take(key=key, now=now)) is not None:
        raise ApiError(429, "rate_limited", f"This key made {settings.API_RATE_LIMIT_PER_MINUTE} calls this minute, "
                       f"the most it may; try again in {wait} s.", retry_after=wait)
    if (wait := throttle.organization_rate_take(organization_id=key.organization_id, now=now)) is not None:
        raise ApiError(429, "rate_limited", f"This organization's keys made {settings.API_RATE_LIMIT_PER_ORGANIZATION} "
                       f"calls this minute, the most they may together; try again in {wait} s.", retry_after=wait)
    if scope not in key.scopes:
        raise ApiError(403, "missing_scope", f"This API key does not have the scope {scope} "
                       f"({ApiScope(scope).label}); its scopes are: {', '.join(key.scopes) or 'none'}.",
                       required_scope=scope)
    return key


def _guessing(wait: int) -> ApiError:
    return ApiError(429, "rate_limited", f"Too many calls with an API key that is not valid came from your address "
                    f"this minute ({settings.API_AUTH_FAILURES_PER_MINUTE} at most); try again in {wait} s.",
                    retry_after=wait)


class ApiKeyHeader(NinjaKeyHeader):
    param_name = "X-API-Key"

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def __call__(self, request: HttpRequest) -> ApiKey:
        return authenticate(request, self.scope)

    def authenticate(self, request: HttpRequest, key: str | None) -> ApiKey:  # pragma: no cover - see __call__
        return authenticate(request, self.scope)


class ApiKeyQuery(NinjaKeyQuery):
    param_name = "zapikey"

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def authenticate(self, request: HttpRequest, key: str | None) -> ApiKey:  # pragma: no cover - never reached
        return authenticate(request, self.scope)


def key_auth(scope: str) -> list:
    """The auth of an operation that needs scope: the header (which also reads ?zapikey=) and, for the
    OpenAPI document, the query parameter."""
    return [ApiKeyHeader(scope), ApiKeyQuery(scope)]
