"""One scheme for every per-process cache: entries carry their version; one reset empties them all."""
from config.caches import VersionedCache, caches_registered, caches_reset
from dispatcher.models import RetryPolicy
from dispatcher.rendering.template import template_compile


def test_an_entry_is_built_again_when_its_version_changes():
    builds = []
    cache: VersionedCache[str, int] = VersionedCache("test: versions", size=10)
    build = lambda: builds.append(1) or len(builds)  # noqa: E731
    assert [cache.get("k", 1, build), cache.get("k", 1, build), cache.get("k", 2, build)] == [1, 1, 2]


def test_many_entries_are_built_in_one_call_and_a_full_cache_starts_over():
    calls = []
    cache: VersionedCache[int, str] = VersionedCache("test: many", size=3)

    def build(keys: list[int]) -> dict[int, str]:
        calls.append(sorted(keys))
        return {key: f"v{key}" for key in keys if key != 99}  # 99: deleted meanwhile

    assert cache.get_many({1: "a", 2: "a"}, build) == {1: "v1", 2: "v2"}
    assert cache.get_many({1: "a", 2: "b", 99: "a"}, build) == {1: "v1", 2: "v2"}
    assert calls == [[1, 2], [2, 99]]
    cache.get_many({3: "a", 4: "a"}, build)  # over the size: emptied, then filled with these
    assert sorted(cache.keys()) == [3, 4]


def test_one_reset_empties_every_cache_of_the_process(db):
    RetryPolicy.default_id()
    template_compile("${Deals.Amount}")
    cache: VersionedCache[str, int] = VersionedCache("test: reset", size=10)
    cache.get("k", 1, lambda: 1)
    caches_reset()
    assert RetryPolicy._default_id is None and template_compile.cache_info().currsize == 0
    assert list(cache.keys()) == []
    assert {"merge-field schemas", "compiled workflow rules", "engine webhooks", "engine organizations",
            "OAuth access tokens", "TLS contexts", "sender pool"} <= set(caches_registered())
