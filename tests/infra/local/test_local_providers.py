"""The local stack's dynamic providers, driven directly (no engine): real processes, real ports."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from harness.services import free_port
from modelops_infra.bundles import builtin_bundle_path, pack_bundle
from modelops_infra.errors import SmokeTestError
from modelops_infra.infra.local._processes import ProcessHandle, port_in_use, wait_until
from modelops_infra.infra.local.registry import RegistryProcessProvider
from modelops_infra.infra.local.workspace import SchedulerProvider, WorkersProvider, worker_env
from modelops_infra.infra.smoke.provider import BundleSmokeTestProvider


def _handles(outs):
    return [ProcessHandle(p["pid"], p["start_time"]) for p in outs["processes"]]


def test_registry_provider_starts_refreshes_and_destroys(tmp_path):
    provider = RegistryProcessProvider()
    port = free_port()
    props = {"port": port, "data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")}
    created = provider.create(props)
    outs = created.outs
    try:
        assert outs["login_server"] == f"127.0.0.1:{port}"
        assert requests.get(f"http://{outs['login_server']}/v2/", timeout=5).status_code == 200
        assert provider.read(created.id, outs).id == created.id, "a live registry keeps its id on refresh"
        assert not provider.diff(created.id, outs, props).changes, "same inputs, live process: no change"
        moved = provider.diff(created.id, outs, {**props, "port": port + 1})
        assert moved.replaces == ["port"] and moved.delete_before_replace
    finally:
        provider.delete(created.id, outs)
    assert not any(h.alive() for h in _handles(outs)), "destroy must stop the registry"
    # polled: on a busy host another program's outgoing connection may hold the number for a moment
    assert wait_until(lambda: not port_in_use(port), timeout=5), "destroy must free the port"
    assert not (tmp_path / "data").exists(), "destroy must remove the registry data"


def test_refresh_notices_a_dead_process_and_up_replaces_it(tmp_path):
    provider = RegistryProcessProvider()
    props = {"port": free_port(), "data_dir": str(tmp_path / "data"), "log_dir": str(tmp_path / "logs")}
    created = provider.create(props)
    handle = _handles(created.outs)[0]
    os.killpg(handle.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while handle.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert provider.read(created.id, created.outs).id is None, "refresh must drop a resource whose process died"
    assert provider.diff(created.id, created.outs, props).replaces == ["processes"]
    provider.delete(created.id, created.outs)


def test_registry_port_in_use_fails_create_naming_the_key(tmp_path, registry):
    port = int(registry.address.rsplit(":", 1)[1])
    with pytest.raises(RuntimeError, match=rf"registry: port {port} .* in use \(modelops:local.registryPort\)"):
        RegistryProcessProvider().create({"port": port, "data_dir": str(tmp_path / "d"), "log_dir": str(tmp_path)})


def test_workers_get_the_registry_from_the_registry_output():
    env = worker_env({"PATH": "/bin", "MODELOPS_BUNDLE_REGISTRY": "stale:1"}, "127.0.0.1:5050", "/c", "modelops/b")
    assert env["MODELOPS_BUNDLE_REGISTRY"] == "127.0.0.1:5050"
    assert env["MODELOPS_BUNDLE_CACHE_DIR"] == "/c" and env["PATH"] == "/bin"


def test_scheduler_and_workers_run_the_smoke_test_then_stop(tmp_path, registry):
    sched_p, work_p, smoke = SchedulerProvider(), WorkersProvider(), BundleSmokeTestProvider()
    port, dash = free_port(), free_port()
    s = sched_p.create({"port": port, "dashboard_port": dash, "log_dir": str(tmp_path / "logs"), "env": {},
                        "data_dir": None})
    w = None
    try:
        w = work_p.create({"scheduler": s.outs["address"], "count": 2, "threads": 1, "memory": "1GiB",
                           "registry": registry.address, "repository": "modelops/bundles",
                           "data_dir": str(tmp_path / "dask"), "log_dir": str(tmp_path / "logs")})
        digest = pack_bundle(builtin_bundle_path()).digest
        props = {"registry": registry.address, "repository": "modelops/bundles",
                 "bundle_path": str(builtin_bundle_path()), "bundle_digest": digest,
                 "scheduler_address": s.outs["address"], "timeout": 60, "triggers": []}
        assert smoke.check({}, props).failures == []
        created = smoke.create(props)
        assert created.outs["passed"] is True
        assert created.outs["bundle_ref"].endswith(digest)
        assert created.outs["result"]["echo"] == {"test": "smoke"}
        assert set(created.outs["timings"]) == {"pack", "push", "connect", "workers", "fetch", "run"}
        assert not smoke.diff(created.id, created.outs, props).changes, "nothing changed: no re-run"
        assert smoke.diff(created.id, created.outs, {**props, "triggers": ["x"]}).changes
        assert smoke.diff(created.id, created.outs, {**props, "bundle_digest": "sha256:" + "1" * 64}).changes

        # What the engine prints is str(exc): the provider's edge puts the stage in front, once.
        with pytest.raises(SmokeTestError, match=r"^pack: the bundle now packs to"):
            smoke.create({**props, "bundle_digest": "sha256:" + "1" * 64})
    finally:
        if w is not None:
            work_p.delete(w.id, w.outs)
        sched_p.delete(s.id, s.outs)
    assert wait_until(lambda: not port_in_use(port) and not port_in_use(dash), timeout=5)
    assert not (tmp_path / "dask").exists(), "destroy removes the workers' data (bundle cache)"


def test_smoke_test_against_nothing_fails_at_push_quickly(tmp_path):
    props = {"registry": f"127.0.0.1:{free_port()}", "repository": "modelops/bundles",
             "bundle_path": str(builtin_bundle_path()), "bundle_digest": pack_bundle(builtin_bundle_path()).digest,
             "scheduler_address": f"tcp://127.0.0.1:{free_port()}", "timeout": 10, "triggers": []}
    start = time.monotonic()
    with pytest.raises(SmokeTestError, match=r"^push: registry 127\.0\.0\.1:\d+ unreachable.*\(hint: "):
        BundleSmokeTestProvider().create(props)
    assert time.monotonic() - start < 20, "an unreachable registry must fail within a bounded time"
