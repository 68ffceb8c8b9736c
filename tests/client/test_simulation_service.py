"""The bundle pipeline end to end on real Dask processes and a real registry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from distributed import Client

from harness.services import start_dask
from modelops_infra.bundles import push_bundle
from modelops_infra.client import DaskSimulationService, SimTask, task_key
from modelops_infra.errors import BundleRunError, ConfigurationError, RegistryNotFoundError
from modelops_infra.worker import ModelOpsWorkerPlugin, run_sim_task


@pytest.fixture
def client(cluster):
    with Client(cluster.scheduler_address, timeout=30) as c:
        yield c


def _push(registry, path: Path, tag: str | None = None) -> str:
    return str(push_bundle(path, registry.address, tag=tag).reference)


def test_round_trip_push_simtask_result(registry, client, make_bundle):
    ref = _push(registry, make_bundle("roundtrip"))
    svc = DaskSimulationService(client)
    result = svc.submit(SimTask(ref, {"beta": 0.3}, seed=7)).result(timeout=60)
    assert result == {"params": {"beta": 0.3}, "seed": 7, "bundle": "roundtrip"}


def test_registry_comes_only_from_the_workers_environment(registry, client):
    assert "MODELOPS_BUNDLE_REGISTRY" not in os.environ, "the test process must not carry the registry"
    seen = client.run(lambda: os.environ.get("MODELOPS_BUNDLE_REGISTRY"))
    assert set(seen.values()) == {registry.address}


def test_task_carries_repository_and_digest_but_no_registry(registry, client, make_bundle):
    ref = _push(registry, make_bundle("norereg"))
    svc = DaskSimulationService(client)
    pinned = svc.pin(ref)
    # A reference naming some other registry still runs: workers use their own registry.
    foreign = f"elsewhere.example.com/{pinned.repository}@{pinned.digest}"
    assert svc.submit(SimTask(foreign, {}, 1)).result(timeout=60)["bundle"] == "norereg"


def test_tags_are_resolved_to_digests_on_the_client(registry, client, make_bundle):
    ref = push_bundle(make_bundle("tagged"), registry.address, tag="v1").reference
    svc = DaskSimulationService(client)
    pinned = svc.pin(f"{registry.address}/{ref.repository}:v1")
    assert pinned.digest == ref.digest
    assert svc.submit(SimTask(f"{registry.address}/{ref.repository}:v1", {}, 3)).result(timeout=60)["seed"] == 3


def test_batch_results_come_back_in_order(registry, client, make_bundle):
    ref = _push(registry, make_bundle("batch"))
    svc = DaskSimulationService(client)
    futures = svc.submit_batch([SimTask(ref, {"i": i}, seed=i) for i in range(50)])
    results = svc.gather(futures)
    assert [r["seed"] for r in results] == list(range(50))
    assert [r["params"]["i"] for r in results] == list(range(50))


def test_task_keys_are_deterministic_hashes_of_digest_fn_params_seed():
    d = "sha256:" + "a" * 64
    assert task_key(d, None, {"x": 1, "y": 2}, 5) == task_key(d, None, {"y": 2, "x": 1}, 5)
    keys = {task_key(d, None, {"x": 1}, 5), task_key(d, None, {"x": 1}, 6), task_key(d, "m:f", {"x": 1}, 5),
            task_key("sha256:" + "b" * 64, None, {"x": 1}, 5), task_key(d, None, {"x": 2}, 5)}
    assert len(keys) == 5, "changing any of digest, fn_ref, params or seed must change the key"


def test_same_module_name_in_two_bundles_runs_each_bundles_own_code(registry, client, make_bundle):
    a = _push(registry, make_bundle("nsa", {
        "simulate.py": "import helper\ndef run(params, seed):\n    return {'who': helper.NAME, 'seed': seed}\n",
        "helper.py": "NAME = 'A'\n"}, entrypoint="simulate:run"))
    b = _push(registry, make_bundle("nsb", {
        "simulate.py": "import helper\ndef run(params, seed):\n    return {'who': helper.NAME * 2, 'seed': seed}\n",
        "helper.py": "NAME = 'B'\n"}, entrypoint="simulate:run"))
    worker = sorted(client.scheduler_info()["workers"])[0]
    svc = DaskSimulationService(client)
    order = [a, b, a, b, b, a]
    futures = [client.submit(run_sim_task, svc.pin(r).repository, svc.pin(r).digest, None, {}, i,
                             workers=[worker], pure=False) for i, r in enumerate(order)]
    got = [f.result(timeout=60)["who"] for f in futures]
    assert got == ["A", "BB", "A", "BB", "BB", "A"], f"each bundle must see its own helper module, got {got}"


def test_lazy_imports_and_subpackages_stay_inside_their_own_bundle(registry, client, make_bundle):
    files = lambda tag: {  # noqa: E731
        "simulate.py": "def run(params, seed):\n"
                       "    import helpers\n"              # imported at call time
                       "    from model.params import VALUE\n"
                       "    import model.params as mp\n"
                       "    return {'helper': helpers.NAME, 'value': VALUE, 'same': mp.VALUE == VALUE}\n",
        "helpers.py": f"NAME = {tag!r}\n",
        "model/__init__.py": "",
        "model/params.py": f"from .base import BASE\nVALUE = BASE + {tag!r}\n",
        "model/base.py": "BASE = 'base-'\n",
    }
    a = _push(registry, make_bundle("lazya", files("A"), entrypoint="simulate:run"))
    b = _push(registry, make_bundle("lazyb", files("B"), entrypoint="simulate:run"))
    worker = sorted(client.scheduler_info()["workers"])[0]
    svc = DaskSimulationService(client)
    futures = [client.submit(run_sim_task, svc.pin(r).repository, svc.pin(r).digest, None, {}, i,
                             workers=[worker], pure=False) for i, r in enumerate([a, b, a, b])]
    got = [f.result(timeout=60) for f in futures]
    assert [g["helper"] for g in got] == ["A", "B", "A", "B"]
    assert [g["value"] for g in got] == ["base-A", "base-B", "base-A", "base-B"]
    assert all(g["same"] for g in got)


def test_entrypoint_exception_carries_the_bundles_traceback(registry, client, make_bundle):
    ref = _push(registry, make_bundle("raises", {"sim.py": """
        def inner(x):
            raise ValueError(f"bad parameter {x}")

        def run(params, seed):
            return inner(params["x"])
        """}))
    with pytest.raises(BundleRunError) as info:
        DaskSimulationService(client).submit(SimTask(ref, {"x": 42}, 1)).result(timeout=60)
    msg = str(info.value)
    assert info.value.stage == "run", "the stage must survive the trip from the worker, as a field"
    assert msg.startswith("entrypoint sim:run of bundle sha256:"), msg
    assert "ValueError: bad parameter 42" in msg
    assert 'sim.py", line 3, in inner' in info.value.remote_traceback


def test_non_json_result_is_a_clear_run_error(registry, client, make_bundle):
    ref = _push(registry, make_bundle("nonjson", {"sim.py": "def run(params, seed):\n    return {'x': object()}\n"}))
    with pytest.raises(BundleRunError, match="not JSON-serializable"):
        DaskSimulationService(client).submit(SimTask(ref, {}, 1)).result(timeout=60)


def test_a_bundle_missing_from_the_registry_fails_the_fetch_stage(registry, client):
    ghost = f"{registry.address}/modelops/bundles@sha256:" + "0" * 64
    with pytest.raises(RegistryNotFoundError, match="not found in registry") as info:
        DaskSimulationService(client).submit(SimTask(ghost, {}, 1)).result(timeout=60)
    assert info.value.stage == "fetch", f"expected the worker to mark its fetch error, got {info.value.stage!r}"


def test_plugin_registered_by_the_client_works_without_preload(registry, tmp_path, make_bundle):
    cluster = start_dask(tmp_path / "dask", workers=1, preload=False, worker_env={
        "MODELOPS_BUNDLE_REGISTRY": registry.address, "MODELOPS_BUNDLE_CACHE_DIR": str(tmp_path / "cache")})
    try:
        with Client(cluster.scheduler_address, timeout=30) as c:
            ref = _push(registry, make_bundle("registered"))
            with pytest.raises(Exception, match="plugin is not loaded"):
                DaskSimulationService(c).submit(SimTask(ref, {}, 1)).result(timeout=60)
            c.register_plugin(ModelOpsWorkerPlugin())
            c.register_plugin(ModelOpsWorkerPlugin())  # idempotent
            assert DaskSimulationService(c).submit(SimTask(ref, {}, 2)).result(timeout=60)["seed"] == 2
    finally:
        cluster.stop()


def test_a_plugin_setup_failure_reaches_the_client_naming_the_setting(registry, tmp_path):
    cluster = start_dask(tmp_path / "dask", workers=1, preload=False, worker_env={
        "MODELOPS_BUNDLE_REGISTRY": registry.address, "MODELOPS_BUNDLE_CACHE_MAX_BYTES": "lots"})
    try:
        with Client(cluster.scheduler_address, timeout=30) as c:
            with pytest.raises(Exception, match=r"MODELOPS_BUNDLE_CACHE_MAX_BYTES='lots' is not a size"):
                c.register_plugin(ModelOpsWorkerPlugin())
    finally:
        cluster.stop()


def test_a_preloaded_worker_with_bad_settings_fails_every_task_with_the_cause(registry, tmp_path, make_bundle):
    # dask ignores preload exceptions; the plugin keeps the error so tasks report it instead of a vague failure
    cluster = start_dask(tmp_path / "dask", workers=1, worker_env={
        "MODELOPS_BUNDLE_REGISTRY": registry.address, "MODELOPS_BUNDLE_INSECURE": "perhaps"})
    try:
        with Client(cluster.scheduler_address, timeout=30) as c:
            ref = _push(registry, make_bundle("badworker"))
            with pytest.raises(ConfigurationError) as info:
                DaskSimulationService(c).submit(SimTask(ref, {}, 1)).result(timeout=60)
        assert info.value.stage == "fetch", info.value.stage
        assert str(info.value).startswith("this worker's modelops plugin failed to set up:"), str(info.value)
        assert "MODELOPS_BUNDLE_INSECURE='perhaps' is not a boolean" in str(info.value)
    finally:
        cluster.stop()
