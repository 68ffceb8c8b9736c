"""Real services for tests: a CNCF distribution registry, Dask scheduler/worker processes,
and a PEP 503 package index on loopback serving the wheelhouse ``make test`` downloads.

Nothing here is mocked. A missing binary or wheelhouse fails the test run with a
message saying how to get it (``make test`` sets up everything).
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from harness.netns import Namespace
from modelops_infra.infra.local._processes import ProcessHandle, spawn_detached, tail, wait_until
from modelops_infra.infra.local.registry import REGISTRY_BINARIES, registry_config_yaml
from modelops_infra.infra.local.workspace import scheduler_argv, worker_argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def registry_binary() -> str:
    for name in REGISTRY_BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no OCI distribution registry on PATH (docker-registry); run `make test`, which installs it")


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text() if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{text[-3000:]}")
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready within {timeout} s")


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)


@dataclass
class Registry:
    """A running registry. ``log`` is its combined log, including the access log."""

    address: str
    root: Path
    log: Path
    proc: subprocess.Popen
    storage: Path

    def requests_matching(self, method: str, path_fragment: str) -> int:
        """Count access-log lines for ``method`` requests whose path contains ``path_fragment``."""
        needle = f'"{method} '
        return sum(1 for line in self.log.read_text().splitlines() if needle in line and path_fragment in line)

    def blob_data_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"

    def stop(self) -> None:
        stop(self.proc)


def start_registry(root: Path, *, htpasswd: Path | None = None, port: int | None = None,
                   netns: Namespace | None = None) -> Registry:
    """A registry on loopback, or inside ``netns`` at its address when given."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    storage = root / "data"
    config = root / "config.yml"
    host = netns.ns_ip if netns else "127.0.0.1"
    config.write_text(registry_config_yaml(port, storage, htpasswd=htpasswd, host=host))
    log = root / "registry.log"
    argv = [registry_binary(), "serve", str(config)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(netns.exec(*argv) if netns else argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    address = f"{host}:{port}"
    _wait(lambda: requests.get(f"http://{address}/v2/", timeout=1).status_code in (200, 401), 20,
          f"registry on {address}", proc, log)
    return Registry(address, root, log, proc, storage)


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    import bcrypt

    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n" for u, p in users.items()))
    return path


@dataclass
class DaskCluster:
    """A scheduler and workers started as the local stack starts them (same argv, detached processes)."""

    scheduler_address: str
    dashboard_port: int
    root: Path
    procs: list[ProcessHandle] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-4000:] for p in sorted(self.root.glob("*.log")))

    def diagnose(self) -> str:
        """What the cluster is doing now, for a failed test's report: tasks each worker is processing,
        the Python stacks of its running tasks, and the tail of every log. Never raises."""
        parts = []
        try:
            from distributed import Client

            with Client(self.scheduler_address, timeout=10, set_as_default=False) as client:
                info = client.scheduler_info(n_workers=-1)["workers"]
                parts.append("workers: " + ", ".join(f"{a} ({w.get('status')})" for a, w in info.items()))
                parts.append(f"processing: {client.processing()}")
                # a lambda is pickled by value: the scheduler cannot import harness/
                states = client.run_on_scheduler(lambda dask_scheduler: {
                    str(k): (t.state, t.processing_on.address if t.processing_on else None,
                             [w.address for w in t.who_has]) for k, t in dask_scheduler.tasks.items()})
                parts.append(f"tasks on the scheduler: {states}")
                parts.append(f"call stacks: {client.call_stack()}")
        except Exception as exc:  # a diagnosis must not hide the failure it explains
            parts.append(f"(cluster state unavailable: {type(exc).__name__}: {exc})")
        parts.append(f"processes (pid, alive): {[(p.pid, p.alive()) for p in self.procs]}")
        parts.append(self.logs())
        return "\n".join(parts)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def start_dask(root: Path, *, workers: int = 1, nthreads: int = 2, worker_env: Mapping[str, str] | None = None,
               preload: bool = True) -> DaskCluster:
    """Start a scheduler and ``workers`` worker processes with the local stack's own argv
    (:func:`scheduler_argv`, :func:`worker_argv`: ``--preload modelops_infra.worker`` unless
    ``preload`` is false) as detached processes, and wait until every worker has joined."""
    root.mkdir(parents=True, exist_ok=True)
    port, dash = free_port(), free_port()
    cluster = DaskCluster(f"tcp://127.0.0.1:{port}", dash, root)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_BUNDLE_")}
    scheduler = spawn_detached(scheduler_argv(port, dash), log=root / "scheduler.log", env=base_env)
    cluster.procs.append(scheduler)
    if not wait_until(lambda: requests.get(f"http://127.0.0.1:{dash}/health", timeout=1).ok, timeout=30,
                      alive=scheduler):
        cluster.stop()
        raise RuntimeError(f"dask scheduler not ready within 30 s:\n{tail(root / 'scheduler.log', 40)}")
    env = {**base_env, **(worker_env or {})}
    cluster.worker_env = dict(worker_env or {})
    try:
        for i in range(workers):
            argv = worker_argv(cluster.scheduler_address, f"w{i}", nthreads, "auto", str(root / f"w{i}"))
            if not preload:  # for the tests that register the plugin from the client instead
                at = argv.index("--preload")
                del argv[at:at + 2]
            cluster.procs.append(spawn_detached(argv, log=root / f"worker{i}.log", env=env))
        from distributed import Client

        with Client(cluster.scheduler_address, timeout=30) as client:
            deadline = time.monotonic() + 60
            while len(client.scheduler_info(n_workers=-1)["workers"]) < workers:
                if not all(p.alive() for p in cluster.procs) or time.monotonic() > deadline:
                    raise RuntimeError(f"dask workers did not start:\n{cluster.logs()}")
                time.sleep(0.1)
    except BaseException:
        cluster.stop()  # nothing started here outlives a failed start
        raise
    return cluster


# --- package index ----------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE_DIR_FILE = REPO_ROOT / ".modelops" / "wheelhouse-dir"


def wheelhouse_dir() -> Path:
    """The wheelhouse ``make test`` downloaded (scripts/wheelhouse.sh, pins in scripts/wheelhouse.txt).

    ``MODELOPS_TEST_WHEELHOUSE`` names it if set, else ``.modelops/wheelhouse-dir``
    (written by ``make wheelhouse``). Raises RuntimeError when neither leads to a
    directory holding wheels: tests never skip for want of it.
    """
    env = os.environ.get("MODELOPS_TEST_WHEELHOUSE")
    if env:
        path, source = Path(env), "MODELOPS_TEST_WHEELHOUSE"
    elif WHEELHOUSE_DIR_FILE.is_file():
        path, source = Path(WHEELHOUSE_DIR_FILE.read_text().strip()), str(WHEELHOUSE_DIR_FILE)
    else:
        raise RuntimeError(f"no wheelhouse: {WHEELHOUSE_DIR_FILE} is missing; run `make test`, which downloads it")
    if not path.is_dir() or not any(path.glob("*.whl")):
        raise RuntimeError(f"no wheels in {path} (named by {source}); run `make test`, which downloads it")
    return path


def normalize_project_name(name: str) -> str:
    """PEP 503 normalization: ``Foo.Bar_baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PackageIndex:
    """A PEP 503 "simple" index on 127.0.0.1, served by a ``python -m http.server`` process.

    ``url`` is for ``--index-url``; ``find_links_url`` is one flat page linking every
    wheel, for ``--find-links``. Links carry ``#sha256=`` as PyPI's do (pip checks it).
    ``wheels`` are the file names served; ``log`` is the access log.
    """

    url: str
    find_links_url: str
    root: Path
    wheels: tuple[str, ...]
    log: Path
    proc: subprocess.Popen

    def requests_matching(self, path_fragment: str) -> int:
        """Count GET requests whose path contains ``path_fragment``."""
        return sum(1 for line in self.log.read_text().splitlines() if '"GET ' in line and path_fragment in line)

    def stop(self) -> None:
        stop(self.proc)


def _select_wheels(wheelhouse: Path, only: Iterable[str] | None) -> list[Path]:
    wheels = sorted(wheelhouse.glob("*.whl"))
    if only is None:
        return wheels
    prefixes = list(only)
    unmatched = [p for p in prefixes if not any(w.name.startswith(p) for w in wheels)]
    if unmatched:
        raise ValueError(f"no wheel in {wheelhouse} starts with {unmatched}; it has {[w.name for w in wheels]}")
    return [w for w in wheels if any(w.name.startswith(p) for p in prefixes)]


def _links_page(title: str, links: Iterable[tuple[str, str]]) -> str:
    anchors = "".join(f'<a href="{html.escape(href)}">{html.escape(text)}</a><br>\n' for href, text in links)
    return (f'<!DOCTYPE html>\n<html><head><meta name="pypi:repository-version" content="1.0">'
            f"<title>{html.escape(title)}</title></head>\n<body><h1>{html.escape(title)}</h1>\n{anchors}</body></html>\n")


def write_simple_index(wheelhouse: Path, root: Path, *, only: Iterable[str] | None = None) -> tuple[str, ...]:
    """Lay out a PEP 503 index under ``root``; returns the wheel file names it serves.

    Wheels are copied into ``root/files/`` (copies, so a test that tampers with one
    cannot corrupt the shared wheelhouse). ``root/simple/index.html`` lists the
    projects, ``root/simple/<normalized-name>/index.html`` links each project's
    wheels as ``../../files/<wheel>#sha256=<hex>``, and ``root/files/index.html``
    links them all (the find-links page). ``only`` keeps just the wheels whose file
    name starts with one of its prefixes (``["packaging-24.2"]``); a prefix matching
    nothing raises ValueError, so a typo cannot pass for a missing version.
    """
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    projects: dict[str, list[tuple[str, str]]] = {}
    flat: list[tuple[str, str]] = []
    for wheel in _select_wheels(wheelhouse, only):
        copy = files / wheel.name
        shutil.copyfile(wheel, copy)
        digest = hashlib.sha256(copy.read_bytes()).hexdigest()
        project = normalize_project_name(wheel.name.split("-", 1)[0])
        projects.setdefault(project, []).append((f"../../files/{wheel.name}#sha256={digest}", wheel.name))
        flat.append((f"{wheel.name}#sha256={digest}", wheel.name))
    simple = root / "simple"
    for project, links in projects.items():
        (simple / project).mkdir(parents=True, exist_ok=True)
        (simple / project / "index.html").write_text(_links_page(f"Links for {project}", links))
    simple.mkdir(parents=True, exist_ok=True)
    (simple / "index.html").write_text(_links_page("Simple index", ((f"{p}/", p) for p in sorted(projects))))
    (files / "index.html").write_text(_links_page("Wheels", flat))
    return tuple(name for _, name in flat)


def start_package_index(wheelhouse: Path, root: Path, *, only: Iterable[str] | None = None,
                        netns: Namespace | None = None) -> PackageIndex:
    """Write an index of ``wheelhouse`` under ``root`` (see write_simple_index) and serve it on loopback,
    or inside ``netns`` at its address when given.

    The server speaks HTTP/1.1 (connections are kept alive, as PyPI's are) and runs in its
    own session; ``PackageIndex.stop()`` ends it. Raises RuntimeError if it does not answer
    within 20 s.
    """
    root.mkdir(parents=True, exist_ok=True)
    wheels = write_simple_index(wheelhouse, root, only=only)
    port = free_port()
    host = netns.ns_ip if netns else "127.0.0.1"
    log = root / "http.log"
    argv = [sys.executable, "-m", "http.server", "--bind", host, "--protocol", "HTTP/1.1", str(port),
            "--directory", str(root)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(netns.exec(*argv) if netns else argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://{host}:{port}"
    _wait(lambda: requests.get(f"{base}/simple/", timeout=1).ok, 20, f"package index on {base}", proc, log)
    return PackageIndex(f"{base}/simple", f"{base}/files/", root, wheels, log, proc)


def installer_env(cache_dir: Path) -> dict[str, str]:
    """Environment for pip and uv subprocesses that may use only a PackageIndex on loopback.

    The caller's ``PIP_*``/``UV_*`` settings and pip/uv config files are dropped (an
    index URL or find-links there would add sources), caches go under ``cache_dir``,
    and every non-loopback HTTP(S) request is sent to a proxy on a closed loopback
    port, so it fails at once instead of leaving the machine.
    """
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_")) and k.lower() not in proxies}
    blackhole = "http://127.0.0.1:9"  # discard port: nothing listens there
    env.update({
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_CACHE_DIR": str(cache_dir / "pip"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "UV_NO_CONFIG": "1",
        "UV_CACHE_DIR": str(cache_dir / "uv"),
        "UV_PYTHON_DOWNLOADS": "never",
        "HTTP_PROXY": blackhole,
        "HTTPS_PROXY": blackhole,
        "ALL_PROXY": blackhole,
        "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


def uv_binary() -> str:
    """The ``uv`` executable of the pip package ``uv`` (a base dependency)."""
    try:
        from uv import find_uv_bin
    except ImportError as exc:
        raise RuntimeError("the pip package uv is not installed; run `make test`, which installs it") from exc
    return find_uv_bin()


def start_test_cluster(root: Path, registry: Registry, package_index: PackageIndex) -> DaskCluster:
    """Two preloaded workers whose registry is ``registry`` and whose environments come from ``package_index``."""
    return start_dask(root, workers=2, worker_env={
        "MODELOPS_BUNDLE_REGISTRY": registry.address,
        "MODELOPS_BUNDLE_CACHE_DIR": str(root / "cache"),
        "MODELOPS_BUNDLE_INDEX_URL": package_index.url,
    })
