"""Real services for tests: a CNCF distribution registry and Dask scheduler/worker processes.

Nothing here is mocked. A missing binary fails the test run with a message
saying how to install it (``make test`` installs everything).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from modelops_infra.infra.local.registry import REGISTRY_BINARIES, registry_config_yaml


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


def start_registry(root: Path, *, htpasswd: Path | None = None, port: int | None = None) -> Registry:
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    storage = root / "data"
    config = root / "config.yml"
    config.write_text(registry_config_yaml(port, storage, htpasswd=htpasswd))
    log = root / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([registry_binary(), "serve", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    address = f"127.0.0.1:{port}"
    _wait(lambda: requests.get(f"http://{address}/v2/", timeout=1).status_code in (200, 401), 20,
          f"registry on {address}", proc, log)
    return Registry(address, root, log, proc, storage)


def write_htpasswd(path: Path, users: Mapping[str, str]) -> Path:
    import bcrypt

    path.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}\n" for u, p in users.items()))
    return path


@dataclass
class DaskCluster:
    scheduler_address: str
    dashboard_port: int
    root: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-4000:] for p in sorted(self.root.glob("*.log")))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


def dask_bin(name: str = "dask") -> str:
    return str(Path(sys.executable).with_name(name))


def start_dask(root: Path, *, workers: int = 1, nthreads: int = 2, worker_env: Mapping[str, str] | None = None,
               preload: bool = True, nworkers_per_proc: int = 1) -> DaskCluster:
    """Start ``dask scheduler`` and ``workers`` ``dask worker`` processes (each with ``--preload``)."""
    root.mkdir(parents=True, exist_ok=True)
    port, dash = free_port(), free_port()
    cluster = DaskCluster(f"tcp://127.0.0.1:{port}", dash, root)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOPS_BUNDLE_")}
    base_env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    with open(root / "scheduler.log", "wb") as out:
        cluster.procs.append(subprocess.Popen(
            [dask_bin(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--dashboard-address",
             f"127.0.0.1:{dash}", "--no-show"], stdout=out, stderr=subprocess.STDOUT, env=base_env,
            start_new_session=True))
    _wait(lambda: requests.get(f"http://127.0.0.1:{dash}/health", timeout=1).ok, 30, "dask scheduler",
          cluster.procs[0], root / "scheduler.log")
    env = dict(base_env)
    env.update(worker_env or {})
    cluster.worker_env = dict(worker_env or {})
    for i in range(workers):
        cmd = [dask_bin(), "worker", cluster.scheduler_address, "--nthreads", str(nthreads), "--nworkers",
               str(nworkers_per_proc), "--no-dashboard", "--name", f"w{i}", "--local-directory", str(root / f"w{i}")]
        if preload:
            cmd += ["--preload", "modelops_infra.worker"]
        with open(root / f"worker{i}.log", "wb") as out:
            cluster.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                                  start_new_session=True))
    from distributed import Client

    with Client(cluster.scheduler_address, timeout=30) as client:
        deadline = time.monotonic() + 60
        while len(client.scheduler_info(n_workers=-1)["workers"]) < workers * nworkers_per_proc:
            dead = [p for p in cluster.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                cluster.stop()
                raise RuntimeError(f"dask workers did not start:\n{cluster.logs()}")
            time.sleep(0.1)
    return cluster
