"""The API's throttles beside the per-key one (crm.services.api_rate_take), kept in the database like it, so
that they hold across web processes and machines:

- per organization: all its keys together make at most API_RATE_LIMIT_PER_ORGANIZATION calls a minute, so
  more keys do not buy an organization more calls;
- per client address: at most API_AUTH_FAILURES_PER_MINUTE calls a minute with an API key that is not valid.
  Each costs a key lookup; past the limit the address gets 429 until the minute ends, and the web process
  that refused it answers its next calls at once, without a query.

``client_address`` is the caller's address for these and for the admin's login lockout (django-axes).
"""
import collections
import datetime
import hashlib
import ipaddress
import threading

from django.conf import settings
from django.http import HttpRequest

from config.caches import cache_register
from crm.counters import counter_increment
from crm.models import ApiAddressWindow, ApiOrganizationWindow

ADDRESS_MAX_LENGTH = 64  # ApiAddressWindow.address
REFUSED_KEPT = 10_000  # addresses one process remembers refusing; forgotten all at once beyond (they expire anyway)
WINDOWS_KEPT = datetime.timedelta(hours=1)  # older minutes are purged (hourly, with the log purge)


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR; behind AXES_PROXY_COUNT proxies, the address the outermost of them saw (the entry of
    X-Forwarded-For that many from its end: what a client writes there itself comes before it and is ignored)."""
    remote = request.META.get("REMOTE_ADDR") or ""
    proxies = settings.AXES_IPWARE_PROXY_COUNT or 0
    if proxies > 0:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if len(hops) >= proxies and _is_address(hops[-proxies]):
            return hops[-proxies][:ADDRESS_MAX_LENGTH]
    return remote[:ADDRESS_MAX_LENGTH]


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def organization_rate_take(*, organization_id: int, now: datetime.datetime) -> int | None:
    """Count one call of the organization's keys in the current minute: None when it may go, else the seconds
    until the next minute (the 429's Retry-After). One conditional UPDATE decides, as for the per-key limit."""
    minute = now.replace(second=0, microsecond=0)
    if counter_increment(ApiOrganizationWindow, {"organization_id": organization_id, "minute": minute},
                         below=settings.API_RATE_LIMIT_PER_ORGANIZATION):
        return None
    return _seconds_left(now)


class _Refused:
    """Addresses this process has refused for failed authentication, until the end of their minute: their
    further calls are answered without a key lookup or a counter update. Thread-safe (gthread workers)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.until: dict[str, datetime.datetime] = {}

    def keep(self, address: str, until: datetime.datetime) -> None:
        with self.lock:
            if len(self.until) >= REFUSED_KEPT:
                self.until.clear()
            self.until[address] = until

    def refused(self, address: str, now: datetime.datetime) -> bool:
        with self.lock:
            until = self.until.get(address)
            if until is not None and now >= until:
                del self.until[address]
                until = None
        return until is not None

    def clear(self) -> None:
        with self.lock:
            self.until.clear()


refused_addresses = _Refused()


KNOWN_VALID_KEPT = 10_000  # digests of keys this process saw valid, so an address's guesses do not block them
_known_valid: "collections.OrderedDict[str, None]" = collections.OrderedDict()


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def known_valid(raw: str) -> bool:
    """Whether this process authenticated this key lately: such a key is let through to its normal check even
    from an address over API_AUTH_FAILURES_PER_MINUTE (clients behind one NAT or proxy share an address)."""
    return _digest(raw) in _known_valid


def known_valid_note(raw: str) -> None:
    digest = _digest(raw)
    _known_valid[digest] = None
    _known_valid.move_to_end(digest)
    if len(_known_valid) > KNOWN_VALID_KEPT:
        _known_valid.popitem(last=False)


def known_valid_forget(raw: str) -> None:
    _known_valid.pop(_digest(raw), None)


def address_refused(*, address: str, now: datetime.datetime) -> int | None:
    """Seconds until this process lets the address try keys again, or None: no query, so that refusing a
    key guesser costs nothing."""
    return _seconds_left(now) if refused_addresses.refused(address, now) else None


def auth_failure_take(*, address: str, now: datetime.datetime) -> int | None:
    """Count one call with a key that is not valid from address: None while under the limit (the caller
    answers 401), else the seconds until the next minute (429), remembered by this process until then."""
    minute = now.replace(second=0, microsecond=0)
    if counter_increment(ApiAddressWindow, {"address": address, "minute": minute},
                         below=settings.API_AUTH_FAILURES_PER_MINUTE):
        return None
    refused_addresses.keep(address, minute + datetime.timedelta(minutes=1))
    return _seconds_left(now)


def _seconds_left(now: datetime.datetime) -> int:
    return max(1, 60 - now.second)


def api_throttle_windows_purge(*, now: datetime.datetime) -> int:
    """Drop the minutes of the organization and address throttles older than an hour."""
    cutoff = now - WINDOWS_KEPT
    return (ApiOrganizationWindow.objects.filter(minute__lt=cutoff).delete()[0]
            + ApiAddressWindow.objects.filter(minute__lt=cutoff).delete()[0])


cache_register("refused client addresses", refused_addresses.clear)
cache_register("API keys known valid", _known_valid.clear)
