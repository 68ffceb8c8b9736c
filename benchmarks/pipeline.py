"""Bundle-pipeline benchmarks: ratios measured side by side in one run, against real services.

Each benchmark prints its ratio next to the bar it must meet. Absolute times
are printed for context only; on a shared 2-core machine only the ratios mean
anything.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed import Client

from benchmarks._result import Result
from harness.services import Registry, start_dask, start_registry
from modelops_infra.bundles import BundleCache, RegistryClient, push_bundle
from modelops_infra.client import DaskSimulationService, SimTask
from modelops_infra.worker import fetch_bundle_task

TINY_SOURCE = "def tiny(params, seed):\n    return {'x': params['x'] * 2, 'seed': seed}\n"


def _plain_tiny(work: Path) -> Callable[[dict[str, Any], int], dict[str, Any]]:
    """The bundle's entry function from the same source, installed as an importable module everywhere.

    ``PYTHONPATH`` is set before the cluster starts, so scheduler and workers import
    ``tiny_baseline`` by reference, exactly like any library function sent with ``client.map``.
    """
    import importlib
    import sys

    lib = work / "baseline-lib"
    lib.mkdir(parents=True, exist_ok=True)
    (lib / "tiny_baseline.py").write_text(TINY_SOURCE)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(lib), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(lib))
    return importlib.import_module("tiny_baseline").tiny



def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _write_bundle(root: Path, name: str, data_mb: int = 0, source: str = TINY_SOURCE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "manifest.json").write_text(json.dumps({"name": name, "version": "1.0.0", "entrypoint": "tiny:tiny"}))
    (root / "tiny.py").write_text(source)
    if data_mb:
        data = root / "data"
        data.mkdir(exist_ok=True)
        with open(data / "inputs.bin", "wb") as fh:
            for _ in range(data_mb):
                fh.write(os.urandom(1 << 20))
    return root


def warm_overhead(registry: Registry, work: Path, tasks: int, rounds: int) -> Result:
    bundle = _write_bundle(work / "tiny", "tiny")
    ref = str(push_bundle(bundle, registry.address).reference)
    tiny = _plain_tiny(work)
    cluster = start_dask(work / "dask-warm", workers=2, nthreads=1, worker_env={
        "MODELOPS_BUNDLE_REGISTRY": registry.address, "MODELOPS_BUNDLE_CACHE_DIR": str(work / "cache-warm")})
    try:
        with Client(cluster.scheduler_address) as client:
            svc = DaskSimulationService(client)
            svc.gather(svc.submit_batch([SimTask(ref, {"x": i}, i) for i in range(20)]))  # warm every worker
            ours, plain = [], []
            for r in range(rounds):
                # interleave so machine noise hits both sides alike; fresh seeds so keys never repeat
                base = (r + 1) * 1_000_000
                ours.append(_timed(lambda base=base: svc.gather(svc.submit_batch(
                    [SimTask(ref, {"x": i}, base + i) for i in range(tasks)]))))
                plain.append(_timed(lambda base=base: client.gather(client.map(
                    tiny, [{"x": i} for i in range(tasks)], [base + i for i in range(tasks)], pure=False))))
    finally:
        cluster.stop()
    ratio = statistics.median(ours) / statistics.median(plain)
    return Result("warm overhead (2,000 tasks)", ratio, "<= 1.15", ratio <= 1.15,
                  f"service {statistics.median(ours):.2f} s vs client.map {statistics.median(plain):.2f} s "
                  f"(median of {rounds}, {tasks} tasks)")


def cold_pull(registry: Registry, work: Path, size_mb: int, rounds: int) -> Result:
    bundle = _write_bundle(work / "big", "big", data_mb=size_mb)
    pushed = push_bundle(bundle, registry.address)
    with RegistryClient(registry.address) as rc:
        raw, _ = rc.get_manifest(pushed.reference.repository, pushed.digest)
    data_layer = max(json.loads(raw)["layers"], key=lambda layer: layer["size"])
    url = f"http://{registry.address}/v2/{pushed.reference.repository}/blobs/{data_layer['digest']}"
    ours, floor = [], []
    for r in range(rounds):
        cache_dir = work / f"cold-cache-{r}"

        def pull(cache_dir: Path = cache_dir) -> None:
            with RegistryClient(registry.address) as rc:
                BundleCache(cache_dir).ensure(pushed.reference.repository, pushed.digest, client=rc)

        ours.append(_timed(pull))
        floor.append(_timed(lambda: subprocess.run(f"curl -s {url} | openssl dgst -sha256", shell=True, check=True,
                                                    capture_output=True)))
        subprocess.run(["rm", "-rf", str(cache_dir)], check=True)
    ratio = statistics.median(ours) / statistics.median(floor)
    return Result(f"cold pull ({size_mb} MB)", ratio, "<= 1.5", ratio <= 1.5,
                  f"verified cache fetch {statistics.median(ours):.2f} s vs curl|openssl {statistics.median(floor):.2f} s")


def repush(registry: Registry, work: Path, size_mb: int) -> Result:
    bundle = _write_bundle(work / "repush", "repush", data_mb=size_mb)
    repo = "bench/repush"
    first_t = time.perf_counter()
    first = push_bundle(bundle, registry.address, repo)
    first_t = time.perf_counter() - first_t
    again_t = time.perf_counter()
    again = push_bundle(bundle, registry.address, repo)
    again_t = time.perf_counter() - again_t
    (bundle / "tiny.py").write_text(TINY_SOURCE + "# changed\n")
    changed = push_bundle(bundle, registry.address, repo)
    ratio = again_t / first_t
    ok = ratio <= 0.05 and again.bytes_uploaded == 0 and changed.bytes_uploaded < 1_000_000
    return Result(f"re-push ({size_mb} MB)", ratio, "<= 0.05", ok,
                  f"first {first_t:.2f} s / {first.bytes_uploaded} B; unchanged {again_t:.3f} s / "
                  f"{again.bytes_uploaded} B; one source file changed: {changed.bytes_uploaded} B uploaded")


def fan_out(registry: Registry, work: Path, size_mb: int, rounds: int = 3) -> Result:
    """4 worker processes sharing one cache fetch a cold bundle at once, vs one worker alone.

    Both clusters run side by side; each round pushes a new variant of the bundle
    (same data blob, new code, so a new digest that neither cache has) and times
    both fetches, alternating which goes first. Medians over the rounds.
    """
    bundle = _write_bundle(work / "fan", "fan", data_mb=size_mb)
    clusters = {}
    try:
        for label, n in (("single", 1), ("fan-out", 4)):
            clusters[label] = start_dask(work / f"dask-{label}", workers=n, nthreads=1, worker_env={
                "MODELOPS_BUNDLE_REGISTRY": registry.address, "MODELOPS_BUNDLE_CACHE_DIR": str(work / f"fan-{label}")})
        times: dict[str, list[float]] = {"single": [], "fan-out": []}
        gets: list[int] = []
        for r in range(rounds):
            (bundle / "tiny.py").write_text(TINY_SOURCE + f"# variant {r}\n")
            pushed = push_bundle(bundle, registry.address, "bench/fanout")
            with RegistryClient(registry.address) as rc:
                raw, _ = rc.get_manifest(pushed.reference.repository, pushed.digest)
            data_digest = max(json.loads(raw)["layers"], key=lambda layer: layer["size"])["digest"]
            order = ["single", "fan-out"] if r % 2 == 0 else ["fan-out", "single"]
            for label in order:
                with Client(clusters[label].scheduler_address) as client:
                    addrs = sorted(client.scheduler_info()["workers"])
                    before = registry.requests_matching("GET", data_digest)
                    start = time.perf_counter()
                    client.gather([client.submit(fetch_bundle_task, pushed.reference.repository, pushed.digest,
                                                 workers=[a], pure=False) for a in addrs])
                    times[label].append(time.perf_counter() - start)
                    if label == "fan-out":
                        gets.append(registry.requests_matching("GET", data_digest) - before)
    finally:
        for cluster in clusters.values():
            cluster.stop()
    single, fan = statistics.median(times["single"]), statistics.median(times["fan-out"])
    ratio = fan / single
    ok = ratio <= 1.3 and all(g == 1 for g in gets)
    return Result(f"fan-out (4 procs, {size_mb} MB)", ratio, "<= 1.3", ok,
                  f"4 workers {fan:.2f} s vs 1 worker {single:.2f} s (median of {rounds}); "
                  f"registry GETs of the data blob per fan-out: {gets}")


def run(*, size_mb: int = 200, tasks: int = 2000, rounds: int = 3) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="modelops-bench-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            return [
                warm_overhead(registry, work, tasks, rounds),
                cold_pull(registry, work, size_mb, rounds),
                repush(registry, work, size_mb),
                fan_out(registry, work, size_mb, rounds),
            ]
        finally:
            registry.stop()
