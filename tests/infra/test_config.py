"""Stack configuration: defaults, parsing, and errors that name the key."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.config import StackConfig, load_stack_config, parse_stack_config


class FakeConfig:
    """The slice of pulumi.Config that load_stack_config uses."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def get(self, key: str) -> str | None:
        value = self.values.get(key)
        return value if value is None or isinstance(value, str) else str(value)

    def get_object(self, key: str) -> Any:
        return self.values.get(key)


def test_empty_config_gives_the_documented_defaults() -> None:
    cfg = parse_stack_config({})
    assert cfg == StackConfig()
    assert cfg.cloud == "azure"
    assert cfg.infra_stack is None
    assert cfg.registry.sku == "Standard"
    assert cfg.smoke_test.enabled is True
    assert cfg.smoke_test.bundle is None
    assert cfg.smoke_test.timeout == 120.0
    assert cfg.smoke_test.triggers == ()
    assert (cfg.local.registry_port, cfg.local.scheduler_port, cfg.local.dashboard_port, cfg.local.workers) == (
        5050, 8786, 8787, 2,
    )


def test_nested_values_are_read_from_structured_objects() -> None:
    cfg = load_stack_config(
        FakeConfig(
            {
                "cloud": "local",
                "infraStack": "acme/modelops/infra",
                "smokeTest": {"enabled": "false", "bundle": "examples/sim", "timeout": "45", "triggers": [1, "b"]},
                "local": {"registryPort": "5999", "workers": 3},
                "aks": {"workerPool": {"minCount": 0, "maxCount": 10}},
                "workspace": {"threads": 3, "cpu": "4", "memory": "16Gi", "autoscale": {"enabled": True}},
            }
        )
    )
    assert cfg.cloud == "local"
    assert cfg.infra_stack == "acme/modelops/infra"
    assert cfg.smoke_test.enabled is False
    assert cfg.smoke_test.bundle == "examples/sim"
    assert cfg.smoke_test.timeout == 45.0
    assert cfg.smoke_test.triggers == ("1", "b")
    assert cfg.local.registry_port == 5999
    assert cfg.local.workers == 3
    assert (cfg.aks.worker_pool.min_count, cfg.aks.worker_pool.max_count) == (0, 10)
    assert cfg.workspace.nthreads == 3
    assert cfg.workspace.memory_bytes == 16 * 2**30
    assert cfg.workspace.autoscale.enabled is True


def test_nthreads_default_to_whole_cores() -> None:
    assert parse_stack_config({"workspace": {"cpu": "2500m"}}).workspace.nthreads == 2
    assert parse_stack_config({"workspace": {"cpu": "500m"}}).workspace.nthreads == 1


@pytest.mark.parametrize(("cache_size", "cap"), [("10Gi", 8 * 2**30), ("2Gi", 2**30), ("1280Mi", 256 * 2**20)])
def test_cache_cap_derives_from_cache_size(cache_size: str, cap: int) -> None:
    assert parse_stack_config({"workspace": {"cacheSize": cache_size}}).workspace.cache_max_bytes == cap


def test_default_cache_cap_is_8gib_of_the_10gib_volume() -> None:
    assert StackConfig().workspace.cache_max_bytes == 8 * 2**30


def test_empty_infra_stack_means_same_stack() -> None:
    assert parse_stack_config({"infraStack": ""}).infra_stack is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"registry": {"sku": "Gold"}}, "modelops:registry.sku: unknown SKU 'Gold'; expected one of Basic, Standard, Premium"),
        (
            {"aks": {"workerPool": {"minCount": 3, "maxCount": 2}}},
            "modelops:aks.workerPool.minCount (3) > modelops:aks.workerPool.maxCount (2)",
        ),
        ({"workspace": {"workers": -1}}, "modelops:workspace.workers: must be >= 0, got -1"),
        ({"workspace": {"workers": "two"}}, "modelops:workspace.workers: expected an integer, got 'two'"),
        ({"workspace": {"workers": True}}, "modelops:workspace.workers: expected an integer"),
        ({"workspace": {"memory": "8GB"}}, "modelops:workspace.memory: malformed memory quantity '8GB'"),
        ({"workspace": {"cacheSize": "big"}}, "modelops:workspace.cacheSize: malformed memory quantity 'big'"),
        ({"workspace": {"cacheSize": "500Mi"}}, "modelops:workspace.cacheSize: '500Mi' is too small for the bundle cache"),
        ({"workspace": {"cacheSize": "1Gi"}}, "modelops:workspace.cacheSize: '1Gi' is too small for the bundle cache"),
        ({"workspace": {"cpu": "two"}}, "modelops:workspace.cpu: malformed CPU quantity 'two'"),
        ({"workspace": {"threads": 0}}, "modelops:workspace.threads: must be >= 1, got 0"),
        ({"workspace": {"namespace": "Bad_NS"}}, "modelops:workspace.namespace: 'Bad_NS' is not a valid Kubernetes name"),
        (
            {"workspace": {"autoscale": {"minReplicas": 5, "maxReplicas": 2}}},
            "modelops:workspace.autoscale.minReplicas (5) > modelops:workspace.autoscale.maxReplicas (2)",
        ),
        ({"aks": "big"}, "modelops:aks: expected a structured object"),
        ({"aks": {"systemPool": {"count": 0}}}, "modelops:aks.systemPool.count: must be >= 1, got 0"),
        ({"smokeTest": {"enabled": "yes"}}, "modelops:smokeTest.enabled: expected true or false, got 'yes'"),
        ({"smokeTest": {"timeout": 0}}, "modelops:smokeTest.timeout: must be > 0 seconds"),
        ({"smokeTest": {"triggers": "a"}}, "modelops:smokeTest.triggers: expected a list"),
        ({"local": {"registryPort": 70000}}, "modelops:local.registryPort: must be <= 65535, got 70000"),
        ({"workspace": {"memroy": "4Gi"}}, "unknown configuration key modelops:workspace.memroy"),
        ({"registy": {}}, "unknown configuration key modelops:registy"),
        ({"cloud": "gcp"}, "modelops:cloud: unknown cloud 'gcp'"),
    ],
)
def test_invalid_values_raise_configuration_error_naming_the_key(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_stack_config(raw)
    assert message in str(info.value), f"expected {message!r} in {str(info.value)!r}"


def test_config_module_imports_no_cloud_sdk() -> None:
    import subprocess

    code = (
        "import sys, modelops_infra.infra.config, modelops_infra.infra.program, modelops_infra.infra;"
        "print([m for m in ('pulumi_azure_native','pulumi_kubernetes','pulumi_random') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
