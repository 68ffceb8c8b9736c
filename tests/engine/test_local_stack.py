"""``pulumi up`` on the local stack, through the real Pulumi engine, as a user would run it.

The tests in this module share one stack and run in order: deploy, no-op, change,
failure, refresh, destroy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest
import requests

from harness.services import wheelhouse_dir
from modelops_infra.bundles import builtin_bundle_path
from modelops_infra.infra.local._processes import ProcessHandle, port_in_use, wait_until

pytestmark = pytest.mark.engine


def _smoke_outputs(stack) -> dict:
    outs = stack.outputs()
    return {k: outs.get(k) for k in ("smoke_test_bundle_ref", "smoke_test_result", "smoke_test_timings")}


def test_up_deploys_registry_and_dask_and_the_registry_answers(local_stack):
    local_stack.up()
    outs = local_stack.outputs()
    login = local_stack.run("stack", "output", "acr_login_server").stdout.strip()
    assert login == f"127.0.0.1:{local_stack.ports['registryPort']}" == outs["acr_login_server"]
    assert requests.get(f"http://{login}/v2/", timeout=5).status_code == 200
    assert outs["scheduler_address"] == f"tcp://127.0.0.1:{local_stack.ports['schedulerPort']}"
    assert requests.get(outs["dashboard_url"].replace("/status", "/health"), timeout=5).ok


def test_smoke_test_result_is_the_builtin_bundles_result(local_stack):
    outs = local_stack.outputs()
    assert outs["smoke_test_result"]["ok"] is True
    assert outs["smoke_test_result"]["echo"] == {"test": "smoke"}
    assert outs["smoke_test_result"]["seed"] == 12345
    assert outs["smoke_test_bundle_ref"].startswith(f"{outs['acr_login_server']}/modelops/bundles@sha256:")
    assert set(outs["smoke_test_timings"]) == {"pack", "push", "connect", "workers", "fetch", "run"}


def test_second_up_with_no_change_does_not_rerun_the_smoke_test(local_stack):
    before = _smoke_outputs(local_stack)
    preview = local_stack.run("preview", "--expect-no-changes", check=False)
    assert preview.returncode == 0, f"preview must show no change:\n{preview.stdout[-3000:]}"
    out = local_stack.up().stdout
    assert "unchanged" in out and "updated" not in out, out[-2000:]
    assert _smoke_outputs(local_stack) == before, "an unchanged up must not re-run the test (timings would change)"


def test_changing_the_bundle_code_reruns_and_changes_bundle_ref(local_stack, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("smoke-bundle") / "b"
    shutil.copytree(builtin_bundle_path(), bundle, ignore=shutil.ignore_patterns("__pycache__"))
    before = local_stack.outputs()["smoke_test_bundle_ref"]
    local_stack.config("modelops:smokeTest.bundle", str(bundle))
    local_stack.up()
    assert local_stack.outputs()["smoke_test_bundle_ref"] == before, "same content at another path: same digest"
    src = bundle / "smoke.py"
    src.write_text(src.read_text().replace('"ok": True', '"ok": True, "variant": 2'))
    preview = local_stack.run("preview", "--diff").stdout
    assert "BundleSmokeTest" in preview and "bundle_digest" in preview, preview[-3000:]
    local_stack.up()
    outs = local_stack.outputs()
    assert outs["smoke_test_bundle_ref"] != before
    assert outs["smoke_test_result"]["variant"] == 2


def test_a_raising_entrypoint_fails_up_naming_the_run_stage(local_stack, tmp_path_factory):
    bad = tmp_path_factory.mktemp("bad-bundle") / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"name": "bad", "version": "1", "entrypoint": "sim:run"}))
    (bad / "sim.py").write_text("def run(params, seed):\n    raise RuntimeError('boom from the bundle')\n")
    local_stack.config("modelops:smokeTest.bundle", str(bad))
    result = local_stack.up(check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SmokeTestError: run: entrypoint sim:run of bundle sha256:" in text, text[-3000:]
    assert "RuntimeError: boom from the bundle" in text
    # Nothing half-created blocks the next up: point back at a good bundle and it passes.
    local_stack.config("modelops:smokeTest.bundle", str(builtin_bundle_path()))
    local_stack.up()
    assert local_stack.outputs()["smoke_test_result"]["ok"] is True


def test_a_smoke_bundle_that_imports_numpy_proves_environments_at_deploy(local_stack, tmp_path_factory):
    numpy_wheel = next(wheelhouse_dir().glob("numpy-*.whl")).name
    bundle = tmp_path_factory.mktemp("numpy-bundle") / "np"
    bundle.mkdir()
    (bundle / "manifest.json").write_text(json.dumps({"name": "np-smoke", "version": "1", "entrypoint": "model:run"}))
    (bundle / "model.py").write_text(
        "import numpy as np\n\ndef run(params, seed):\n"
        "    return {'ok': True, 'numpy': np.__version__, 'draw': float(np.random.default_rng(seed).random())}\n")
    (bundle / "requirements.txt").write_text(f"numpy=={numpy_wheel.split('-')[1]}\n")
    local_stack.config("modelops:smokeTest.bundle", str(bundle))
    local_stack.up()
    result = local_stack.outputs()["smoke_test_result"]
    assert result["ok"] is True and result["numpy"] == numpy_wheel.split("-")[1], result
    envs = list((Path(local_stack.dir) / ".modelops" / "local" / "dask").rglob("envs/*/venv"))
    assert len(envs) == 1, f"one environment built on the local stack's host, got {envs}"
    local_stack.config("modelops:smokeTest.bundle", str(builtin_bundle_path()))
    local_stack.up()


def test_refresh_notices_a_dead_worker_and_up_brings_it_back(local_stack):
    (workers,) = local_stack.resources("LocalDaskWorkers")
    victim = workers["outputs"]["processes"][0]
    os.killpg(victim["pid"], signal.SIGKILL)
    handle = ProcessHandle(victim["pid"], victim["start_time"])
    deadline = time.monotonic() + 10
    while handle.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    local_stack.run("refresh", "--yes", "--skip-preview")
    assert local_stack.resources("LocalDaskWorkers") == [], "refresh must drop workers whose process died"
    local_stack.up()
    (again,) = local_stack.resources("LocalDaskWorkers")
    assert all(ProcessHandle(p["pid"], p["start_time"]).alive() for p in again["outputs"]["processes"])


def test_mops_env_write_records_the_stack_for_registry_discovery(local_stack, tmp_path):
    from typer.testing import CliRunner

    from modelops_infra.cli import app
    from modelops_infra.client import get_registry_url, load_bundle_env

    home = {"HOME": str(tmp_path)}
    env = {**local_stack.env, **home}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    old_cwd = os.getcwd()
    os.chdir(local_stack.dir)
    try:
        result = CliRunner().invoke(app, ["env", "write", "--stack", local_stack.stack, "--env", "localtest"])
    finally:
        os.chdir(old_cwd)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert result.exit_code == 0, result.output
    outs = local_stack.outputs()
    assert get_registry_url("localtest", environ=home) == outs["acr_login_server"]
    assert load_bundle_env("localtest", environ=home).scheduler_address == outs["scheduler_address"]


def test_destroy_leaves_no_process_and_no_port(local_stack):
    pids = [ProcessHandle(p["pid"], p["start_time"]) for r in local_stack.export()["deployment"]["resources"]
            for p in (r.get("outputs") or {}).get("processes") or []]
    assert len(pids) == 4, "registry, scheduler and two workers"
    local_stack.run("destroy", "--yes", "--skip-preview")
    assert not any(h.alive() for h in pids), "destroy must stop every process"
    for port in local_stack.ports.values():
        assert wait_until(lambda p=port: not port_in_use(p), timeout=5), f"port {port} still bound after destroy"
    data = Path(local_stack.dir) / ".modelops" / "local"
    assert not any((data / "registry").iterdir()) and not any((data / "dask").iterdir())
