"""API keys: X-API-Key (or ?zapikey=, as Zoho's API accepts), each with scopes, under the per-key throttle.

One ``ApiKeyAuth(scope)`` per operation (django-ninja's auth): a key without the scope is refused with 403
and says which one it lacks; a key over API_RATE_LIMIT_PER_MINUTE gets 429 with Retry-After (the one
throttle, crm.services.api_rate_take, kept in the database so it holds across web processes).
"""
from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja.security import APIKeyHeader as NinjaKeyHeader
from ninja.security import APIKeyQuery as NinjaKeyQuery

from crm import services
from crm.api.errors import ApiError
from crm.models import ApiKey, ApiScope


class ApiRequest(HttpRequest):
    """A request key_auth let in. ``auth`` is its API key (django-ninja sets it); views annotate their
    request with this type so that what they read of the key is checked."""

    auth: ApiKey


def authenticate(request: HttpRequest, scope: str) -> ApiKey:
    """The key of this request, allowed this scope and under its rate limit; else an ApiError."""
    raw = request.headers.get("X-API-Key") or request.GET.get("zapikey")
    key = services.api_key_authenticate(raw=raw) if raw else None
    if key is None:
        raise ApiError(401, "unauthorized", "Send a valid API key in the X-API-Key header or the zapikey query "
                       "parameter." if not raw else "This API key is not valid or was revoked.")
    if (wait := services.api_rate_take(key=key, now=timezone.now())) is not None:
        raise ApiError(429, "rate_limited", f"This key made {settings.API_RATE_LIMIT_PER_MINUTE} calls this minute, "
                       f"the most it may; try again in {wait} s.", retry_after=wait)
    if scope not in key.scopes:
        raise ApiError(403, "missing_scope", f"This API key does not have the scope {scope} "
                       f"({ApiScope(scope).label}); its scopes are: {', '.join(key.scopes) or 'none'}.",
                       required_scope=scope)
    return key


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
