"""The size cap: least-recently-used bundles are evicted, but never one in use and never on a failed fetch."""

from __future__ import annotations

import os
import time

import pytest

from modelops_infra.bundles import BundleCache, RegistryClient, pack_bundle, push_packed
from modelops_infra.errors import RegistryNotFoundError, UnsafeArchiveError
from tests.bundles.helpers import code_layer, code_tar, push_raw, regular

SIZE = 100_000


@pytest.fixture
def pushed(make_bundle, client):
    """Push named bundles of ~100 kB each to the session registry; returns ``name -> digest``."""

    def _push(*names: str) -> dict[str, str]:
        out = {}
        for name in names:
            packed = pack_bundle(make_bundle(f"lru-{name}", {"sim.py": "def run(p, s):\n    return {}\n",
                                                          "blob.bin": os.urandom(SIZE)}))
            out[name] = push_packed(client, packed, "tests/lru").digest
        return out

    return _push


def fetch(cache: BundleCache, client: RegistryClient, digest: str):
    time.sleep(0.02)  # distinct LRU clocks even on coarse-mtime filesystems
    return cache.ensure("tests/lru", digest, client=client)


def fetch_leased(cache: BundleCache, client: RegistryClient, digest: str):
    time.sleep(0.02)
    return cache.ensure_leased("tests/lru", digest, client=client)


def capped_cache(tmp_path, client, digest: str, fits: float) -> BundleCache:
    """A cache whose cap holds ``fits`` bundles of the size of ``digest``."""
    probe = BundleCache(tmp_path / "probe")
    size = probe.ensure("tests/lru", digest, client=client).size
    return BundleCache(tmp_path / "cache", max_bytes=int(size * fits))


def test_the_least_recently_used_bundle_is_evicted_when_the_cap_is_exceeded(pushed, client, tmp_path):
    d = pushed("a", "b", "c")
    cache = capped_cache(tmp_path, client, d["a"], fits=2.5)
    fetch(cache, client, d["a"])
    fetch(cache, client, d["b"])
    time.sleep(0.02)
    assert cache.get(d["a"]) is not None  # using "a" makes "b" the least recently used
    fetch(cache, client, d["c"])
    assert set(cache.entries()) == {d["a"], d["c"]}, "only 2 of 3 fit: the least recently used ('b') should go"
    assert cache.total_size() <= cache.max_bytes


def test_a_leased_bundle_is_never_evicted_even_when_it_is_the_oldest(pushed, client, tmp_path):
    d = pushed("a", "b", "c", "d")
    cache = capped_cache(tmp_path, client, d["a"], fits=2.5)
    leased, lease = fetch_leased(cache, client, d["a"])
    fetch(cache, client, d["b"])
    fetch(cache, client, d["c"])
    assert set(cache.entries()) == {d["a"], d["c"]}, "the leased oldest bundle must stay; the next oldest goes"
    assert (leased.path / "sim.py").is_file(), "the leased bundle's tree should be intact"

    lease.release()
    fetch(cache, client, d["d"])
    assert set(cache.entries()) == {d["c"], d["d"]}, "once released, the oldest bundle can be evicted"


def test_the_bundle_just_fetched_is_kept_even_if_it_alone_exceeds_the_cap(pushed, client, tmp_path):
    d = pushed("a", "b")
    cache = capped_cache(tmp_path, client, d["a"], fits=0.5)
    fetch(cache, client, d["a"])
    local = fetch(cache, client, d["b"])
    assert cache.entries() == [d["b"]], "the bundle a caller is about to use must survive its own eviction pass"
    assert (local.path / "sim.py").is_file()


def test_a_failed_fetch_evicts_nothing(pushed, client, tmp_path):
    d = pushed("a", "b")
    cache = capped_cache(tmp_path, client, d["a"], fits=2.5)
    fetch(cache, client, d["a"])
    fetch(cache, client, d["b"])
    hostile = push_raw(client, "tests/lru", [code_layer(code_tar(regular("../escape", os.urandom(SIZE)), name="x"))])
    with pytest.raises(UnsafeArchiveError):
        fetch(cache, client, hostile)
    with pytest.raises(RegistryNotFoundError):
        fetch(cache, client, "sha256:" + "1" * 64)
    assert set(cache.entries()) == {d["a"], d["b"]}, "failed fetches must leave every cached bundle in place"
    for digest in (d["a"], d["b"]):
        assert (cache.get(digest).path / "blob.bin").stat().st_size == SIZE


def test_without_a_cap_nothing_is_evicted(pushed, client, cache):
    d = pushed("a", "b", "c")
    for digest in d.values():
        fetch(cache, client, digest)
    assert set(cache.entries()) == set(d.values())
    assert cache.evict() == []


def test_a_lease_held_by_another_process_protects_until_that_process_dies(pushed, client, registry, tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    d = pushed("a", "b", "c", "d")
    cache = capped_cache(tmp_path, client, d["a"], fits=2.5)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from modelops_infra.bundles import BundleCache, RegistryClient\n"
        f"c = BundleCache({str(cache.root)!r})\n"
        f"with RegistryClient({registry.address!r}, environ={{}}) as rc:\n"
        f"    _, lease = c.ensure_leased('tests/lru', {d['a']!r}, client=rc)\n"
        "print('leased', flush=True)\n"
        "time.sleep(120)\n"
    )], cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "leased", "setup: the other process should take a lease"
        fetch(cache, client, d["b"])
        fetch(cache, client, d["c"])
        assert d["a"] in cache.entries(), "a bundle leased by a live process must not be evicted"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    fetch(cache, client, d["d"])
    assert d["a"] not in cache.entries(), "a lease whose process died should no longer pin the bundle"
