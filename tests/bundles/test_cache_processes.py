"""The cache across processes and threads: one download per host, and a process killed mid-download leaves nothing used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelops_infra.bundles import BundleCache, RegistryClient, pack_bundle, push_packed
from tests.bundles.helpers import count, snapshot, staging_dirs

REPO_ROOT = Path(__file__).resolve().parents[2]


def fetcher(cache: Path, registry: str, repository: str, digest: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.bundles.fetcher", str(cache), registry, repository, digest, *extra],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def big_bundle(make_bundle, fresh_registry):
    """A bundle with a 20 MB random data file, pushed to a registry of its own."""
    root = make_bundle("big", {"sim.py": "def run(params, seed):\n    return {}\n", "pkg/util.py": "X = 1\n",
                               "data/big.bin": os.urandom(20 * 1024 * 1024)})
    packed = pack_bundle(root)
    with RegistryClient(fresh_registry.address, environ={}) as client:
        push_packed(client, packed, "tests/big")
    return root, packed


def test_processes_fetching_the_same_bundle_at_once_download_it_exactly_once(big_bundle, fresh_registry, tmp_path):
    root, packed = big_bundle
    data_digest = packed.layers[1].descriptor.digest
    go, ready = tmp_path / "go", tmp_path / "ready"
    ready.mkdir()
    procs = [fetcher(tmp_path / "cache", fresh_registry.address, "tests/big", packed.digest,
                     "--ready", str(ready), "--go", str(go)) for _ in range(4)]
    wait_for(lambda: len(list(ready.iterdir())) == 4, 60, "all four fetchers to be ready")
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"a fetcher failed:\n{err}"
        results.append(json.loads(out.strip().splitlines()[-1]))

    assert count(fresh_registry, "GET", f"/blobs/{data_digest}") == 1, (
        "four processes asking at once should make exactly one GET of the data blob"
    )
    assert count(fresh_registry, "GET", f"/manifests/{packed.digest}") == 1, "and one GET of the manifest"
    expected = snapshot(root)
    for result in results:
        assert result["digest"] == packed.digest and result["tree"] == expected, "every process should see the same tree"
    assert len({r["path"] for r in results}) == 1, "all processes should use the one cache entry"
    assert BundleCache(tmp_path / "cache").entries() == [packed.digest]


def test_a_fetch_killed_mid_download_leaves_nothing_that_a_later_fetch_uses(big_bundle, fresh_registry, tmp_path):
    root, packed = big_bundle
    cache_dir, started = tmp_path / "cache", tmp_path / "started"
    # 20 chunks of 1 MiB at 0.1 s each: the download takes ~2 s, so it is surely killed part way.
    proc = fetcher(cache_dir, fresh_registry.address, "tests/big", packed.digest,
                   "--started", str(started), "--chunk-delay", "0.1")
    try:
        wait_for(started.exists, 30, "the fetcher to start downloading")
        cache = BundleCache(cache_dir)
        dead_stages = [name for name in staging_dirs(cache) if f".{proc.pid}." in name]
        assert dead_stages, f"a staging dir named with pid {proc.pid} should exist mid-download: {staging_dirs(cache)}"
        assert cache.entries() == [], "a half-written bundle must never be visible as an entry"
        assert cache.get(packed.digest) is None
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert cache.entries() == [], "after the kill, the cache should still hold no entry"

    with RegistryClient(fresh_registry.address, environ={}) as client:
        local = cache.ensure("tests/big", packed.digest, client=client)

    assert snapshot(local.path) == snapshot(root), "the next fetch should produce the complete, correct tree"
    assert cache.entries() == [packed.digest]
    assert not any(f".{proc.pid}." in name for name in staging_dirs(cache)), (
        f"the next fetch should sweep the dead process's staging dir; left: {staging_dirs(cache)}"
    )
    assert staging_dirs(cache) == []


def test_threads_fetching_the_same_bundle_at_once_download_it_exactly_once(make_bundle, fresh_registry, tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    root = make_bundle("threads", {"sim.py": "def run(params, seed):\n    return {}\n",
                                   "data/big.bin": os.urandom(2 * 1024 * 1024)})
    packed = pack_bundle(root)
    with RegistryClient(fresh_registry.address, environ={}) as client:
        push_packed(client, packed, "tests/threads")
    cache, barrier = BundleCache(tmp_path / "cache"), Barrier(4)

    def fetch_one(_: int) -> str:
        barrier.wait(10)
        with RegistryClient(fresh_registry.address, environ={}) as client:
            return str(cache.ensure("tests/threads", packed.digest, client=client).path)

    with ThreadPoolExecutor(4) as pool:
        paths = set(pool.map(fetch_one, range(4)))

    assert len(paths) == 1, f"every thread should get the same entry, got {paths}"
    assert count(fresh_registry, "GET", f"/blobs/{packed.layers[1].descriptor.digest}") == 1, (
        "four threads asking at once should make exactly one GET of the data blob"
    )
