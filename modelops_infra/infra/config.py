"""Typed stack configuration for the ``modelops`` Pulumi project.

Stack configuration lives under the ``modelops:`` namespace. Nested settings
are structured objects (``pulumi config set --path modelops:aks.workerPool.maxCount 5``).
:func:`load_stack_config` reads them when called (never at import time),
:func:`parse_stack_config` validates them purely, and both raise
:class:`~modelops_infra.errors.ConfigurationError` whose message names the
offending key, so ``pulumi preview`` fails before any resource is planned::

    modelops:aks.workerPool.minCount (3) > modelops:aks.workerPool.maxCount (2)

Keys (camelCase in YAML, snake_case here)::

    modelops:cloud            azure | local                       (default azure)
    modelops:infraStack       org/project/stack holding the registry (optional)
    modelops:registry         sku (Basic|Standard|Premium), resourceGroup
    modelops:aks              kubernetesVersion, systemPool{vmSize,count},
                              workerPool{vmSize,minCount,maxCount,osDiskSizeGb}
    modelops:workspace        namespace, workers, threads, cpu, memory, image, baseImage,
                              extraPackages, imageTag,
                              bundleRepository, cacheSize, scheduler{cpu,memory},
                              autoscale{enabled,minReplicas,maxReplicas,targetCpuUtilization}
    modelops:smokeTest        enabled, bundle, timeout, triggers
    modelops:local            registryPort, schedulerPort, dashboardPort, workers

This module imports no cloud SDK: the local stack reads the same object.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from modelops_infra.errors import ConfigurationError, ReferenceError_
from modelops_infra.infra.quantities import bundle_cache_cap, parse_cpu, parse_memory

__all__ = [
    "AksConfig",
    "AutoscaleConfig",
    "CONFIG_NAMESPACE",
    "ConfigSource",
    "LocalConfig",
    "RegistryConfig",
    "REGISTRY_SKUS",
    "SchedulerConfig",
    "SmokeTestConfig",
    "StackConfig",
    "SystemPoolConfig",
    "WorkerPoolConfig",
    "WorkspaceConfig",
    "load_stack_config",
    "parse_stack_config",
]

logger = logging.getLogger(__name__)

CONFIG_NAMESPACE = "modelops"
REGISTRY_SKUS = ("Basic", "Standard", "Premium")
CLOUDS = ("azure", "local")

#: The worker image's default base: a slim official Python image of the clients' Python version.
#: TODO(issue 9): pin by digest (``@sha256:…``) once it has been checked against Docker Hub; the
#: machines this was written on cannot reach any public container registry.
DEFAULT_BASE_IMAGE = "docker.io/library/python:3.11-slim-bookworm"
#: Installed into the worker image beside ``modelops-infra[azure]`` and uv (bokeh renders the dashboard).
DEFAULT_EXTRA_PACKAGES = ("bokeh>=3.1",)

#: Top-level keys that hold structured objects, and those that hold scalars.
_OBJECT_KEYS = ("registry", "aks", "workspace", "smokeTest", "local")
_SCALAR_KEYS = ("cloud", "infraStack")


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class RegistryConfig:
    """``modelops:registry``: the Azure Container Registry."""

    sku: str = "Standard"
    #: An existing resource group to deploy into; ``None`` creates one.
    resource_group: str | None = None


@dataclass(frozen=True)
class SystemPoolConfig:
    """``modelops:aks.systemPool``: the AKS system node pool (fixed size)."""

    vm_size: str = "Standard_D2s_v5"
    count: int = 1


@dataclass(frozen=True)
class WorkerPoolConfig:
    """``modelops:aks.workerPool``: the autoscaling user pool Dask workers run on."""

    vm_size: str = "Standard_D4s_v5"
    min_count: int = 1
    max_count: int = 3
    os_disk_size_gb: int = 128


@dataclass(frozen=True)
class AksConfig:
    """``modelops:aks``: the managed cluster."""

    kubernetes_version: str | None = None
    system_pool: SystemPoolConfig = field(default_factory=SystemPoolConfig)
    worker_pool: WorkerPoolConfig = field(default_factory=WorkerPoolConfig)


@dataclass(frozen=True)
class SchedulerConfig:
    """``modelops:workspace.scheduler``: the scheduler container's resources."""

    cpu: str = "1"
    memory: str = "2Gi"


@dataclass(frozen=True)
class AutoscaleConfig:
    """``modelops:workspace.autoscale``: an optional HPA on the worker Deployment."""

    enabled: bool = False
    min_replicas: int = 1
    max_replicas: int = 10
    target_cpu_utilization: int = 70


@dataclass(frozen=True)
class WorkspaceConfig:
    """``modelops:workspace``: the Dask scheduler and workers on the cluster."""

    namespace: str = "modelops"
    workers: int = 2
    #: Threads per worker; ``None`` derives it from ``cpu`` (whole cores, at least 1).
    threads: int | None = None
    cpu: str = "2"
    memory: str = "8Gi"
    #: Full image reference (any prebuilt image, by tag or digest); ``None`` builds the image in the stack
    #: (``WorkerImage`` from ``base_image``, pushed to ``<login_server>/modelops/dask-worker``, used by digest).
    image: str | None = None
    #: The base of the built image: ``registry/repository[:tag|@digest]``, linux/amd64, the clients' Python.
    base_image: str = DEFAULT_BASE_IMAGE
    #: Packages installed into the built image beside ``modelops-infra[azure]`` and uv.
    extra_packages: tuple[str, ...] = DEFAULT_EXTRA_PACKAGES
    #: A tag given to the built image as well (the Deployments use its digest).
    image_tag: str = "latest"
    bundle_repository: str = "modelops/bundles"
    #: The workers' bundle cache volume; the LRU cap is derived from it (:attr:`cache_max_bytes`).
    cache_size: str = "10Gi"
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    autoscale: AutoscaleConfig = field(default_factory=AutoscaleConfig)

    @property
    def cpu_millis(self) -> int:
        return parse_cpu(self.cpu, key=_key("workspace", "cpu"))

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory, key=_key("workspace", "memory"))

    @property
    def cache_max_bytes(self) -> int:
        """The workers' ``MODELOPS_BUNDLE_CACHE_MAX_BYTES``, below ``cache_size`` by one bundle's headroom."""
        return bundle_cache_cap(self.cache_size, key=_key("workspace", "cacheSize"))

    @property
    def nthreads(self) -> int:
        """Threads per Dask worker: ``threads`` if set, else whole cores of ``cpu``."""
        if self.threads is not None:
            return self.threads
        return max(1, self.cpu_millis // 1000)


@dataclass(frozen=True)
class SmokeTestConfig:
    """``modelops:smokeTest``: the deploy-time ``BundleSmokeTest`` (on by default)."""

    enabled: bool = True
    #: Bundle directory to push and run; ``None`` means the built-in test bundle.
    bundle: str | None = None
    #: Seconds the whole smoke test may take.
    timeout: float = 120.0
    #: Arbitrary values; changing any of them re-runs the test.
    triggers: tuple[str, ...] = ()


@dataclass(frozen=True)
class LocalConfig:
    """``modelops:local``: the one-machine stack (``modelops:cloud: local``)."""

    registry_port: int = 5050
    scheduler_port: int = 8786
    dashboard_port: int = 8787
    workers: int = 2


@dataclass(frozen=True)
class StackConfig:
    """Everything the program reads from stack configuration, validated."""

    cloud: str = "azure"
    #: ``org/project/stack`` of a stack exporting ``acr_login_server``; ``None`` = same stack.
    infra_stack: str | None = None
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    aks: AksConfig = field(default_factory=AksConfig)
    workspace: WorkspaceConfig = field(default_factory=WorkspaceConfig)
    smoke_test: SmokeTestConfig = field(default_factory=SmokeTestConfig)
    local: LocalConfig = field(default_factory=LocalConfig)


# --------------------------------------------------------------------------- loading


class ConfigSource(Protocol):
    """The two calls of :class:`pulumi.Config` this module uses."""

    def get(self, key: str) -> str | None: ...

    def get_object(self, key: str) -> Any: ...


def load_stack_config(source: ConfigSource | None = None) -> StackConfig:
    """Read and validate the ``modelops:`` stack configuration.

    ``source`` defaults to ``pulumi.Config("modelops")``, created at call time.
    Raises :class:`ConfigurationError` naming the key on any invalid value,
    including an object that is not valid JSON.
    """
    import pulumi

    if source is None:
        source = pulumi.Config(CONFIG_NAMESPACE)
    raw: dict[str, Any] = {}
    for key in _SCALAR_KEYS:
        value = source.get(key)
        if value is not None:
            raw[key] = value
    for key in _OBJECT_KEYS:
        try:
            value = source.get_object(key)
        except (pulumi.ConfigTypeError, ValueError) as exc:  # translate at the seam
            raise ConfigurationError(
                f"{CONFIG_NAMESPACE}:{key}: expected a structured object: {exc}",
                hint=f"set nested values with `pulumi config set --path {CONFIG_NAMESPACE}:{key}.<field> VALUE`",
                key=f"{CONFIG_NAMESPACE}:{key}",
            ) from exc
        if value is not None:
            raw[key] = value
    cfg = parse_stack_config(raw)
    logger.debug("loaded stack config: %s", cfg)
    return cfg


def parse_stack_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a mapping of ``modelops:`` keys (without the namespace) into a StackConfig.

    Pure: no Pulumi runtime needed. Unknown keys are errors, so typos do not
    silently fall back to defaults.
    """
    _reject_unknown(raw, (*_SCALAR_KEYS, *_OBJECT_KEYS), prefix="")
    cloud = _str(raw, "cloud", default="azure", prefix="")
    if cloud not in CLOUDS:
        raise ConfigurationError(
            f"{_key('cloud')}: unknown cloud {cloud!r}; expected one of {', '.join(CLOUDS)}",
            key=_key("cloud"),
        )
    infra_stack = _opt_str(raw, "infraStack", prefix="")
    return StackConfig(
        cloud=cloud,
        infra_stack=infra_stack or None,
        registry=_parse_registry(_obj(raw, "registry", prefix="")),
        aks=_parse_aks(_obj(raw, "aks", prefix="")),
        workspace=_parse_workspace(_obj(raw, "workspace", prefix="")),
        smoke_test=_parse_smoke_test(_obj(raw, "smokeTest", prefix="")),
        local=_parse_local(_obj(raw, "local", prefix="")),
    )


def _parse_registry(raw: Mapping[str, Any]) -> RegistryConfig:
    p = "registry"
    _reject_unknown(raw, ("sku", "resourceGroup"), prefix=p)
    sku = _str(raw, "sku", default="Standard", prefix=p)
    if sku not in REGISTRY_SKUS:
        raise ConfigurationError(
            f"{_key(p, 'sku')}: unknown SKU {sku!r}; expected one of {', '.join(REGISTRY_SKUS)}",
            key=_key(p, "sku"),
        )
    return RegistryConfig(sku=sku, resource_group=_opt_str(raw, "resourceGroup", prefix=p))


def _parse_aks(raw: Mapping[str, Any]) -> AksConfig:
    p = "aks"
    _reject_unknown(raw, ("kubernetesVersion", "systemPool", "workerPool"), prefix=p)
    sp_raw = _obj(raw, "systemPool", prefix=p)
    sp = f"{p}.systemPool"
    _reject_unknown(sp_raw, ("vmSize", "count"), prefix=sp)
    system = SystemPoolConfig(
        vm_size=_str(sp_raw, "vmSize", default=SystemPoolConfig.vm_size, prefix=sp),
        count=_int(sp_raw, "count", default=SystemPoolConfig.count, prefix=sp, minimum=1),
    )
    wp_raw = _obj(raw, "workerPool", prefix=p)
    wp = f"{p}.workerPool"
    _reject_unknown(wp_raw, ("vmSize", "minCount", "maxCount", "osDiskSizeGb"), prefix=wp)
    worker = WorkerPoolConfig(
        vm_size=_str(wp_raw, "vmSize", default=WorkerPoolConfig.vm_size, prefix=wp),
        min_count=_int(wp_raw, "minCount", default=WorkerPoolConfig.min_count, prefix=wp, minimum=0),
        max_count=_int(wp_raw, "maxCount", default=WorkerPoolConfig.max_count, prefix=wp, minimum=1),
        os_disk_size_gb=_int(
            wp_raw, "osDiskSizeGb", default=WorkerPoolConfig.os_disk_size_gb, prefix=wp, minimum=30
        ),
    )
    _check_bounds(worker.min_count, worker.max_count, f"{wp}.minCount", f"{wp}.maxCount")
    return AksConfig(
        kubernetes_version=_opt_str(raw, "kubernetesVersion", prefix=p),
        system_pool=system,
        worker_pool=worker,
    )


def _parse_workspace(raw: Mapping[str, Any]) -> WorkspaceConfig:
    p = "workspace"
    _reject_unknown(
        raw,
        (
            "namespace", "workers", "threads", "cpu", "memory", "image", "baseImage", "extraPackages", "imageTag",
            "bundleRepository", "cacheSize", "scheduler", "autoscale",
        ),
        prefix=p,
    )
    d = WorkspaceConfig
    threads = _opt_int(raw, "threads", prefix=p, minimum=1)
    cpu = _str(raw, "cpu", default=d.cpu, prefix=p)
    memory = _str(raw, "memory", default=d.memory, prefix=p)
    cache_size = _str(raw, "cacheSize", default=d.cache_size, prefix=p)
    parse_cpu(cpu, key=_key(p, "cpu"))
    parse_memory(memory, key=_key(p, "memory"))
    # Not just a quantity: it must leave a positive LRU cap after the in-flight headroom.
    bundle_cache_cap(cache_size, key=_key(p, "cacheSize"))

    s_raw = _obj(raw, "scheduler", prefix=p)
    sp = f"{p}.scheduler"
    _reject_unknown(s_raw, ("cpu", "memory"), prefix=sp)
    scheduler = SchedulerConfig(
        cpu=_str(s_raw, "cpu", default=SchedulerConfig.cpu, prefix=sp),
        memory=_str(s_raw, "memory", default=SchedulerConfig.memory, prefix=sp),
    )
    parse_cpu(scheduler.cpu, key=_key(sp, "cpu"))
    parse_memory(scheduler.memory, key=_key(sp, "memory"))

    a_raw = _obj(raw, "autoscale", prefix=p)
    ap = f"{p}.autoscale"
    _reject_unknown(a_raw, ("enabled", "minReplicas", "maxReplicas", "targetCpuUtilization"), prefix=ap)
    a = AutoscaleConfig
    autoscale = AutoscaleConfig(
        enabled=_bool(a_raw, "enabled", default=a.enabled, prefix=ap),
        min_replicas=_int(a_raw, "minReplicas", default=a.min_replicas, prefix=ap, minimum=0),
        max_replicas=_int(a_raw, "maxReplicas", default=a.max_replicas, prefix=ap, minimum=1),
        target_cpu_utilization=_int(
            a_raw, "targetCpuUtilization", default=a.target_cpu_utilization, prefix=ap, minimum=1
        ),
    )
    _check_bounds(autoscale.min_replicas, autoscale.max_replicas, f"{ap}.minReplicas", f"{ap}.maxReplicas")

    namespace = _str(raw, "namespace", default=d.namespace, prefix=p)
    _check_dns_label(namespace, _key(p, "namespace"))
    base_image = _str(raw, "baseImage", default=d.base_image, prefix=p)
    _check_image_reference(base_image, _key(p, "baseImage"))
    extra_raw = raw.get("extraPackages", list(d.extra_packages))
    if extra_raw is None:
        extra_raw = []
    if not isinstance(extra_raw, list) or not all(isinstance(x, str) and x.strip() for x in extra_raw):
        raise ConfigurationError(f"{_key(p, 'extraPackages')}: expected a list of requirement strings, "
                                 f"got {extra_raw!r}", key=_key(p, "extraPackages"))
    return WorkspaceConfig(
        namespace=namespace,
        workers=_int(raw, "workers", default=d.workers, prefix=p, minimum=0),
        threads=threads,
        cpu=cpu,
        memory=memory,
        image=_opt_str(raw, "image", prefix=p),
        base_image=base_image,
        extra_packages=tuple(extra_raw),
        image_tag=_str(raw, "imageTag", default=d.image_tag, prefix=p),
        bundle_repository=_str(raw, "bundleRepository", default=d.bundle_repository, prefix=p),
        cache_size=cache_size,
        scheduler=scheduler,
        autoscale=autoscale,
    )


def _parse_smoke_test(raw: Mapping[str, Any]) -> SmokeTestConfig:
    p = "smokeTest"
    _reject_unknown(raw, ("enabled", "bundle", "timeout", "triggers"), prefix=p)
    timeout = _number(raw, "timeout", default=SmokeTestConfig.timeout, prefix=p)
    if timeout <= 0:
        raise ConfigurationError(f"{_key(p, 'timeout')}: must be > 0 seconds, got {timeout}", key=_key(p, "timeout"))
    triggers_raw = raw.get("triggers", [])
    if triggers_raw is None:
        triggers_raw = []
    if not isinstance(triggers_raw, list):
        raise ConfigurationError(
            f"{_key(p, 'triggers')}: expected a list, got {triggers_raw!r}", key=_key(p, "triggers")
        )
    return SmokeTestConfig(
        enabled=_bool(raw, "enabled", default=SmokeTestConfig.enabled, prefix=p),
        bundle=_opt_str(raw, "bundle", prefix=p),
        timeout=timeout,
        triggers=tuple(str(t) for t in triggers_raw),
    )


def _parse_local(raw: Mapping[str, Any]) -> LocalConfig:
    p = "local"
    _reject_unknown(raw, ("registryPort", "schedulerPort", "dashboardPort", "workers"), prefix=p)
    d = LocalConfig
    ports = {
        name: _int(raw, name, default=default, prefix=p, minimum=1, maximum=65535)
        for name, default in (
            ("registryPort", d.registry_port),
            ("schedulerPort", d.scheduler_port),
            ("dashboardPort", d.dashboard_port),
        )
    }
    return LocalConfig(
        registry_port=ports["registryPort"],
        scheduler_port=ports["schedulerPort"],
        dashboard_port=ports["dashboardPort"],
        workers=_int(raw, "workers", default=d.workers, prefix=p, minimum=0),
    )


# --------------------------------------------------------------------------- field readers


def _key(*parts: str) -> str:
    return f"{CONFIG_NAMESPACE}:" + ".".join(p for p in parts if p)


def _reject_unknown(raw: Mapping[str, Any], known: tuple[str, ...], *, prefix: str) -> None:
    unknown = sorted(set(raw) - set(known))
    if unknown:
        keys = ", ".join(_key(prefix, k) for k in unknown)
        raise ConfigurationError(
            f"unknown configuration key {keys}",
            hint=f"known keys here: {', '.join(known)}",
            key=_key(prefix, unknown[0]),
        )


def _obj(raw: Mapping[str, Any], name: str, *, prefix: str) -> Mapping[str, Any]:
    value = raw.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(
            f"{_key(prefix, name)}: expected a structured object, got {value!r}",
            hint=f"use `pulumi config set --path {_key(prefix, name)}.<field> VALUE`",
            key=_key(prefix, name),
        )
    return value


def _opt_str(raw: Mapping[str, Any], name: str, *, prefix: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigurationError(f"{_key(prefix, name)}: expected a string, got {value!r}", key=_key(prefix, name))
    return value


def _str(raw: Mapping[str, Any], name: str, *, default: str, prefix: str) -> str:
    value = _opt_str(raw, name, prefix=prefix)
    if value is None:
        return default
    if not value.strip():
        raise ConfigurationError(f"{_key(prefix, name)}: must not be empty", key=_key(prefix, name))
    return value


def _opt_int(
    raw: Mapping[str, Any], name: str, *, prefix: str, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    key = _key(prefix, name)
    # `pulumi config set --path` may store numbers as strings; accept "3" but not "three" or true.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigurationError(f"{key}: expected an integer, got {value!r}", key=key)
    try:
        number = int(value)
    except ValueError as exc:
        raise ConfigurationError(f"{key}: expected an integer, got {value!r}", key=key) from exc
    if minimum is not None and number < minimum:
        raise ConfigurationError(f"{key}: must be >= {minimum}, got {number}", key=key)
    if maximum is not None and number > maximum:
        raise ConfigurationError(f"{key}: must be <= {maximum}, got {number}", key=key)
    return number


def _int(
    raw: Mapping[str, Any],
    name: str,
    *,
    default: int,
    prefix: str,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _opt_int(raw, name, prefix=prefix, minimum=minimum, maximum=maximum)
    return default if value is None else value


def _number(raw: Mapping[str, Any], name: str, *, default: float, prefix: str) -> float:
    value = raw.get(name)
    if value is None:
        return default
    key = _key(prefix, name)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigurationError(f"{key}: expected a number, got {value!r}", key=key)
    try:
        return float(value)
    except ValueError as exc:
        raise ConfigurationError(f"{key}: expected a number, got {value!r}", key=key) from exc


def _bool(raw: Mapping[str, Any], name: str, *, default: bool, prefix: str) -> bool:
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    key = _key(prefix, name)
    raise ConfigurationError(f"{key}: expected true or false, got {value!r}", key=key)


def _check_bounds(low: int, high: int, low_name: str, high_name: str) -> None:
    if low > high:
        raise ConfigurationError(
            f"{_key(low_name)} ({low}) > {_key(high_name)} ({high})",
            hint="the minimum must not exceed the maximum",
            key=_key(low_name),
        )


def _check_image_reference(value: str, key: str) -> None:
    from modelops_infra.bundles._reference import Reference

    try:
        ref = Reference.parse(value)
    except ReferenceError_ as exc:
        raise ConfigurationError(f"{key}: {exc.message}", key=key) from exc
    if ref.registry is None:
        raise ConfigurationError(f"{key}: {value!r} names no registry",
                                 hint="write registry/repository[:tag|@sha256:...], e.g. docker.io/library/python:3.11-slim",
                                 key=key)


def _check_dns_label(value: str, key: str) -> None:
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ConfigurationError(
            f"{key}: {value!r} is not a valid Kubernetes name",
            hint="use lowercase letters, digits and '-', starting with a letter",
            key=key,
        )
