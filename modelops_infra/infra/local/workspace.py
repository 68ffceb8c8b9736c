"""``LocalDaskWorkspace``: one ``dask scheduler`` and N ``dask worker --preload modelops_infra.worker``.

Workers get ``MODELOPS_BUNDLE_REGISTRY`` from the registry component's
``login_server`` *output* -- the same wiring as the AKS workspace -- so changing
the registry replaces the workers. Scheduler and workers get an allow-listed
environment (:func:`~modelops_infra.infra.local._environment.service_env`), not
the whole environment of ``pulumi up``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, Resource

from modelops_infra.infra.config import LocalConfig, WorkspaceConfig
from modelops_infra.infra.local._environment import service_env
from modelops_infra.infra.local._processes import ProcessHandle, port_in_use, spawn_detached, tail, wait_until
from modelops_infra.infra.local._provider import ServiceProvider

__all__ = ["LocalDaskWorkspace", "LocalDaskWorkspaceArgs", "scheduler_argv", "worker_argv", "worker_env"]


def _dask() -> str:
    return str(Path(sys.executable).with_name("dask"))


def scheduler_argv(port: int, dashboard_port: int) -> list[str]:
    return [_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port),
            "--dashboard-address", f"127.0.0.1:{dashboard_port}"]


def worker_argv(scheduler: str, name: str, threads: int, memory: str, local_dir: str) -> list[str]:
    return [_dask(), "worker", scheduler, "--preload", "modelops_infra.worker", "--nthreads", str(threads),
            "--memory-limit", memory, "--name", name, "--no-dashboard", "--local-directory", local_dir]


def worker_env(base: Mapping[str, str], registry: str, cache_dir: str, repository: str) -> dict[str, str]:
    """The workers' environment (pure): the allow-list of :func:`service_env`, and the registry from its output.

    Workers run bundle code, so nothing outside the allow-list (passphrases, cloud
    secrets, registry passwords) is passed on from ``base``. The deployer's bundle
    settings are not the workers' (the registry comes from the stack), but the
    package index for bundle environments is the same machine's.
    """
    env = {k: v for k, v in service_env(base, python=True).items()
           if not k.startswith("MODELOPS_BUNDLE_") or k == "MODELOPS_BUNDLE_INDEX_URL"}
    env.update({"MODELOPS_BUNDLE_REGISTRY": registry, "MODELOPS_BUNDLE_CACHE_DIR": cache_dir,
                "MODELOPS_BUNDLE_REPOSITORY": repository})
    return env


def _port_check(props: dict[str, Any], key: str, config_key: str) -> list[CheckFailure]:
    value = props.get(key)
    if not isinstance(value, (int, float)) or not 1 <= int(value) <= 65535:
        return [CheckFailure(key, f"{config_key} must be a TCP port, got {value!r}")]
    return []


class SchedulerProvider(ServiceProvider):
    inputs = ("port", "dashboard_port", "log_dir", "env")
    kind = "scheduler"

    def validate(self, props: dict[str, Any]) -> list[CheckFailure]:
        return (_port_check(props, "port", "modelops:local.schedulerPort")
                + _port_check(props, "dashboard_port", "modelops:local.dashboardPort"))

    def start(self, props: dict[str, Any]) -> tuple[list[ProcessHandle], dict[str, Any]]:
        import requests

        port, dash = int(props["port"]), int(props["dashboard_port"])
        for p, key in ((port, "schedulerPort"), (dash, "dashboardPort")):
            if port_in_use(p):
                raise RuntimeError(f"scheduler: port {p} on 127.0.0.1 is already in use (modelops:local.{key})")
        log = Path(props["log_dir"]) / "scheduler.log"
        env = service_env(os.environ, python=True, extra=props.get("env") or {})
        handle = spawn_detached(scheduler_argv(port, dash), log=log, env=env)
        health = f"http://127.0.0.1:{dash}/health"
        if not wait_until(lambda: requests.get(health, timeout=1).ok, timeout=60, alive=handle):
            handle.stop()
            raise RuntimeError(f"scheduler: no answer on {health} within 60 s; last log lines:\n{tail(log)}")
        return [handle], {"address": f"tcp://127.0.0.1:{port}", "dashboard_url": f"http://127.0.0.1:{dash}/status"}


class WorkersProvider(ServiceProvider):
    inputs = ("scheduler", "count", "threads", "memory", "registry", "repository", "data_dir", "log_dir")
    kind = "workers"

    def validate(self, props: dict[str, Any]) -> list[CheckFailure]:
        count = props.get("count")
        if not isinstance(count, (int, float)) or int(count) < 1:
            # As the config says (LocalConfig.workers): a stack of no processes has nothing to watch.
            return [CheckFailure("count", f"modelops:local.workers must be >= 1, got {count!r}")]
        return []

    def start(self, props: dict[str, Any]) -> tuple[list[ProcessHandle], dict[str, Any]]:
        from distributed import Client

        count, scheduler = int(props["count"]), str(props["scheduler"])
        data, logs = Path(props["data_dir"]), Path(props["log_dir"])
        env = worker_env(os.environ, str(props["registry"]), str(data / "cache"), str(props["repository"]))
        handles: list[ProcessHandle] = []
        try:
            for i in range(count):
                local_dir = data / f"worker-{i}"
                local_dir.mkdir(parents=True, exist_ok=True)
                handles.append(spawn_detached(
                    worker_argv(scheduler, f"local-{i}", int(props["threads"]), str(props["memory"]), str(local_dir)),
                    log=logs / f"worker-{i}.log", env=env))
            with Client(scheduler, timeout=30) as client:
                ready = wait_until(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) >= count,
                                   timeout=90, interval=0.25)
            dead = [i for i, h in enumerate(handles) if not h.alive()]
            if not ready or dead:
                which = dead[0] if dead else 0
                raise RuntimeError(f"workers: {count} worker(s) did not join {scheduler} within 90 s; "
                                   f"worker-{which} log:\n{tail(logs / f'worker-{which}.log')}")
        except BaseException:
            for h in handles:
                h.stop()
            raise
        return handles, {}


class LocalDaskScheduler(Resource, module="modelops", name="LocalDaskScheduler"):
    address: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(SchedulerProvider(), name,
                         {**props, "address": None, "dashboard_url": None, "processes": None}, opts)


class LocalDaskWorkers(Resource, module="modelops", name="LocalDaskWorkers"):
    processes: pulumi.Output[list[dict[str, int]]]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(WorkersProvider(), name, {**props, "processes": None}, opts)


@dataclass
class LocalDaskWorkspaceArgs:
    login_server: pulumi.Input[str]
    scheduler_port: int
    dashboard_port: int
    workers: int
    data_dir: str
    log_dir: str
    threads: int = 1
    memory: str = "2GiB"
    repository: str = WorkspaceConfig().bundle_repository

    @classmethod
    def from_config(cls, local: LocalConfig, **args: Any) -> LocalDaskWorkspaceArgs:
        """The Args of ``modelops:local`` (``local``), plus ``args`` (``login_server``, ``data_dir``, ...)."""
        return cls(**{"scheduler_port": local.scheduler_port, "dashboard_port": local.dashboard_port,
                      "workers": local.workers, **args})


class LocalDaskWorkspace(pulumi.ComponentResource):
    """Scheduler + workers. Outputs ``scheduler_address`` and ``dashboard_url``."""

    scheduler_address: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]

    def __init__(self, name: str, args: LocalDaskWorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelops:local:LocalDaskWorkspace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        scheduler = LocalDaskScheduler(f"{name}-scheduler", {
            "port": args.scheduler_port, "dashboard_port": args.dashboard_port, "log_dir": args.log_dir,
            "env": {}, "data_dir": None}, child)
        self.scheduler_address = scheduler.address
        self.dashboard_url = scheduler.dashboard_url
        self.workers = LocalDaskWorkers(f"{name}-workers", {
            "scheduler": scheduler.address, "count": args.workers, "threads": args.threads, "memory": args.memory,
            "registry": args.login_server, "repository": args.repository, "data_dir": args.data_dir,
            "log_dir": args.log_dir}, child)
        self.register_outputs({"scheduler_address": self.scheduler_address, "dashboard_url": self.dashboard_url})
