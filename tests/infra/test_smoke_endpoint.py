"""Choosing the scheduler pod to port-forward to (pure, on real kubernetes client models)."""

from __future__ import annotations

import pytest
from kubernetes.client import V1ObjectMeta, V1Pod, V1PodCondition, V1PodStatus

from modelops_infra.errors import SmokeTestError
from modelops_infra.infra.smoke._endpoint import pick_pod, scheduler_endpoint


def pod(name: str, labels: dict[str, str], phase: str = "Running", ready: str = "True") -> V1Pod:
    return V1Pod(metadata=V1ObjectMeta(name=name, labels=labels),
                 status=V1PodStatus(phase=phase, conditions=[V1PodCondition(type="Ready", status=ready)]))


SELECTOR = {"app.kubernetes.io/component": "scheduler", "app.kubernetes.io/instance": "dask"}


def test_picks_a_running_ready_pod_matching_the_service_selector():
    pods = [pod("worker-1", {"app.kubernetes.io/component": "worker", "app.kubernetes.io/instance": "dask"}),
            pod("sched-old", SELECTOR, phase="Succeeded"),
            pod("sched-starting", SELECTOR, ready="False"),
            pod("sched-live", {**SELECTOR, "pod-template-hash": "abc"})]
    assert pick_pod(SELECTOR, pods) == "sched-live"


def test_no_matching_pod_is_a_connect_stage_error():
    with pytest.raises(SmokeTestError, match=r"^no Running, Ready pod matches") as info:
        pick_pod(SELECTOR, [pod("sched", SELECTOR, ready="False")])
    assert info.value.stage == "connect"


def test_a_direct_address_is_used_as_is():
    with scheduler_endpoint({"scheduler_address": "tcp://10.0.0.5:8786"}, timeout=5) as address:
        assert address == "tcp://10.0.0.5:8786"


TOKEN = "kubeconfig-token-must-not-leak-4242"


@pytest.mark.parametrize(("kubeconfig", "needle"), [
    (f"users:\n- name: u\n  user:\n    token: {TOKEN}\n  bad: [unclosed\n", "not valid YAML at line"),
    (f"- token: {TOKEN}\n", "YAML list, not a mapping"),
    (f"apiVersion: v1\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\ncurrent-context: missing-{TOKEN}\n",
     "cannot be loaded"),
])
def test_a_malformed_kubeconfig_is_a_connect_error_that_never_shows_its_content(kubeconfig, needle):
    import traceback

    props = {"kubeconfig": kubeconfig, "namespace": "modelops", "scheduler_service": "dask-scheduler"}
    with pytest.raises(SmokeTestError) as info:
        with scheduler_endpoint(props, timeout=5):
            pass
    assert info.value.stage == "connect" and needle in str(info.value), str(info.value)
    shown = "".join(traceback.format_exception(info.value))  # what Pulumi prints for a provider error
    assert TOKEN not in shown, f"the kubeconfig's content leaked into the error or its traceback:\n{shown}"
