"""Worker image benchmarks (issue 9): ratios measured side by side in one run.

* cold build: ``build_worker_image`` into an empty target repository with an empty uv cache, vs
  ``docker build`` of ``docker/worker.Dockerfile`` on the same base with Docker's cache empty (a
  daemon with a fresh data root). Both install from one loopback index that holds the wheels of the
  resolved worker install, so the network is the same for both;
* rebuild after one source change (one line added to one module) vs the cold build; the cold
  build starts with an empty layer cache of its own, which the rebuild then finds;
* a no-op ``pulumi up`` of a program with one ``WorkerImage`` vs the same program without it.

Uploaded bytes are reported for each build (the Docker side uploads nothing: it builds locally;
``docker push`` of its result is timed and reported for context). Rounds alternate the sides.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from benchmarks._result import Result
from harness.images import base_rootfs_tar, push_rootfs_image, start_dockerd
from harness.services import REPO_ROOT, start_package_index, start_registry
from modelops_infra.bundles import RegistryClient
from modelops_infra.bundles._envbuild import compile_pins, platform_tags
from modelops_infra.infra.image import WorkerInstall, build_worker_image, checkout_files
from modelops_infra.infra.image._venv import PYTHON_PLATFORM

EXTRA_PACKAGES = ("bokeh>=3.1",)
BUILD_BACKEND = ("setuptools>=77", "wheel")


def _copy_checkout(dest: Path) -> Path:
    for rel in checkout_files(REPO_ROOT):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / rel, dest / rel)
    (dest / "docker").mkdir(exist_ok=True)
    shutil.copyfile(REPO_ROOT / "docker" / "worker.Dockerfile", dest / "docker" / "worker.Dockerfile")
    return dest


def _wheels(checkout: Path, dest: Path) -> None:
    """Resolve the worker install for the image's platform and download every wheel into ``dest``."""
    reqs = dest.parent / "worker-requirements.in"
    reqs.write_text(f"modelops-infra[azure] @ {checkout.as_uri()}\nuv\n" + "".join(f"{p}\n" for p in EXTRA_PACKAGES))
    pins = [p for p in compile_pins(reqs, dest.parent, python_version="3.11", platform=PYTHON_PLATFORM,
                                    env=dict(os.environ), step="resolving the worker install")
            if not p.startswith("modelops-infra")]
    platforms = [arg for tag in platform_tags("manylinux_2_28_x86_64") for arg in ("--platform", tag)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--implementation", "cp", "--python-version", "3.11", *platforms, "--dest", str(dest), *pins],
                   check=True, timeout=900)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "--dest",
                    str(dest), *BUILD_BACKEND], check=True, timeout=600)


def _timed(fn, *args, **kw):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - start, out


def _assembled(registry: str, base_ref: str, checkout: Path, index_url: str, repo: str, uv_cache: Path,  # type: ignore[no-untyped-def]
               layer_cache: Path):
    os.environ["UV_CACHE_DIR"] = str(uv_cache)
    try:
        install = WorkerInstall(checkout, extra_packages=EXTRA_PACKAGES, index_url=index_url)
        return _timed(build_worker_image, base_ref, f"{registry}/{repo}", install, layer_cache=layer_cache)
    finally:
        os.environ.pop("UV_CACHE_DIR", None)


def _docker_build(base_ref: str, context: Path, index_url: str, registry: str, work: Path) -> tuple[float, float]:
    """(build seconds, push seconds) of the Dockerfile with a daemon of its own (empty cache)."""
    os.environ["DOCKER_BUILDKIT"] = "0"  # the classic builder: the Debian engine here has no buildx
    daemon = start_dockerd()
    try:
        tag = f"{registry}/bench/dockerfile-worker:{time.monotonic_ns()}"
        build, _ = _timed(daemon.docker, "build", "--network", "host", "--quiet", "-f",
                          str(context / "docker" / "worker.Dockerfile"), "--build-arg", f"BASE_IMAGE={base_ref}",
                          "--build-arg", f"PIP_INDEX_URL={index_url}", "--build-arg", f"UV_DEFAULT_INDEX={index_url}",
                          "-t", tag, str(context), timeout=1800)
        push, _ = _timed(daemon.docker, "push", "-q", tag, timeout=900)
        return build, push
    finally:
        daemon.stop()
        os.environ.pop("DOCKER_BUILDKIT", None)


#: Both programs hold one trivial dynamic resource, as every stack holds one (the BundleSmokeTest), so
#: the dynamic-provider host starts on both sides and the ratio is the WorkerImage's own cost.
_PROGRAM = textwrap.dedent("""
    import pulumi
    from pulumi.dynamic import CreateResult, Resource, ResourceProvider
    {imports}

    class Noop(ResourceProvider):
        def create(self, props):
            return CreateResult("noop", props)

    class Trivial(Resource):
        def __init__(self, name):
            super().__init__(Noop(), name, {{"value": 1}})

    Trivial("trivial")
    {resource}
    pulumi.export("answer", 42)
""")


def _project(root: Path, name: str, resource: str) -> Path:
    root.mkdir(parents=True)
    (root / "Pulumi.yaml").write_text(f"name: {name}\nruntime:\n  name: python\n  options:\n"
                                      f"    virtualenv: {REPO_ROOT / '.venv'}\n")
    imports = "from modelops_infra.infra.image.provider import WorkerImage, WorkerImageArgs" if resource else ""
    (root / "__main__.py").write_text(_PROGRAM.format(imports=imports, resource=resource))
    return root


def _noop_ups(base_ref: str, registry: str, checkout: Path, work: Path, rounds: int) -> tuple[list[float], list[float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "VIRTUAL_ENV"))}
    env.update({"PULUMI_BACKEND_URL": (work / "state").as_uri(), "PULUMI_CONFIG_PASSPHRASE": "",
                "MODELOPS_IMAGE_LAYER_CACHE": str(work / "layers-noop"),
                "PULUMI_SKIP_UPDATE_CHECK": "true", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true"})
    (work / "state").mkdir()
    resource = (f"WorkerImage('worker', WorkerImageArgs(base_image={base_ref!r}, "
                f"target={registry + '/bench/noop-worker'!r}, checkout={str(checkout)!r}, "
                f"extra_packages={list(EXTRA_PACKAGES)!r}))")
    projects = {"with": _project(work / "with", "imgwith", resource), "without": _project(work / "without", "imgno", "")}

    def pulumi(project: Path, *args: str) -> float:
        start = time.perf_counter()
        proc = subprocess.run(["pulumi", *args, "--non-interactive"], cwd=project, env=env, capture_output=True,
                              text=True, timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"pulumi {' '.join(args)} in {project} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
        return time.perf_counter() - start

    for project in projects.values():
        pulumi(project, "stack", "init", "bench")
        pulumi(project, "up", "--yes", "--skip-preview")  # the first up builds the image; not timed
    times: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for side, project in projects.items():
            times[side].append(pulumi(project, "up", "--yes", "--skip-preview"))
    return times["with"], times["without"]


def run(rounds: int = 3) -> list[Result]:
    build_rounds = max(1, min(rounds, 2))  # a cold build takes minutes
    with tempfile.TemporaryDirectory(prefix="modelops-image-bench-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            with RegistryClient(registry.address) as client:
                base = push_rootfs_image(client, "base/bookworm", "python3", base_rootfs_tar())
            base_ref = f"{registry.address}/base/bookworm:python3"
            checkout = _copy_checkout(work / "checkout")
            (work / "wheels").mkdir()
            _wheels(checkout, work / "wheels")
            index = start_package_index(work / "wheels", work / "index")
            cold, docker, push, rebuild = [], [], [], []
            cold_bytes = rebuild_bytes = 0
            rebuild_timings: dict[str, float] = {}
            try:
                for i in range(build_rounds):
                    seconds, built = _assembled(registry.address, base_ref, checkout, index.url, f"bench/cold{i}",
                                                work / f"uv-cold{i}", work / f"layers-cold{i}")
                    cold.append(seconds)
                    cold_bytes = built.bytes_uploaded
                    b, p = _docker_build(base_ref, checkout, index.url, registry.address, work)
                    docker.append(b)
                    push.append(p)
                    module = checkout / "modelops_infra" / "infra" / "image" / "_venv.py"
                    module.write_text(module.read_text() + f"\n# benchmark edit {i}\n")
                    seconds, rebuilt = _assembled(registry.address, base_ref, checkout, index.url, f"bench/cold{i}",
                                                  work / f"uv-cold{i}", work / f"layers-cold{i}")
                    rebuild.append(seconds)
                    rebuild_bytes = rebuilt.bytes_uploaded
                    rebuild_timings = rebuilt.timings
                    assert rebuilt.digest != built.digest
                    assert rebuilt.dependencies_cached and not built.dependencies_cached
            finally:
                index.stop()
            # pinned by digest, as the default modelops:workspace.baseImage is
            pinned = f"{registry.address}/base/bookworm@{base.digest}"
            with_image, without = _noop_ups(pinned, registry.address, checkout, work, rounds)
        finally:
            registry.stop()
    c, d, r = statistics.median(cold), statistics.median(docker), statistics.median(rebuild)
    w, wo = statistics.median(with_image), statistics.median(without)
    return [
        Result("image: cold build vs docker", c / d, "<=1.0", c / d <= 1.0,
               f"WorkerImage {c:.1f} s, {cold_bytes / 1e6:.1f} MB uploaded; docker build {d:.1f} s "
               f"(+ docker push {statistics.median(push):.1f} s); median of {build_rounds}"),
        Result("image: rebuild vs cold", r / c, "<=0.2", r / c <= 0.2,
               f"one source line changed: {r:.1f} s, {rebuild_bytes / 1e6:.2f} MB uploaded (dependencies layer "
               f"from the local cache); cold {c:.1f} s; last rebuild's steps {rebuild_timings}"),
        Result("image: no-op up vs without", w / wo, "<=1.1", w / wo <= 1.1,
               f"pulumi up with a WorkerImage {w:.2f} s vs without {wo:.2f} s (median of {rounds}; both with one"
               " trivial dynamic resource; base pinned by digest, as the default); nothing built"),
    ]
