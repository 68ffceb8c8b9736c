"""The smoke test is wired once (``add_smoke_test``): every stack runs it the same way and exports the same outputs."""

from __future__ import annotations

from typing import Any

import pytest

from modelops_infra.infra.smoke import SMOKE_TEST_OUTPUTS
from tests.infra.stack_harness import Run, run_program, stack_config
from tests.infra.test_kubernetes_stack import SECRET_KEYS, kube_config

SMOKE_TYPE = "pulumi-python:dynamic/modelops:BundleSmokeTest"
SMOKE_ON = {"modelops:smokeTest": {"timeout": 30, "triggers": ["t1"]}}
SMOKE_OFF = {"modelops:smokeTest": {"enabled": False}}


def _run(cloud: str, smoke: dict[str, Any]) -> Run:
    if cloud == "azure":
        return run_program(stack_config("dev", smoke))
    if cloud == "kubernetes":
        return run_program(kube_config(**smoke), stack="kube", secret_keys=SECRET_KEYS)
    return run_program(stack_config("local", smoke), stack="local")


@pytest.fixture(scope="module")
def enabled() -> dict[str, Run]:
    return {cloud: _run(cloud, SMOKE_ON) for cloud in ("azure", "kubernetes", "local")}


def test_every_stack_exports_the_same_smoke_test_outputs(enabled: dict[str, Run]) -> None:
    names = {cloud: sorted(k for k in run.outputs if k.startswith("smoke_test")) for cloud, run in enabled.items()}
    assert names == {cloud: sorted(SMOKE_TEST_OUTPUTS) for cloud in enabled}, f"smoke outputs per stack: {names}"
    assert "smoke_test_timings" in SMOKE_TEST_OUTPUTS, "the stage timings are an output on every stack"


def test_every_stack_creates_one_smoke_test_from_the_same_config_after_its_workspace(enabled: dict[str, Run]) -> None:
    for cloud, run in enabled.items():
        smoke = run.one(SMOKE_TYPE)
        assert smoke.name == "smoke-test", cloud
        assert (smoke.inputs["timeout"], smoke.inputs["triggers"]) == (30, ["t1"]), cloud
        assert smoke.inputs["repository"] == "modelops/bundles", cloud
        assert smoke.inputs["bundle_digest"].startswith("sha256:"), f"{cloud}: the digest is computed in the program"
        assert smoke.inputs["registry"] == run.outputs["acr_login_server"], f"{cloud}: it pushes to the stack registry"
        assert smoke.dependencies, f"{cloud}: the smoke test must wait for the workspace"


def test_the_local_stack_reaches_the_scheduler_by_address_and_clusters_through_the_kubernetes_api(
    enabled: dict[str, Run],
) -> None:
    local = enabled["local"].one(SMOKE_TYPE).inputs
    assert local["scheduler_address"] == enabled["local"].outputs["scheduler_address"] == "tcp://127.0.0.1:8786"
    assert local.get("kubeconfig") is None
    for cloud in ("azure", "kubernetes"):
        inputs = enabled[cloud].one(SMOKE_TYPE).inputs
        assert inputs.get("scheduler_address") is None, cloud
        assert (inputs["namespace"], inputs["scheduler_service"]) == ("modelops", "dask-scheduler"), cloud


@pytest.mark.parametrize("cloud", ["azure", "kubernetes", "local"])
def test_a_disabled_smoke_test_creates_nothing_and_exports_nothing_on_any_stack(cloud: str) -> None:
    run = _run(cloud, SMOKE_OFF)
    assert run.of_type(SMOKE_TYPE) == []
    assert not [k for k in run.outputs if k.startswith("smoke_test")], f"{cloud}: {sorted(run.outputs)}"
