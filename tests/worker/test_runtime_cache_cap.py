"""A worker keeps the bundles it ran warm, but gives them up when its cache goes over the cap.

Real registry, real cache, real child processes. Before this, a ``BundleRuntime``
held a lease on every bundle it had ever run until it closed, so eviction could
remove nothing and a long-lived worker's cache grew past its cap (on
Kubernetes: until the kubelet evicted the pod for filling its cache volume).
"""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest

from modelops_infra.bundles import BundleCache, BundleSettings, push_bundle
from modelops_infra.worker import BundleRuntime

CAP = 3 * 1024 * 1024
SIM = """
import time

def run(params, seed):
    time.sleep(params.get("sleep", 0))
    return {"seed": seed}
"""


def _bundles(make_bundle, registry, n: int, isolation: str | None) -> list[tuple[str, str]]:
    out = []
    for i in range(n):
        root = make_bundle(f"big{i}-{isolation}", {"sim.py": SIM, "data.bin": random.randbytes(CAP // 3)})
        if isolation:
            manifest = json.loads((root / "manifest.json").read_text())
            (root / "manifest.json").write_text(json.dumps({**manifest, "isolation": isolation}))
        pushed = push_bundle(root, registry.address)
        out.append((pushed.reference.repository, pushed.digest))
    return out


@pytest.mark.parametrize("isolation", [None, "process"])
def test_warm_bundles_are_released_least_recently_used_first_when_the_cache_is_over_its_cap(
        tmp_path: Path, registry, make_bundle, isolation: str | None) -> None:
    # Four threads: room for a warm child per bundle, so only the release can stop one.
    runtime = BundleRuntime(BundleSettings(registry=registry.address, cache_dir=tmp_path / "cache",
                                           cache_max_bytes=CAP), threads=4)
    try:
        bundles = _bundles(make_bundle, registry, 4, isolation)
        for seed, (repository, digest) in enumerate(bundles):
            assert runtime.run(repository, digest, None, {}, seed) == {"seed": seed}
        cache = BundleCache(tmp_path / "cache")
        assert cache.total_size() <= CAP
        assert cache.get(bundles[0][1]) is None, "the least recently used bundle is evicted"
        assert cache.get(bundles[-1][1]) is not None
        kept = [digest for _, digest in bundles if cache.get(digest) is not None]
        assert 0 < len(kept) < 4
        if isolation:
            # A released bundle's idle child was stopped with it; the kept ones stay warm.
            assert runtime.pool.stats()["idle"] == len(kept)
        # A released bundle runs again: fetched again, verified.
        assert runtime.run(*bundles[0], None, {}, 9) == {"seed": 9}
    finally:
        runtime.close()


def test_a_bundle_a_task_is_running_is_never_released(tmp_path: Path, registry, make_bundle) -> None:
    runtime = BundleRuntime(BundleSettings(registry=registry.address, cache_dir=tmp_path / "cache",
                                           cache_max_bytes=CAP), threads=2)
    try:
        first, *rest = _bundles(make_bundle, registry, 4, None)
        outcome: list[object] = []
        running = threading.Thread(target=lambda: outcome.append(runtime.run(*first, None, {"sleep": 10.0}, 0)))
        running.start()
        try:
            for seed, bundle in enumerate(rest, 1):
                assert runtime.run(*bundle, None, {}, seed) == {"seed": seed}
            assert running.is_alive(), "the first task must still be running for this test to mean anything"
            # The oldest bundle is still in use, so it stays; the others made room around it.
            assert BundleCache(tmp_path / "cache").get(first[1]) is not None
        finally:
            running.join()
        assert outcome == [{"seed": 0}]
    finally:
        runtime.close()
