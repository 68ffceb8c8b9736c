"""Typed stack configuration for the ``modelops`` Pulumi project.

Stack configuration lives under the ``modelops:`` namespace. Nested settings
are structured objects (``pulumi config set --path modelops:aks.workerPool.maxCount 5``).
:func:`load_stack_config` reads them when called (never at import time),
:func:`parse_stack_config` validates them purely, and both raise
:class:`~modelops_infra.errors.ConfigurationError` whose message names the
offending key, so ``pulumi preview`` fails before any resource is planned::

    modelops:aks.workerPool.minCount (3) > modelops:aks.workerPool.maxCount (2)

Keys (camelCase in YAML, snake_case here)::

    modelops:cloud            azure | kubernetes | local          (default azure)
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
    modelops:kubernetes       context, registry{loginServer,username,insecure} (cloud: kubernetes)
    modelops:kubeconfig       secret: a kubeconfig's path or its content (cloud: kubernetes)
    modelops:registryPassword secret: the password of kubernetes.registry.username

This module imports no cloud SDK: the local stack reads the same object.
The two secret keys are held as :class:`SecretText`, whose ``repr`` hides the
value, and no error message ever quotes them.
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
    "KubernetesConfig",
    "KubernetesRegistryConfig",
    "LocalConfig",
    "RegistryConfig",
    "REGISTRY_SKUS",
    "SchedulerConfig",
    "SecretText",
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
CLOUDS = ("azure", "kubernetes", "local")

#: The worker image's default base: a slim official Python image of the clients' Python version, pinned
#: by digest so a deploy builds on exactly this base (the tag is kept for readers; the digest decides).
#: This machine cannot reach Docker Hub: the digest is the one a public record states it checked
#: against Docker Hub. Refresh with ``crane digest`` or ``docker buildx imagetools inspect`` of the tag.
DEFAULT_BASE_IMAGE = ("docker.io/library/python:3.11-slim-bookworm"
                      "@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91")
#: Installed into the worker image beside ``modelops-infra[azure]`` and uv (bokeh renders the dashboard).
DEFAULT_EXTRA_PACKAGES = ("bokeh>=3.1",)

#: Top-level keys that hold structured objects, scalars, and secrets (scalars kept as SecretText).
_OBJECT_KEYS = ("registry", "aks", "workspace", "smokeTest", "local", "kubernetes")
_SCALAR_KEYS = ("cloud", "infraStack")
_SECRET_KEYS = ("kubeconfig", "registryPassword")
#: Keys that only the kubernetes cloud reads; set on another cloud they are an error, not ignored.
_KUBERNETES_ONLY_KEYS = ("kubernetes", "kubeconfig", "registryPassword")


# --------------------------------------------------------------------------- dataclasses


class SecretText:
    """A secret config value: compared and hashed by value, never shown by ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself; wrap it in ``pulumi.Output.secret`` before it reaches a resource."""
        return self._value

    def __repr__(self) -> str:
        return "SecretText(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretText) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


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
class KubernetesRegistryConfig:
    """``modelops:kubernetes.registry`` and ``modelops:registryPassword``: where bundles live.

    ``username=None`` means an open registry; then no password may be set.
    ``insecure`` makes workers and the smoke test speak plain HTTP to it
    (loopback registries always do).
    """

    login_server: str = ""
    username: str | None = None
    password: SecretText | None = None
    insecure: bool = False


@dataclass(frozen=True)
class KubernetesConfig:
    """``modelops:kubernetes`` and ``modelops:kubeconfig``: the workspace on any cluster.

    ``kubeconfig`` is the secret config value as given, a path or the content;
    :func:`modelops_infra.infra.kubernetes.kubeconfig.resolve_kubeconfig` reads it.
    ``context=None`` means the kubeconfig's ``current-context``.
    """

    kubeconfig: SecretText | None = None
    context: str | None = None
    registry: KubernetesRegistryConfig = field(default_factory=KubernetesRegistryConfig)


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
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)


# --------------------------------------------------------------------------- loading


class ConfigSource(Protocol):
    """The two calls of :class:`pulumi.Config` this module uses."""

    def get(self, key: str) -> str | None: ...

    def get_object(self, key: str) -> Any: ...


def load_stack_config(source: ConfigSource | None = None) -> StackConfig:
    """Read and validate the ``modelops:`` stack configuration.

    ``source`` defaults to ``pulumi.Config("modelops")``, created at call time.
    Raises :class:`ConfigurationError` naming the key on any invalid value,
    including an object that is not valid JSON. A secret key
    (``modelops:kubeconfig``, ``modelops:registryPassword``) stored in plain
    text gets a warning, once per run, to set it with ``--secret``.
    """
    import pulumi

    if source is None:
        source = pulumi.Config(CONFIG_NAMESPACE)
    raw: dict[str, Any] = {}
    for key in _SCALAR_KEYS:
        value = source.get(key)
        if value is not None:
            raw[key] = value
    for key in _SECRET_KEYS:
        value = source.get(key)
        if value:
            raw[key] = SecretText(value)
            if not pulumi.runtime.is_config_secret(_key(key)):
                pulumi.log.warn(
                    f"{_key(key)} is stored in plain text; set it with "
                    f"`pulumi config set --secret {_key(key)} ...`"
                )
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
    silently fall back to defaults. The secret keys take a :class:`SecretText`
    (or a plain string, which is wrapped).
    """
    _reject_unknown(raw, (*_SCALAR_KEYS, *_OBJECT_KEYS, *_SECRET_KEYS), prefix="")
    cloud = _str(raw, "cloud", default="azure", prefix="")
    if cloud not in CLOUDS:
        raise ConfigurationError(
            f"{_key('cloud')}: unknown cloud {cloud!r}; expected one of {', '.join(CLOUDS)}",
            key=_key("cloud"),
        )
    if cloud != "kubernetes":
        # Pulumi.yaml defaults `kubernetes` to {} on every stack: empty counts as unset.
        stray = [k for k in _KUBERNETES_ONLY_KEYS if raw.get(k) not in (None, {}, "")]
        if stray:
            raise ConfigurationError(
                f"{_key(stray[0])}: is read only when {_key('cloud')} is kubernetes, and it is {cloud!r}",
                hint=f"remove it (`pulumi config rm {_key(stray[0])}`) or set {_key('cloud')} kubernetes",
                key=_key(stray[0]),
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
        kubernetes=_parse_kubernetes(raw) if cloud == "kubernetes" else KubernetesConfig(),
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


def _parse_kubernetes(raw: Mapping[str, Any]) -> KubernetesConfig:
    """``modelops:kubernetes`` plus the two secrets; only called when the cloud is kubernetes."""
    p = "kubernetes"
    k_raw = _obj(raw, p, prefix="")
    _reject_unknown(k_raw, ("context", "registry"), prefix=p)
    kubeconfig = _secret(raw, "kubeconfig")
    if kubeconfig is None:
        raise ConfigurationError(
            f"{_key('kubeconfig')}: required when {_key('cloud')} is kubernetes",
            hint=f"`pulumi config set --secret {_key('kubeconfig')} ~/.kube/config` (a path or the file's content)",
            key=_key("kubeconfig"),
        )
    context = _opt_str(k_raw, "context", prefix=p)
    if context is not None and not context.strip():
        raise ConfigurationError(f"{_key(p, 'context')}: must not be empty", key=_key(p, "context"))

    rp = f"{p}.registry"
    r_raw = _obj(k_raw, "registry", prefix=p)
    _reject_unknown(r_raw, ("loginServer", "username", "insecure"), prefix=rp)
    login_server = _opt_str(r_raw, "loginServer", prefix=rp)
    if login_server is None or not login_server.strip():
        raise ConfigurationError(
            f"{_key(rp, 'loginServer')}: required when {_key('cloud')} is kubernetes",
            hint=f"the registry bundles and the worker image come from, e.g. "
                 f"`pulumi config set --path {_key(rp, 'loginServer')} registry.example.com`",
            key=_key(rp, "loginServer"),
        )
    login_server = _check_registry_host(login_server, _key(rp, "loginServer"))
    username = _opt_str(r_raw, "username", prefix=rp)
    if username is not None and not username.strip():
        raise ConfigurationError(f"{_key(rp, 'username')}: must not be empty", key=_key(rp, "username"))
    password = _secret(raw, "registryPassword")
    if username is not None and password is None:
        raise ConfigurationError(
            f"{_key('registryPassword')}: required when {_key(rp, 'username')} is set",
            hint=f"`pulumi config set --secret {_key('registryPassword')} ...`",
            key=_key("registryPassword"),
        )
    if username is None and password is not None:
        raise ConfigurationError(
            f"{_key('registryPassword')}: is set but {_key(rp, 'username')} is not",
            hint=f"set {_key(rp, 'username')}, or remove the password for an open registry",
            key=_key("registryPassword"),
        )
    return KubernetesConfig(
        kubeconfig=kubeconfig,
        context=context,
        registry=KubernetesRegistryConfig(
            login_server=login_server,
            username=username,
            password=password,
            insecure=_bool(r_raw, "insecure", default=False, prefix=rp),
        ),
    )


# --------------------------------------------------------------------------- field readers


def _secret(raw: Mapping[str, Any], name: str) -> SecretText | None:
    """A top-level secret key; its value is never quoted, even when it has the wrong type."""
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        value = SecretText(value)
    if not isinstance(value, SecretText):
        raise ConfigurationError(f"{_key(name)}: expected a string", key=_key(name))
    if not value.reveal().strip():
        raise ConfigurationError(f"{_key(name)}: must not be empty", key=_key(name))
    return value


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


def _check_registry_host(value: str, key: str) -> str:
    """``host[:port]`` through the one registry-host parser (:class:`RegistryHost`); the key named on failure."""
    from modelops_infra.bundles._host import RegistryHost

    try:
        return str(RegistryHost.parse(value, source=f"{key}:"))
    except ConfigurationError as exc:
        raise ConfigurationError(exc.message, hint="give host[:port] only, without a scheme, user or path "
                                                   "(e.g. registry.example.com:5000)", key=key) from exc


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
