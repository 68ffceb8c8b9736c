"""``mops dev smoke-test|test-connection`` against a real registry and real Dask processes."""

from __future__ import annotations

import json
import time

import yaml

from harness.services import free_port
from modelops_infra.cli import ExitCode
from modelops_infra.client import DEFAULT_SCHEDULER, resolve_scheduler

RAISING = {"sim.py": "def run(params, seed):\n    raise RuntimeError('boom from inside the bundle')\n"}


def test_test_connection_prints_the_worker_count(mops, cluster) -> None:
    result = mops("dev", "test-connection", "--scheduler", cluster.scheduler_address)
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert f"scheduler {cluster.scheduler_address}: 2 workers" in result.stdout


def test_test_connection_json_shape(mops, cluster) -> None:
    data = json.loads(mops("dev", "test-connection", "-s", cluster.scheduler_address, "--json").stdout)
    assert data["reachable"] is True and data["workers"] == 2 and len(data["worker_addresses"]) == 2
    assert data["error"] is None


def test_test_connection_to_nothing_fails_quickly_naming_connect(mops) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.monotonic()
    result = mops("dev", "test-connection", "--scheduler", address, "--timeout", "2")
    elapsed = time.monotonic() - start
    assert result.exit_code == ExitCode.FAILURE, result.output
    assert result.stderr.startswith(f"mops: error: connect: cannot reach scheduler {address}")
    assert elapsed < 15, f"an unreachable scheduler should fail within the timeout, took {elapsed:.1f} s"


def test_smoke_test_passes_with_the_builtin_bundle(mops, cluster, registry) -> None:
    result = mops("dev", "smoke-test", "--registry", registry.address, "--scheduler", cluster.scheduler_address)
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert result.stdout.startswith("smoke test passed")
    assert f"bundle   {registry.address}/modelops/bundles@sha256:" in result.stdout
    assert '"echo": {"test": "smoke"}' in result.stdout and '"seed": 12345' in result.stdout
    timings = next(line for line in result.stdout.splitlines() if line.startswith("timings"))
    for stage in ("push", "connect", "fetch", "run"):
        assert f"{stage}=" in timings, f"stage {stage} missing from {timings!r}"


def test_smoke_test_json_is_one_object_with_the_documented_keys(mops, cluster, registry) -> None:
    result = mops("dev", "smoke-test", "-r", registry.address, "-s", cluster.scheduler_address, "--json")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    data = json.loads(result.stdout)
    assert {"passed", "bundle_ref", "result", "timings", "error"} <= set(data)
    assert data["passed"] is True and data["error"] is None
    assert data["result"]["ok"] is True and data["result"]["echo"] == {"test": "smoke"}
    assert data["bundle_ref"].startswith(f"{registry.address}/modelops/bundles@sha256:")
    assert {"push", "connect", "fetch", "run"} <= set(data["timings"])


def test_smoke_test_with_a_raising_entrypoint_exits_1_naming_run(mops, cluster, registry, make_bundle) -> None:
    bundle = make_bundle("boom", RAISING)
    result = mops("dev", "smoke-test", "--bundle", bundle, "-r", registry.address, "-s", cluster.scheduler_address)
    assert result.exit_code == ExitCode.FAILURE, result.output
    assert result.stdout.startswith("smoke test FAILED\n"), result.stdout
    assert result.stderr.startswith("mops: error: run: entrypoint sim:run of bundle sha256:"), result.stderr
    assert "run: " not in result.stdout, "the stage is printed once, by the error boundary on stderr"
    assert "boom from inside the bundle" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, f"stderr should be one line:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    assert "raise RuntimeError('boom from inside the bundle')" in result.stdout, "the bundle's traceback is reported"


def test_smoke_test_json_failure_names_the_stage_apart_from_the_error(mops, cluster, registry,
                                                                       make_bundle) -> None:
    bundle = make_bundle("boomjson", RAISING)
    result = mops("dev", "smoke-test", "-b", bundle, "-r", registry.address, "-s", cluster.scheduler_address, "--json")
    assert result.exit_code == ExitCode.FAILURE
    data = json.loads(result.stdout)
    assert data["passed"] is False and data["stage"] == "run"
    assert data["error"].startswith("entrypoint sim:run of bundle sha256:"), "error is the message, without the stage"
    assert "hint" in data and data["result"] is None


def test_smoke_test_with_an_invalid_bundle_fails_at_pack(mops, tmp_path, registry, cluster) -> None:
    (tmp_path / "empty").mkdir()
    result = mops("dev", "smoke-test", "-b", tmp_path / "empty", "-r", registry.address, "-s", cluster.scheduler_address)
    assert result.exit_code == ExitCode.FAILURE
    assert result.stderr.startswith("mops: error: pack: ")


def test_smoke_test_against_an_unreachable_scheduler_fails_at_connect_within_the_timeout(mops, registry) -> None:
    start = time.monotonic()
    result = mops("dev", "smoke-test", "-r", registry.address, "-s", f"tcp://127.0.0.1:{free_port()}", "--timeout", "2")
    assert result.exit_code == ExitCode.FAILURE
    assert result.stderr.startswith("mops: error: connect: ")
    assert time.monotonic() - start < 20


def test_smoke_test_without_a_registry_names_both_places_it_looked(mops, isolated_env) -> None:
    result = mops("dev", "smoke-test", "--env", "staging", "-s", "tcp://127.0.0.1:1")
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "MODELOPS_BUNDLE_REGISTRY is unset" in result.stderr
    assert str(isolated_env / ".modelops" / "bundle-env" / "staging.yaml") in result.stderr
    assert "mops env write" in result.stderr


def test_smoke_test_finds_registry_and_scheduler_in_the_bundle_env_file(mops, cluster, registry, isolated_env) -> None:
    env_dir = isolated_env / ".modelops" / "bundle-env"
    env_dir.mkdir(parents=True)
    (env_dir / "dev.yaml").write_text(yaml.safe_dump({"registry": {"login_server": registry.address},
                                                      "scheduler": {"address": cluster.scheduler_address}}))
    result = mops("dev", "smoke-test", "--json")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert json.loads(result.stdout)["bundle_ref"].startswith(registry.address)


def test_scheduler_resolution_order(isolated_env) -> None:
    env_file = isolated_env / ".modelops" / "bundle-env" / "dev.yaml"
    environ = {"HOME": str(isolated_env)}
    assert resolve_scheduler(None, "dev", environ) == DEFAULT_SCHEDULER
    env_file.parent.mkdir(parents=True)
    env_file.write_text(yaml.safe_dump({"registry": {"login_server": "r:5000"}, "scheduler": {"address": "tcp://f:1"}}))
    assert resolve_scheduler(None, "dev", environ) == "tcp://f:1"
    assert resolve_scheduler(None, "dev", {**environ, "DASK_SCHEDULER": "tcp://e:2"}) == "tcp://e:2"
    assert resolve_scheduler("tcp://o:3", "dev", {**environ, "DASK_SCHEDULER": "tcp://e:2"}) == "tcp://o:3"
