"""Typed stack configuration for the ``modelops`` Pulumi project: the ``modelops:`` keys, each declared once.

Each key is one dataclass field below: its camelCase name, default and parser (type and bounds). The
reader, the unknown-key check and the defaults derive from it (:mod:`~modelops_infra.infra.config_schema`).
Nested settings are structured objects (``pulumi config set --path modelops:aks.workerPool.maxCount 5``).
:func:`load_stack_config` reads them when called (never at import time), :func:`parse_stack_config`
validates them purely, and both raise :class:`~modelops_infra.errors.ConfigurationError` naming the
offending key, so ``pulumi preview`` fails before any resource is planned::

    modelops:aks.workerPool.minCount (3) > modelops:aks.workerPool.maxCount (2)

No cloud SDK is imported here: the local stack reads the same object. The two secret keys
(``modelops:kubeconfig``, ``modelops:registryPassword``) are :class:`SecretText`, whose ``repr``
hides the value; no error message quotes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra import config_schema as parse
from modelops_infra.infra.config_schema import NAMESPACE as CONFIG_NAMESPACE
from modelops_infra.infra.config_schema import ConfigSource, SecretText, read_section, read_top_level, section, setting
from modelops_infra.infra.config_schema import config_key as _key
from modelops_infra.infra.quantities import bundle_cache_cap, parse_cpu, parse_memory

__all__ = [
    "AksConfig", "AutoscaleConfig", "CLOUDS", "CONFIG_NAMESPACE", "ConfigSource", "KubernetesConfig",
    "KubernetesRegistryConfig", "LocalConfig", "REGISTRY_SKUS", "RegistryConfig", "SchedulerConfig", "SecretText",
    "SmokeTestConfig", "StackConfig", "SystemPoolConfig", "WorkerPoolConfig", "WorkspaceConfig", "load_stack_config",
    "parse_stack_config",
]

REGISTRY_SKUS = ("Basic", "Standard", "Premium")
CLOUDS = ("azure", "kubernetes", "local")
#: Keys that only the kubernetes cloud reads; set on another cloud they are an error, not ignored.
_KUBERNETES_ONLY_KEYS = ("kubernetes", "kubeconfig", "registryPassword")

#: The worker image's default base: the official slim Python of the clients' version, pinned by digest (the tag
#: is for readers). Taken from a public record checked against Docker Hub, which this machine cannot reach.
DEFAULT_BASE_IMAGE = ("docker.io/library/python:3.11-slim-bookworm"
                      "@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91")
#: Installed into the worker image beside ``modelops-infra[azure]`` and uv (bokeh renders the dashboard).
DEFAULT_EXTRA_PACKAGES = ("bokeh>=3.1",)


@dataclass(frozen=True)
class RegistryConfig:
    """``modelops:registry``: the Azure Container Registry."""

    sku: str = setting("sku", "Standard", parse.one_of(REGISTRY_SKUS, "SKU"))
    #: An existing resource group to deploy into; ``None`` creates one.
    resource_group: str | None = setting("resourceGroup", None, parse.optional_text)


@dataclass(frozen=True)
class SystemPoolConfig:
    """``modelops:aks.systemPool``: the AKS system node pool (fixed size)."""

    vm_size: str = setting("vmSize", "Standard_D2s_v5", parse.text())
    count: int = setting("count", 1, parse.integer(minimum=1))


@dataclass(frozen=True)
class WorkerPoolConfig:
    """``modelops:aks.workerPool``: the autoscaling user pool Dask workers run on."""

    ORDERED: ClassVar = (("min_count", "max_count"),)
    vm_size: str = setting("vmSize", "Standard_D4s_v5", parse.text())
    min_count: int = setting("minCount", 1, parse.integer(minimum=0))
    max_count: int = setting("maxCount", 3, parse.integer(minimum=1))
    os_disk_size_gb: int = setting("osDiskSizeGb", 128, parse.integer(minimum=30))


@dataclass(frozen=True)
class AksConfig:
    """``modelops:aks``: the managed cluster."""

    kubernetes_version: str | None = setting("kubernetesVersion", None, parse.optional_text)
    system_pool: SystemPoolConfig = section("systemPool", SystemPoolConfig)
    worker_pool: WorkerPoolConfig = section("workerPool", WorkerPoolConfig)


@dataclass(frozen=True)
class SchedulerConfig:
    """``modelops:workspace.scheduler``: the scheduler container's resources."""

    cpu: str = setting("cpu", "1", parse.quantity(parse_cpu))
    memory: str = setting("memory", "2Gi", parse.quantity(parse_memory))


@dataclass(frozen=True)
class AutoscaleConfig:
    """``modelops:workspace.autoscale``: an optional HPA on the worker Deployment."""

    ORDERED: ClassVar = (("min_replicas", "max_replicas"),)
    enabled: bool = setting("enabled", False, parse.boolean)
    min_replicas: int = setting("minReplicas", 1, parse.integer(minimum=0))
    max_replicas: int = setting("maxReplicas", 10, parse.integer(minimum=1))
    target_cpu_utilization: int = setting("targetCpuUtilization", 70, parse.integer(minimum=1))


@dataclass(frozen=True)
class WorkspaceConfig:
    """``modelops:workspace``: the Dask scheduler and workers on the cluster.

    The workers' sizes (``--nthreads``, ``--memory-limit``, the bundle cache cap) are
    derived by :func:`~modelops_infra.infra.quantities.worker_sizes`.
    """

    namespace: str = setting("namespace", "modelops", parse.dns_label)
    #: ``0`` is a workspace scaled to zero: the scheduler stays, no worker runs.
    workers: int = setting("workers", 2, parse.integer(minimum=0))
    #: Threads per worker; ``None`` derives it from ``cpu`` (whole cores, at least 1).
    threads: int | None = setting("threads", None, parse.integer(minimum=1))
    cpu: str = setting("cpu", "2", parse.quantity(parse_cpu))
    memory: str = setting("memory", "8Gi", parse.quantity(parse_memory))
    #: Full image reference (any prebuilt image, by tag or digest; checked in its registry and run by digest);
    #: ``None`` builds the image in the stack
    #: (``WorkerImage`` from ``base_image``, pushed to ``<login_server>/modelops/dask-worker``, used by digest).
    image: str | None = setting("image", None, parse.optional_image_reference)
    #: The base of the built image: ``registry/repository[:tag|@digest]``, linux/amd64, the clients' Python.
    base_image: str = setting("baseImage", DEFAULT_BASE_IMAGE, parse.image_reference)
    #: Packages installed into the built image beside ``modelops-infra[azure]`` and uv.
    extra_packages: tuple[str, ...] = setting("extraPackages", DEFAULT_EXTRA_PACKAGES, parse.requirements)
    #: A tag given to the built image as well (the Deployments use its digest).
    image_tag: str = setting("imageTag", "latest", parse.text())
    bundle_repository: str = setting("bundleRepository", "modelops/bundles", parse.text())
    #: The workers' bundle cache volume. Not just a quantity: it must leave a positive LRU cap
    #: after the in-flight headroom (:func:`~modelops_infra.infra.quantities.bundle_cache_cap`).
    cache_size: str = setting("cacheSize", "10Gi", parse.quantity(bundle_cache_cap))
    #: Seconds ``pulumi up`` waits for the scheduler's and the workers' rollout (Pulumi's Deployment
    #: await); past it the Deployment fails with the pods' reasons (ErrImagePull, CrashLoopBackOff, ...).
    rollout_timeout: float = setting("rolloutTimeout", 600.0, parse.seconds)
    #: The package index workers build bundle environments from (PEP 503 "simple" URL, credentials
    #: allowed in it: it is secret config, and reaches the workers through a Secret). ``None``: uv's
    #: default (PyPI); bundles pushed with ``--wheels`` need no index at all.
    package_index: SecretText | None = setting("packageIndex", None, parse.secret_url, top_level=True)
    scheduler: SchedulerConfig = section("scheduler", SchedulerConfig)
    autoscale: AutoscaleConfig = section("autoscale", AutoscaleConfig)


@dataclass(frozen=True)
class SmokeTestConfig:
    """``modelops:smokeTest``: the deploy-time ``BundleSmokeTest`` (on by default)."""

    enabled: bool = setting("enabled", True, parse.boolean)
    #: Bundle directory to push and run; ``None`` means the built-in test bundle.
    bundle: str | None = setting("bundle", None, parse.optional_text)
    #: Seconds the whole smoke test may take.
    timeout: float = setting("timeout", 120.0, parse.seconds)
    #: Arbitrary values; changing any of them re-runs the test.
    triggers: tuple[str, ...] = setting("triggers", (), parse.string_list)


@dataclass(frozen=True)
class LocalConfig:
    """``modelops:local``: the one-machine stack (``modelops:cloud: local``)."""

    registry_port: int = setting("registryPort", 5050, parse.integer(minimum=1, maximum=65535))
    scheduler_port: int = setting("schedulerPort", 8786, parse.integer(minimum=1, maximum=65535))
    dashboard_port: int = setting("dashboardPort", 8787, parse.integer(minimum=1, maximum=65535))
    #: At least one: the local workers are processes the stack starts and watches, and a
    #: stack with none could neither run the smoke test nor be told apart from a dead one.
    workers: int = setting("workers", 2, parse.integer(minimum=1))


@dataclass(frozen=True)
class KubernetesRegistryConfig:
    """``modelops:kubernetes.registry`` and ``modelops:registryPassword``: where bundles live.

    ``username=None`` means an open registry; then no password may be set.
    ``insecure`` makes workers and the smoke test speak plain HTTP to it
    (loopback registries always do).
    """

    login_server: str = setting("loginServer", "", parse.registry_host)
    username: str | None = setting("username", None, parse.text())
    password: SecretText | None = setting("registryPassword", None, parse.secret, top_level=True)
    insecure: bool = setting("insecure", False, parse.boolean)


@dataclass(frozen=True)
class KubernetesConfig:
    """``modelops:kubernetes`` and ``modelops:kubeconfig``: the workspace on any cluster.

    ``kubeconfig`` is the secret config value as given, a path or the content;
    :func:`modelops_infra.infra.kubernetes.kubeconfig.resolve_kubeconfig` reads it.
    ``context=None`` means the kubeconfig's ``current-context``.
    """

    kubeconfig: SecretText | None = setting("kubeconfig", None, parse.secret, top_level=True)
    context: str | None = setting("context", None, parse.text())
    registry: KubernetesRegistryConfig = section("registry", KubernetesRegistryConfig)


@dataclass(frozen=True)
class StackConfig:
    """Everything the program reads from stack configuration, validated."""

    cloud: str = setting("cloud", "azure", parse.one_of(CLOUDS, "cloud"))
    #: ``org/project/stack`` of a stack exporting ``acr_login_server``; ``None`` = same stack.
    infra_stack: str | None = setting("infraStack", None, parse.optional_text)
    registry: RegistryConfig = section("registry", RegistryConfig)
    aks: AksConfig = section("aks", AksConfig)
    workspace: WorkspaceConfig = section("workspace", WorkspaceConfig)
    smoke_test: SmokeTestConfig = section("smokeTest", SmokeTestConfig)
    local: LocalConfig = section("local", LocalConfig)
    kubernetes: KubernetesConfig = section("kubernetes", KubernetesConfig)


def load_stack_config(source: ConfigSource | None = None) -> StackConfig:
    """Read (:func:`~modelops_infra.infra.config_schema.read_top_level`) and validate the stack configuration.

    ``source`` defaults to ``pulumi.Config("modelops")``, created at call time. Raises
    :class:`ConfigurationError` naming the key on any invalid value, including an object that is not JSON.
    """
    import pulumi

    return parse_stack_config(read_top_level(StackConfig, source or pulumi.Config(CONFIG_NAMESPACE)))


def parse_stack_config(raw: Mapping[str, Any]) -> StackConfig:
    """Validate a mapping of ``modelops:`` keys (without the namespace) into a StackConfig.

    Pure: no Pulumi runtime needed. Unknown keys are errors, so typos do not
    silently fall back to defaults. The secret keys take a :class:`SecretText`
    (or a plain string, which is wrapped). The kubernetes keys are read only
    when ``cloud`` is ``kubernetes``; set on another cloud, they are an error.
    """
    cloud = raw.get("cloud") or "azure"
    if cloud != "kubernetes":
        # Pulumi.yaml defaults `kubernetes` to {} on every stack: empty counts as unset.
        stray = [k for k in _KUBERNETES_ONLY_KEYS if raw.get(k) not in (None, {}, "")]
        if stray and cloud in CLOUDS:
            key = _key(stray[0])
            raise ConfigurationError(f"{key}: is read only when {_key('cloud')} is kubernetes, and it is {cloud!r}",
                                     hint=f"remove it (`pulumi config rm {key}`) or set {_key('cloud')} kubernetes",
                                     key=key)
    cfg = read_section(StackConfig, raw)
    if cfg.cloud == "local" and cfg.workspace.package_index is not None:
        key = _key("packageIndex")
        raise ConfigurationError(f"{key}: is read by the cluster stacks only; local workers use the deploying "
                                 "machine's MODELOPS_BUNDLE_INDEX_URL (or UV_INDEX_URL, PIP_INDEX_URL)",
                                 hint=f"remove it (`pulumi config rm {key}`) and export MODELOPS_BUNDLE_INDEX_URL "
                                      "before `make up`", key=key)
    if cfg.cloud == "kubernetes":
        _check_kubernetes(cfg.kubernetes)
    return cfg


def _check_kubernetes(kube: KubernetesConfig) -> None:
    """What the kubernetes cloud requires beyond each key's own parser."""
    rp, required = "kubernetes.registry", f"required when {_key('cloud')} is kubernetes"
    if kube.kubeconfig is None:
        raise ConfigurationError(
            f"{_key('kubeconfig')}: {required}", key=_key("kubeconfig"),
            hint=f"`pulumi config set --secret {_key('kubeconfig')} ~/.kube/config` (a path or the file's content)")
    if not kube.registry.login_server:
        raise ConfigurationError(
            f"{_key(rp, 'loginServer')}: {required}", key=_key(rp, "loginServer"),
            hint=f"the registry bundles and the worker image come from, e.g. "
                 f"`pulumi config set --path {_key(rp, 'loginServer')} registry.example.com`")
    if kube.registry.username is not None and kube.registry.password is None:
        raise ConfigurationError(
            f"{_key('registryPassword')}: required when {_key(rp, 'username')} is set", key=_key("registryPassword"),
            hint=f"`pulumi config set --secret {_key('registryPassword')} ...`")
    if kube.registry.username is None and kube.registry.password is not None:
        raise ConfigurationError(
            f"{_key('registryPassword')}: is set but {_key(rp, 'username')} is not", key=_key("registryPassword"),
            hint=f"set {_key(rp, 'username')}, or remove the password for an open registry")
