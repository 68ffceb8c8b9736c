"""Stack configuration: defaults, parsing, and errors that name the key."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import yaml

from modelops_infra.bundles import parse_bool
from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.config import StackConfig, load_stack_config, parse_stack_config
from modelops_infra.infra.config_schema import declared_defaults, top_level_keys
from tests.infra.stack_harness import REPO_ROOT


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
    assert (cfg.workspace.threads, cfg.workspace.cpu, cfg.workspace.memory) == (3, "4", "16Gi")
    assert cfg.workspace.autoscale.enabled is True


@pytest.mark.parametrize("cache_size", ["10Gi", "2Gi", "1280Mi"])
def test_a_cache_size_that_leaves_a_cap_is_kept_as_written(cache_size: str) -> None:
    assert parse_stack_config({"workspace": {"cacheSize": cache_size}}).workspace.cache_size == cache_size


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
        ({"smokeTest": {"enabled": "perhaps"}}, "modelops:smokeTest.enabled: expected true or false, got 'perhaps'"),
        ({"smokeTest": {"enabled": 1}}, "modelops:smokeTest.enabled: expected true or false, got 1"),
        ({"local": {"workers": 0}}, "modelops:local.workers: must be >= 1, got 0"),
        ({"workspace": {"scheduler": {"cpu": "lots"}}}, "modelops:workspace.scheduler.cpu: malformed CPU quantity"),
        ({"workspace": {"extraPackages": ["ok", " "]}}, "modelops:workspace.extraPackages: expected a list of"),
        ({"kubernetes": {"context": "lab"}}, "modelops:kubernetes: is read only when modelops:cloud is kubernetes"),
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


# --------------------------------------------------------------------------- one declaration per key


def _same_as_declared(given: Any, declared: Any, where: str) -> None:
    """``given`` (Pulumi.yaml) sets only declared keys, each to its declared default."""
    if isinstance(given, dict):
        assert isinstance(declared, dict), f"{where}: Pulumi.yaml has an object, the declaration a value"
        for key, value in given.items():
            assert key in declared, f"{where}.{key}: in Pulumi.yaml but not declared"
            _same_as_declared(value, declared[key], f"{where}.{key}")
        return
    # Pulumi.yaml spells lists as lists, and an unset optional string as "" (a declared key needs a default).
    given = tuple(given) if isinstance(given, list) else None if given == "" else given
    assert given == declared, f"{where}: Pulumi.yaml default {given!r}, declared {declared!r}"


def test_pulumi_yaml_declares_the_same_keys_with_the_same_defaults_as_the_config_declarations() -> None:
    project = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    kinds = dict(top_level_keys(StackConfig))
    declared = declared_defaults(StackConfig)
    # The secrets are left out on purpose: declared without a default they would be required on every stack.
    assert set(project) == {k for k, kind in kinds.items() if kind != "secret"}, "top-level keys differ"
    for key, decl in project.items():
        assert decl["type"] == ("object" if kinds[key] == "object" else "string"), f"{key}: type {decl['type']}"
        _same_as_declared(decl["default"], declared[key], f"modelops:{key}")
    assert parse_stack_config({k: d["default"] for k, d in project.items()}) == StackConfig()


def _sections(defaults: dict[str, Any], path: str = "") -> list[str]:
    found = [path]
    for key, value in defaults.items():
        if isinstance(value, dict):
            found += _sections(value, f"{path}.{key}" if path else key)
    return found


@pytest.mark.parametrize("path", _sections(declared_defaults(StackConfig)))
def test_every_declared_object_refuses_a_key_it_does_not_declare(path: str) -> None:
    raw: dict[str, Any] = {"bogusKey": 1}
    for part in reversed(path.split(".") if path else []):
        raw = {part: raw}
    if path.startswith("kubernetes"):
        raw["cloud"] = "kubernetes"
    with pytest.raises(ConfigurationError) as info:
        parse_stack_config(raw)
    full = f"modelops:{path}.bogusKey" if path else "modelops:bogusKey"
    assert f"unknown configuration key {full}" in str(info.value), str(info.value)
    assert info.value.key == full


def test_every_declared_key_is_read_from_its_camel_case_name() -> None:
    def walk_keys(defaults: dict[str, Any], path: str = "") -> list[str]:
        out = []
        for key, value in defaults.items():
            full = f"{path}.{key}" if path else key
            out += walk_keys(value, full) if isinstance(value, dict) else [full]
        return out

    keys = walk_keys(declared_defaults(StackConfig))
    assert "aks.workerPool.osDiskSizeGb" in keys and "workspace.autoscale.targetCpuUtilization" in keys
    assert all("_" not in k for k in keys), f"snake_case leaked into a config key: {[k for k in keys if '_' in k]}"


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("true", True), ("YES", True), ("on", True),
                                               ("0", False), ("false", False), ("No", False), ("off", False)])
def test_config_booleans_speak_the_one_vocabulary_of_the_bundle_settings(text: str, expected: bool) -> None:
    assert parse_bool(text, key="MODELOPS_BUNDLE_INSECURE") is expected
    assert parse_stack_config({"smokeTest": {"enabled": text}}).smoke_test.enabled is expected
    assert parse_stack_config({"workspace": {"autoscale": {"enabled": text}}}).workspace.autoscale.enabled is expected


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_the_local_stack_config_and_its_workers_provider_agree_on_the_worker_count(workers: int) -> None:
    from modelops_infra.infra.local.workspace import WorkersProvider

    provider_accepts = WorkersProvider().check({}, {"count": workers}).failures == []
    try:
        parse_stack_config({"local": {"workers": workers}})
        config_accepts = True
    except ConfigurationError:
        config_accepts = False
    assert config_accepts == provider_accepts == (workers >= 1)


def test_a_kubernetes_workspace_may_be_scaled_to_zero_workers() -> None:
    assert parse_stack_config({"workspace": {"workers": 0}}).workspace.workers == 0


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", 0, -3, "0"])
def test_a_timeout_that_is_not_a_finite_positive_number_is_refused_naming_the_key(value):
    with pytest.raises(ConfigurationError) as info:
        parse_stack_config({"cloud": "local", "smokeTest": {"timeout": value}})
    assert "modelops:smokeTest.timeout" in str(info.value)
