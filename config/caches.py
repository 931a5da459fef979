"""What a process keeps in memory between requests and claims, in one place, with one reset.

Every cache here keeps an entry with the **version** of the data it was built from, and builds it again when
the caller's current version differs: one scheme, whatever the version is. The caches of the product:

====================================  ==========================  ==============================================
cache (where)                         key                         version: what makes it stale
====================================  ==========================  ==============================================
merge-field schemas, with the         module                      its organization's ``schema_version``, which
parameters compiled against them                                  crm.models.schema_changed renews on every
(dispatcher.rendering.merge)                                      module or field change
compiled workflow rules               module                      (latest ``modified_at``, count) of its rules
(workflows.engine)
the engine's webhooks, with           webhook                     its ``modified_at`` (a change of a parameter,
parameters, headers and captures                                  capture or header touches it; admin actions
(dispatcher.delivery.loader)                                      set it)
the engine's organizations and        id                          the moment it was read: one older than
retry policies                                                    RECENT_SECONDS is read again, so a change (an
(dispatcher.delivery.loader)                                      edition without webhooks, a new delay) applies
                                                                  within 10 s
the default retry policy's id         one entry                   none: the row comes with the migrations
(dispatcher.models.retry_policies)
TLS contexts (dispatcher.transport.sending)     the PEM texts               none: the key is the content
OAuth access tokens                   client                      their expiry (dispatcher.transport.sending._Tokens)
compiled templates, secret            the text                    none: functools.lru_cache of pure functions
spellings (dispatcher.rendering),
destinations of URLs
(dispatcher.models.endpoints)
client addresses refused for          address                     the end of the minute they were refused in
invalid API keys (crm.api.throttle)                               (the database keeps the count)
API keys seen valid, let past an      the key's SHA-256           none: a key that fails its normal check is
address's refusal (crm.api.throttle)                              forgotten
the sender pool and its HTTP          one per process             WEBHOOK_MAX_IN_FLIGHT…, WEBHOOK_EGRESS_PROXY
session (dispatcher.delivery.pool)
====================================  ==========================  ==============================================

``caches_reset()`` empties all of them. Tests call it before each test (their rolled-back rows reuse ids),
and a changed ``WEBHOOK_*`` setting calls it (dispatcher.signals). Nothing else needs to: every entry checks
its version when it is used.
"""
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_resets: dict[str, Callable[[], None]] = {}


def cache_register(name: str, reset: Callable[[], None]) -> None:
    """Make reset part of caches_reset() (for caches that are not a VersionedCache: lru_cache, tokens)."""
    _resets[name] = reset


def caches_reset() -> None:
    """Forget everything this process keeps; each cache is built again on its next use."""
    for reset in list(_resets.values()):
        reset()


def caches_registered() -> list[str]:
    return sorted(_resets)


class VersionedCache(Generic[K, V]):
    """Entries kept with the version they were built from, at most size of them (all dropped when full:
    simpler than LRU, and a cache that fills is one whose working set is far larger than it should be)."""

    def __init__(self, name: str, *, size: int) -> None:
        self.name, self.size = name, size
        self._entries: dict[K, tuple[Hashable, V]] = {}
        self._lock = threading.Lock()
        cache_register(name, self.clear)

    def get(self, key: K, version: Hashable, build: Callable[[], V]) -> V:
        """The entry for key if it was built from version, else build() kept as it."""
        kept = self._entries.get(key)
        if kept is not None and kept[0] == version:
            return kept[1]
        value = build()
        self._put({key: (version, value)})
        return value

    def get_many(self, versions: Mapping[K, Hashable], build: Callable[[list[K]], dict[K, V]]) -> dict[K, V]:
        """The entries of these keys at these versions, building the stale and missing ones in one call
        (a key build does not return, a row deleted meanwhile, is left out)."""
        fresh = {key: kept[1] for key, version in versions.items()
                 if (kept := self._entries.get(key)) is not None and kept[0] == version}
        stale = [key for key in versions if key not in fresh]
        built = build(stale) if stale else {}
        if built:
            self._put({key: (versions[key], value) for key, value in built.items()})
        return {**fresh, **built}

    def _put(self, entries: dict[K, tuple[Hashable, V]]) -> None:
        with self._lock:
            if len(self._entries) + len(entries) > self.size:
                self._entries.clear()
            self._entries.update(entries)

    def keys(self) -> Iterable[K]:
        return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
