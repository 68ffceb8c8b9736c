"""The local stack's registry, scheduler and workers get an allow-listed environment, never the deployer's secrets.

The providers start real processes here; what each process (and every process
in its group, such as the worker a nanny spawns) was given is read back from
``/proc/<pid>/environ``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.services import free_port
from modelops_infra.infra.local._environment import service_env
from modelops_infra.infra.local.registry import RegistryProcessProvider
from modelops_infra.infra.local.workspace import SchedulerProvider, WorkersProvider, worker_env

SECRETS = {
    "PULUMI_CONFIG_PASSPHRASE": "passphrase-must-not-leak",
    "ARM_CLIENT_SECRET": "arm-secret-must-not-leak",
    "REGISTRY_PASSWORD": "registry-password-must-not-leak",
    "AWS_SECRET_ACCESS_KEY": "aws-key-must-not-leak",
}


def group_environments(pid: int) -> dict[int, dict[str, str]]:
    """``pid -> environment`` of every live process in the process group led by ``pid``."""
    found: dict[int, dict[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            pgid = int(stat.rsplit(")", 1)[1].split()[2])
            raw = (entry / "environ").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if pgid == pid:
            found[int(entry.name)] = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    return found


def assert_least_privilege(pid: int, what: str, *, python: bool) -> None:
    envs = group_environments(pid)
    assert envs, f"{what}: no live process in group {pid}"
    for proc, env in envs.items():
        leaked = sorted(k for k in SECRETS if k in env) + sorted(k for k, v in env.items() if v in SECRETS.values())
        assert not leaked, f"{what} (pid {proc}) inherited secrets: {leaked}"
        assert env.get("PATH") == os.environ["PATH"], f"{what} (pid {proc}) should keep PATH"
        if python:
            assert env.get("DASK_TEST_SETTING") == "kept", f"{what} (pid {proc}) should keep DASK_* configuration"


def test_the_allow_list_keeps_path_home_locale_and_settings_and_drops_everything_else():
    environ = {"PATH": "/bin", "HOME": "/home/u", "LANG": "C.UTF-8", "LC_ALL": "C", "TZ": "UTC",
               "MODELOPS_BUNDLE_TIMEOUT": "9", "DASK_DISTRIBUTED__WORKER__DAEMON": "False", "PYTHONPATH": "/src",
               "AZURE_CLIENT_ID": "x", "SSH_AUTH_SOCK": "/tmp/agent", **SECRETS}
    python = service_env(environ, python=True)
    assert python == {k: environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "MODELOPS_BUNDLE_TIMEOUT",
                                               "DASK_DISTRIBUTED__WORKER__DAEMON", "PYTHONPATH")}
    assert service_env(environ, python=False) == {k: environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
    workers = worker_env(environ, "127.0.0.1:5050", "/cache", "modelops/b")
    assert not set(SECRETS) & set(workers) and "AZURE_CLIENT_ID" not in workers and "SSH_AUTH_SOCK" not in workers
    assert "MODELOPS_BUNDLE_TIMEOUT" not in workers, "the deployer's MODELOPS_BUNDLE_* never reach workers (as before)"
    assert workers["MODELOPS_BUNDLE_REGISTRY"] == "127.0.0.1:5050"


def test_registry_scheduler_and_workers_start_without_the_deployers_secrets(tmp_path, monkeypatch):
    for key, value in SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DASK_TEST_SETTING", "kept")
    registry_p, sched_p, work_p = RegistryProcessProvider(), SchedulerProvider(), WorkersProvider()
    reg = registry_p.create({"port": free_port(), "data_dir": str(tmp_path / "registry"),
                             "log_dir": str(tmp_path / "logs")})
    sched = work = None
    try:
        assert_least_privilege(reg.outs["processes"][0]["pid"], "registry", python=False)
        sched = sched_p.create({"port": free_port(), "dashboard_port": free_port(), "log_dir": str(tmp_path / "logs"),
                                "env": {}, "data_dir": None})
        assert_least_privilege(sched.outs["processes"][0]["pid"], "scheduler", python=True)
        work = work_p.create({"scheduler": sched.outs["address"], "count": 1, "threads": 1, "memory": "1GiB",
                              "registry": reg.outs["login_server"], "repository": "modelops/bundles",
                              "data_dir": str(tmp_path / "dask"), "log_dir": str(tmp_path / "logs")})
        nanny = work.outs["processes"][0]["pid"]
        assert len(group_environments(nanny)) >= 2, "the nanny and the worker it spawned should both be checked"
        assert_least_privilege(nanny, "worker", python=True)
    finally:
        if work is not None:
            work_p.delete(work.id, work.outs)
        if sched is not None:
            sched_p.delete(sched.id, sched.outs)
        registry_p.delete(reg.id, reg.outs)


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_no_secret_name_is_on_the_allow_list(name):
    assert name not in service_env({name: "x"}, python=True), f"{name} must never reach a local service"
