"""Pure builders for the Kubernetes objects of a Dask workspace, on any cluster.

Every function here returns plain dicts (snake_case keys, as the
``pulumi_kubernetes`` ``*ArgsDict`` types expect) and creates no resource, so
the shape of the scheduler and workers is tested without Pulumi. Values may be
``pulumi.Input`` (the registry's login server, an identity's client id); they
are passed through untouched, so outputs stay outputs.

Conventions:

* What differs between clusters is one :class:`PodAccess`: extra pod labels,
  ServiceAccount annotations and environment (AKS: workload identity), a
  registry Secret (any cluster with a private registry), and where workers may
  run (AKS: the tainted worker pool). Everything else is the same on every cluster.
* The AKS worker node pool carries the label ``modelops.io/pool=dask-workers``
  and the taint ``modelops.io/dask-worker=true:NoSchedule``; only workers tolerate it.
* Every pod runs as UID 1000, non-root, with all capabilities dropped and a
  read-only root filesystem; ``/tmp`` (Dask's scratch space and ``HOME``) is an
  ``emptyDir`` volume. Workers also mount the bundle cache, an ``emptyDir`` with a
  ``sizeLimit``, and get an LRU cap below it (``MODELOPS_BUNDLE_CACHE_MAX_BYTES``)
  so the cache evicts bundles before the kubelet evicts the pod. The scheduler
  never fetches a bundle and has no cache.
* A registry Secret is of type ``kubernetes.io/dockerconfigjson``. The kubelet
  pulls both pods' image with it, and workers mount it read-only as
  ``$DOCKER_CONFIG/config.json``, where the bundle client looks for credentials.
  The scheduler never fetches a bundle, so it does not mount it.
* Nothing is exposed outside the cluster: the scheduler Service is ClusterIP and
  NetworkPolicies admit only the workspace's own pods.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelops_infra.infra.naming import dns_label

__all__ = [
    "BUNDLE_CACHE_DIR",
    "DASHBOARD_PORT",
    "REGISTRY_AUTH_DIR",
    "SAFE_TO_EVICT_ANNOTATION",
    "SCHEDULER_PORT",
    "WORKER_DASHBOARD_PORT",
    "WORKER_POOL_LABEL",
    "WORKER_POOL_TAINT",
    "PodAccess",
    "WorkspaceNames",
    "bundle_cache_env",
    "bundle_env",
    "container_resources",
    "container_security_context",
    "docker_config_json",
    "network_policy_specs",
    "pod_labels",
    "pod_security_context",
    "scheduler_command",
    "scheduler_deployment_spec",
    "scheduler_pdb_spec",
    "scheduler_service_spec",
    "selector_labels",
    "service_account_metadata",
    "worker_command",
    "worker_deployment_spec",
    "worker_hpa_spec",
    "worker_node_selector",
    "worker_pool_taint",
    "worker_tolerations",
    "workspace_names",
]

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787
WORKER_DASHBOARD_PORT = 8789
RUN_AS_USER = 1000

BUNDLE_CACHE_DIR = "/var/cache/modelops/bundles"
TMP_DIR = "/tmp"  # noqa: S108 - an emptyDir, private to the pod

WORKER_POOL_LABEL = ("modelops.io/pool", "dask-workers")
WORKER_POOL_TAINT = ("modelops.io/dask-worker", "true", "NoSchedule")

#: Where workers mount the registry Secret; ``DOCKER_CONFIG`` points here.
REGISTRY_AUTH_DIR = "/var/run/secrets/modelops/registry"
REGISTRY_AUTH_VOLUME = "registry-auth"
SAFE_TO_EVICT_ANNOTATION = "cluster-autoscaler.kubernetes.io/safe-to-evict"


# --------------------------------------------------------------------------- names and labels


@dataclass(frozen=True)
class WorkspaceNames:
    """Physical names of a workspace's namespaced objects, all DNS labels."""

    workspace: str
    namespace: str
    service_account: str
    scheduler: str
    workers: str
    registry_secret: str
    package_index_secret: str

    @property
    def scheduler_service(self) -> str:
        return self.scheduler


def workspace_names(workspace: str, namespace: str) -> WorkspaceNames:
    """Derive object names from the component name, so two workspaces never collide."""
    return WorkspaceNames(
        workspace=dns_label(workspace),
        namespace=namespace,
        service_account=dns_label(workspace, "sa"),
        scheduler=dns_label(workspace, "scheduler"),
        workers=dns_label(workspace, "workers"),
        registry_secret=dns_label(workspace, "registry"),
        package_index_secret=dns_label(workspace, "package-index"),
    )


@dataclass(frozen=True)
class PodAccess:
    """What one kind of cluster adds to the workspace's pods; the default adds nothing.

    ``pod_labels``, ``service_account_annotations`` and ``env`` carry an
    identity (AKS: workload identity; values may be Outputs). ``registry_secret``
    names a ``kubernetes.io/dockerconfigjson`` Secret in the namespace: image
    pull secret of both pods, and the workers' bundle credentials.
    ``worker_node_selector`` and ``worker_tolerations`` place the workers
    (AKS: the tainted pool); ``None`` and ``()`` let them run on any node.
    """

    pod_labels: Mapping[str, str] = field(default_factory=dict)
    service_account_annotations: Mapping[str, Any] = field(default_factory=dict)
    env: tuple[Mapping[str, Any], ...] = ()
    registry_secret: str | None = None
    worker_node_selector: Mapping[str, str] | None = None
    worker_tolerations: tuple[Mapping[str, str], ...] = ()


def selector_labels(names: WorkspaceNames, component: str) -> dict[str, str]:
    """Immutable labels a Deployment selects its pods by."""
    return {
        "app.kubernetes.io/name": "dask",
        "app.kubernetes.io/instance": names.workspace,
        "app.kubernetes.io/component": component,
    }


def _workspace_pod_selector(names: WorkspaceNames) -> dict[str, str]:
    return {"app.kubernetes.io/name": "dask", "app.kubernetes.io/instance": names.workspace}


def pod_labels(names: WorkspaceNames, component: str, access: PodAccess | None = None) -> dict[str, str]:
    """Selector labels, ``part-of`` and the cluster's own pod labels (``access``)."""
    return {
        **selector_labels(names, component),
        "app.kubernetes.io/part-of": "modelops",
        **(access.pod_labels if access is not None else {}),
    }


def service_account_metadata(names: WorkspaceNames, namespace: Any, access: PodAccess | None = None) -> dict[str, Any]:
    """The workspace ServiceAccount's metadata; annotations only when the cluster has some."""
    metadata: dict[str, Any] = {"name": names.service_account, "namespace": namespace}
    if access is not None and access.service_account_annotations:
        metadata["annotations"] = dict(access.service_account_annotations)
    return metadata


# --------------------------------------------------------------------------- node pool placement


def worker_pool_taint() -> str:
    """The taint on the worker pool, in AKS ``key=value:Effect`` form."""
    key, value, effect = WORKER_POOL_TAINT
    return f"{key}={value}:{effect}"


def worker_node_selector() -> dict[str, str]:
    key, value = WORKER_POOL_LABEL
    return {key: value}


def worker_tolerations() -> list[dict[str, str]]:
    key, value, effect = WORKER_POOL_TAINT
    return [{"key": key, "operator": "Equal", "value": value, "effect": effect}]


# --------------------------------------------------------------------------- containers


def bundle_env(
    *,
    login_server: Any,
    repository: str,
    identity_env: Sequence[Mapping[str, Any]] = (),
    insecure: bool = False,
) -> list[dict[str, Any]]:
    """Environment shared by scheduler and workers.

    ``login_server`` is usually an Output and is kept as such: the registry a
    worker pulls from is the registry component's output, never a literal.
    ``identity_env`` (:attr:`PodAccess.env`, AKS: ``AZURE_CLIENT_ID``) follows
    the registry settings. ``insecure`` adds ``MODELOPS_BUNDLE_INSECURE=true``
    (plain HTTP to a registry that is not on loopback). The cache settings are
    the workers' own: :func:`bundle_cache_env`.
    """
    return [
        {"name": "MODELOPS_BUNDLE_REGISTRY", "value": login_server},
        {"name": "MODELOPS_BUNDLE_REPOSITORY", "value": repository},
        *([{"name": "MODELOPS_BUNDLE_INSECURE", "value": "true"}] if insecure else []),
        *(dict(e) for e in identity_env),
        # Dask writes config and scratch files under HOME and its temporary
        # directory; both point at the /tmp emptyDir so the root fs can be read-only.
        {"name": "HOME", "value": TMP_DIR},
        {"name": "DASK_TEMPORARY_DIRECTORY", "value": TMP_DIR},
    ]


#: The key of the package index Secret that holds the URL.
PACKAGE_INDEX_KEY = "url"


def package_index_env(secret_name: str | None) -> list[dict[str, Any]]:
    """``MODELOPS_BUNDLE_INDEX_URL`` read from the package index Secret (the URL may hold credentials,
    so it is never a literal in the pod spec); nothing without one."""
    if secret_name is None:
        return []
    return [{"name": "MODELOPS_BUNDLE_INDEX_URL",
             "value_from": {"secret_key_ref": {"name": secret_name, "key": PACKAGE_INDEX_KEY}}}]


def bundle_cache_env(cache_max_bytes: int, *, cache_dir: str = BUNDLE_CACHE_DIR) -> list[dict[str, Any]]:
    """Where a worker caches bundles and environments, and the LRU cap in bytes.

    ``cache_max_bytes`` comes from
    :func:`~modelops_infra.infra.quantities.bundle_cache_cap` of the volume's
    ``sizeLimit``; it is written as a plain integer, which
    ``BundleSettings.from_env`` reads back as the same number of bytes.
    Raises :class:`ValueError` when it is not positive.
    """
    if isinstance(cache_max_bytes, bool) or not isinstance(cache_max_bytes, int) or cache_max_bytes < 1:
        raise ValueError(f"cache_max_bytes must be a positive number of bytes, got {cache_max_bytes!r}")
    return [
        {"name": "MODELOPS_BUNDLE_CACHE_DIR", "value": cache_dir},
        {"name": "MODELOPS_BUNDLE_CACHE_MAX_BYTES", "value": str(cache_max_bytes)},
    ]


def docker_config_json(login_server: str, username: str, password: str) -> str:
    """The ``.dockerconfigjson`` of a registry Secret: one ``auths`` entry for ``login_server``.

    Pure. The kubelet reads ``auth``; the bundle client reads it back too
    (:func:`~modelops_infra.bundles.resolve_basic_credentials`). The result holds
    the password: wrap it in a secret Output before it reaches a resource.
    """
    auth = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    entry = {"username": username, "password": password, "auth": auth}
    return json.dumps({"auths": {login_server: entry}}, sort_keys=True)


def registry_auth_env(access: PodAccess | None) -> list[dict[str, Any]]:
    """``DOCKER_CONFIG`` for workers when the cluster has a registry Secret, else nothing."""
    if access is None or access.registry_secret is None:
        return []
    return [{"name": "DOCKER_CONFIG", "value": REGISTRY_AUTH_DIR}]


def container_resources(cpu: str, memory: str) -> dict[str, dict[str, str]]:
    """Requests equal to limits (Guaranteed QoS): Dask sizes itself from them."""
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu, "memory": memory},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS_USER,
        "run_as_group": RUN_AS_USER,
        "allow_privilege_escalation": False,
        "read_only_root_filesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS_USER,
        "run_as_group": RUN_AS_USER,
        "fs_group": RUN_AS_USER,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def scheduler_command() -> list[str]:
    return [
        "dask",
        "scheduler",
        "--port",
        str(SCHEDULER_PORT),
        "--dashboard-address",
        f":{DASHBOARD_PORT}",
    ]


def worker_command(scheduler_service: str, *, nthreads: int, memory_limit_bytes: int) -> list[str]:
    """``dask worker tcp://<svc>:8786 --preload modelops_infra.worker`` sized from the container.

    ``--memory-limit`` is the container's memory limit in bytes, so Dask's
    spill/pause/terminate thresholds trigger before the kernel's OOM killer.
    """
    if nthreads < 1:
        raise ValueError(f"nthreads must be >= 1, got {nthreads}")
    if memory_limit_bytes < 1:
        raise ValueError(f"memory_limit_bytes must be >= 1, got {memory_limit_bytes}")
    return [
        "dask",
        "worker",
        f"tcp://{scheduler_service}:{SCHEDULER_PORT}",
        "--preload",
        "modelops_infra.worker",
        "--nthreads",
        str(nthreads),
        "--memory-limit",
        str(memory_limit_bytes),
        "--dashboard-address",
        f":{WORKER_DASHBOARD_PORT}",
    ]


def _http_probe(port: int, *, initial_delay: int, period: int, failures: int) -> dict[str, Any]:
    return {
        "http_get": {"path": "/health", "port": port},
        "initial_delay_seconds": initial_delay,
        "period_seconds": period,
        "timeout_seconds": 5,
        "failure_threshold": failures,
    }


def _tmp_mounts() -> list[dict[str, str]]:
    return [{"name": "tmp", "mount_path": TMP_DIR}]


def _tmp_volumes() -> list[dict[str, Any]]:
    return [{"name": "tmp", "empty_dir": {}}]


def _worker_mounts(access: PodAccess | None) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [*_tmp_mounts(), {"name": "bundle-cache", "mount_path": BUNDLE_CACHE_DIR}]
    if access is not None and access.registry_secret is not None:
        mounts.append({"name": REGISTRY_AUTH_VOLUME, "mount_path": REGISTRY_AUTH_DIR, "read_only": True})
    return mounts


def _worker_volumes(cache_size: str, access: PodAccess | None) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [*_tmp_volumes(), {"name": "bundle-cache", "empty_dir": {"size_limit": cache_size}}]
    if access is not None and access.registry_secret is not None:
        volumes.append({
            "name": REGISTRY_AUTH_VOLUME,
            "secret": {
                "secret_name": access.registry_secret,
                "items": [{"key": ".dockerconfigjson", "path": "config.json"}],
            },
        })
    return volumes


def _pull_secrets(pod: dict[str, Any], access: PodAccess | None) -> dict[str, Any]:
    if access is not None and access.registry_secret is not None:
        pod["image_pull_secrets"] = [{"name": access.registry_secret}]
    return pod


# --------------------------------------------------------------------------- workloads


def scheduler_deployment_spec(
    names: WorkspaceNames,
    *,
    image: Any,
    env: Sequence[Mapping[str, Any]],
    cpu: str,
    memory: str,
    access: PodAccess | None = None,
) -> dict[str, Any]:
    """One scheduler replica, never evicted by the autoscaler, probed on ``/health``.

    No bundle cache and no registry credentials: the scheduler runs plain
    ``dask scheduler`` (no preload) and only routes tasks; workers fetch
    bundles, and the smoke test pushes from the deploying machine. The
    registry Secret, if any, is only its image pull secret.
    """
    return {
        "replicas": 1,
        # Two schedulers would split the workers between them.
        "strategy": {"type": "Recreate"},
        "selector": {"match_labels": selector_labels(names, "scheduler")},
        "template": {
            "metadata": {
                "labels": pod_labels(names, "scheduler", access),
                "annotations": {SAFE_TO_EVICT_ANNOTATION: "false"},
            },
            "spec": _pull_secrets({
                "service_account_name": names.service_account,
                "automount_service_account_token": False,
                "security_context": pod_security_context(),
                "containers": [
                    {
                        "name": "scheduler",
                        "image": image,
                        "command": scheduler_command(),
                        "ports": [
                            {"name": "tcp-comm", "container_port": SCHEDULER_PORT},
                            {"name": "http-dashboard", "container_port": DASHBOARD_PORT},
                        ],
                        "env": list(env),
                        "resources": container_resources(cpu, memory),
                        "readiness_probe": _http_probe(DASHBOARD_PORT, initial_delay=5, period=10, failures=3),
                        "liveness_probe": _http_probe(DASHBOARD_PORT, initial_delay=30, period=20, failures=6),
                        "security_context": container_security_context(),
                        "volume_mounts": _tmp_mounts(),
                    }
                ],
                "volumes": _tmp_volumes(),
            }, access),
        },
    }


def worker_deployment_spec(
    names: WorkspaceNames,
    *,
    image: Any,
    env: Sequence[Mapping[str, Any]],
    cpu: str,
    memory: str,
    nthreads: int,
    memory_limit_bytes: int,
    cache_size: str,
    cache_max_bytes: int,
    replicas: int | None,
    access: PodAccess | None = None,
    package_index_secret: str | None = None,
) -> dict[str, Any]:
    """Workers, placed as ``access`` says (AKS: the tainted user pool; else any node).

    ``replicas=None`` leaves the count to an HPA. ``cache_size`` is the bundle
    cache volume's ``sizeLimit``; ``cache_max_bytes`` the LRU cap below it (see
    :func:`bundle_cache_env`). With a registry Secret, workers mount it and
    get ``DOCKER_CONFIG`` after the cache settings. With a package index Secret,
    they read ``MODELOPS_BUNDLE_INDEX_URL`` from it (:func:`package_index_env`).
    """
    pod: dict[str, Any] = {
        "service_account_name": names.service_account,
        "automount_service_account_token": False,
        "security_context": pod_security_context(),
    }
    if access is not None and access.worker_node_selector is not None:
        pod["node_selector"] = dict(access.worker_node_selector)
    if access is not None and access.worker_tolerations:
        pod["tolerations"] = [dict(t) for t in access.worker_tolerations]
    spec: dict[str, Any] = {
        "selector": {"match_labels": selector_labels(names, "worker")},
        "template": {
            "metadata": {"labels": pod_labels(names, "worker", access)},
            "spec": _pull_secrets({
                **pod,
                # Let a worker finish its task and hand data back before it goes.
                "termination_grace_period_seconds": 60,
                "containers": [
                    {
                        "name": "worker",
                        "image": image,
                        "command": worker_command(
                            names.scheduler_service, nthreads=nthreads, memory_limit_bytes=memory_limit_bytes
                        ),
                        "ports": [{"name": "http-dashboard", "container_port": WORKER_DASHBOARD_PORT}],
                        "env": [*env, *bundle_cache_env(cache_max_bytes), *registry_auth_env(access),
                                *package_index_env(package_index_secret)],
                        "resources": container_resources(cpu, memory),
                        "liveness_probe": _http_probe(
                            WORKER_DASHBOARD_PORT, initial_delay=30, period=20, failures=6
                        ),
                        "security_context": container_security_context(),
                        "volume_mounts": _worker_mounts(access),
                    }
                ],
                "volumes": _worker_volumes(cache_size, access),
            }, access),
        },
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return spec


#: The scheduler Service's annotations. Pulumi awaits a Service until it has endpoints, for 10 minutes and
#: regardless of the Deployments' timeouts; the scheduler Deployment's own await (bounded by
#: ``rolloutTimeout``) already says whether its pod is Ready, and the workers need only the Service's name.
SCHEDULER_SERVICE_ANNOTATIONS = {"pulumi.com/skipAwait": "true"}


def scheduler_service_spec(names: WorkspaceNames) -> dict[str, Any]:
    """ClusterIP only; reach the dashboard with ``kubectl port-forward``."""
    return {
        "type": "ClusterIP",
        "selector": selector_labels(names, "scheduler"),
        "ports": [
            {"name": "tcp-comm", "port": SCHEDULER_PORT, "target_port": SCHEDULER_PORT},
            {"name": "http-dashboard", "port": DASHBOARD_PORT, "target_port": DASHBOARD_PORT},
        ],
    }


def scheduler_pdb_spec(names: WorkspaceNames) -> dict[str, Any]:
    """Keep the one scheduler through voluntary disruptions (drains, upgrades)."""
    return {"min_available": 1, "selector": {"match_labels": selector_labels(names, "scheduler")}}


def worker_hpa_spec(
    names: WorkspaceNames, *, min_replicas: int, max_replicas: int, target_cpu_utilization: int
) -> dict[str, Any]:
    """autoscaling/v2 HPA scaling the worker Deployment on CPU utilisation."""
    return {
        "scale_target_ref": {"api_version": "apps/v1", "kind": "Deployment", "name": names.workers},
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "average_utilization": target_cpu_utilization},
                },
            }
        ],
    }


def network_policy_specs(names: WorkspaceNames) -> dict[str, dict[str, Any]]:
    """Ingress policies keyed ``scheduler`` and ``workers``: only workspace pods get in.

    The scheduler admits 8786 and 8787; workers admit any port (Dask picks
    worker and nanny ports at random) but only from the workspace's pods.
    """
    peers = [{"pod_selector": {"match_labels": _workspace_pod_selector(names)}}]
    return {
        "scheduler": {
            "pod_selector": {"match_labels": selector_labels(names, "scheduler")},
            "policy_types": ["Ingress"],
            "ingress": [
                {
                    "from": peers,
                    "ports": [
                        {"protocol": "TCP", "port": SCHEDULER_PORT},
                        {"protocol": "TCP", "port": DASHBOARD_PORT},
                    ],
                }
            ],
        },
        "workers": {
            "pod_selector": {"match_labels": selector_labels(names, "worker")},
            "policy_types": ["Ingress"],
            "ingress": [{"from": peers}],
        },
    }
