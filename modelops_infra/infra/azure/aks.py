"""``AksCluster``: an AKS cluster with a tainted, autoscaling pool for Dask workers."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import containerservice

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.azure.roles import acr_pull_assignment
from modelops_infra.infra.config import AksConfig
from modelops_infra.infra.kubernetes.specs import worker_node_selector, worker_pool_taint, worker_tolerations

__all__ = ["AksCluster", "AksClusterArgs"]


#: The defaults of ``modelops:aks``, declared once in the config.
_DEFAULTS = AksConfig()


@dataclass
class AksClusterArgs:
    """Inputs of :class:`AksCluster`. ``registry_id`` is the ACR the kubelet may pull from.

    The defaults are those of ``modelops:aks``; :meth:`from_config` takes all of it.
    """

    resource_group_name: pulumi.Input[str]
    registry_id: pulumi.Input[str]
    dns_prefix: str
    location: pulumi.Input[str] | None = None
    kubernetes_version: str | None = _DEFAULTS.kubernetes_version
    system_vm_size: str = _DEFAULTS.system_pool.vm_size
    system_count: int = _DEFAULTS.system_pool.count
    worker_vm_size: str = _DEFAULTS.worker_pool.vm_size
    worker_min_count: int = _DEFAULTS.worker_pool.min_count
    worker_max_count: int = _DEFAULTS.worker_pool.max_count
    worker_os_disk_size_gb: int = _DEFAULTS.worker_pool.os_disk_size_gb
    tags: dict[str, str] | None = field(default=None)

    @classmethod
    def from_config(cls, aks: AksConfig, **args: Any) -> AksClusterArgs:
        """The Args of ``modelops:aks`` (``aks``), plus ``args`` (``resource_group_name``, ``registry_id``, ...)."""
        system, worker = aks.system_pool, aks.worker_pool
        return cls(**{
            "kubernetes_version": aks.kubernetes_version, "system_vm_size": system.vm_size,
            "system_count": system.count, "worker_vm_size": worker.vm_size, "worker_min_count": worker.min_count,
            "worker_max_count": worker.max_count, "worker_os_disk_size_gb": worker.os_disk_size_gb, **args,
        })


def _decode_kubeconfig(encoded: str) -> str:
    return base64.b64decode(encoded).decode("utf-8")


class AksCluster(pulumi.ComponentResource):
    """A managed cluster, a worker pool, the kubelet's AcrPull grant and a k8s provider.

    * System pool: fixed size, ``mode: System``.
    * Worker pool (``dask``): ``mode: User``, cluster autoscaler between
      ``worker_min_count`` and ``worker_max_count``, labelled
      ``modelops.io/pool=dask-workers`` and tainted
      ``modelops.io/dask-worker=true:NoSchedule`` so only Dask workers land there.
    * OIDC issuer and workload identity on, so pods get Entra ID tokens
      without secrets; Cilium network policy so NetworkPolicies are enforced.

    Outputs: ``cluster_name``, ``kubeconfig`` (secret, from the cluster's user
    credentials), ``oidc_issuer_url``, ``provider`` (a ``pulumi_kubernetes``
    Provider on that kubeconfig), plus the plain ``worker_node_selector`` and
    ``worker_tolerations`` that place pods on the worker pool.

    Raises :class:`ConfigurationError` when the pool bounds are inconsistent,
    before creating anything.
    """

    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_issuer_url: pulumi.Output[str]
    provider: k8s.Provider

    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        if args.worker_min_count > args.worker_max_count:
            raise ConfigurationError(
                f"AksCluster {name!r}: worker_min_count ({args.worker_min_count}) > "
                f"worker_max_count ({args.worker_max_count})",
                key="worker_min_count",
            )
        if args.system_count < 1:
            raise ConfigurationError(f"AksCluster {name!r}: system_count must be >= 1", key="system_count")
        super().__init__("modelops:infra:AksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        cluster = containerservice.ManagedCluster(
            f"{name}-cluster",
            resource_group_name=args.resource_group_name,
            location=args.location,
            dns_prefix=args.dns_prefix,
            kubernetes_version=args.kubernetes_version,
            identity={"type": "SystemAssigned"},
            enable_rbac=True,
            agent_pool_profiles=[
                {
                    "name": "system",
                    "mode": "System",
                    "count": args.system_count,
                    "vm_size": args.system_vm_size,
                    "os_type": "Linux",
                    "type": "VirtualMachineScaleSets",
                }
            ],
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            network_profile={
                "network_plugin": "azure",
                "network_plugin_mode": "overlay",
                "network_dataplane": "cilium",
                "network_policy": "cilium",
            },
            tags=args.tags,
            opts=child,
        )

        worker_pool = containerservice.AgentPool(
            f"{name}-workers",
            agent_pool_name="dask",
            resource_group_name=args.resource_group_name,
            resource_name_=cluster.name,
            mode="User",
            os_type="Linux",
            type="VirtualMachineScaleSets",
            vm_size=args.worker_vm_size,
            os_disk_size_gb=args.worker_os_disk_size_gb,
            enable_auto_scaling=True,
            min_count=args.worker_min_count,
            max_count=args.worker_max_count,
            count=args.worker_min_count,
            node_labels=worker_node_selector(),
            node_taints=[worker_pool_taint()],
            # The cluster autoscaler owns the node count once the pool exists.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["count"]),
        )

        kubelet_object_id = cluster.identity_profile.apply(_kubelet_object_id)
        acr_pull_assignment(
            f"{name}-kubelet-acrpull", scope=args.registry_id, principal_id=kubelet_object_id, parent=self
        )

        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=args.resource_group_name,
            resource_name=cluster.name,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        self.kubeconfig = pulumi.Output.secret(
            credentials.kubeconfigs.apply(lambda kcs: _decode_kubeconfig(kcs[0].value))
        )
        self.cluster_name = cluster.name
        self.oidc_issuer_url = cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else "")
        self.worker_node_selector = worker_node_selector()
        self.worker_tolerations = worker_tolerations()
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Wait for the worker pool so workloads have somewhere to run.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[worker_pool]),
        )
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "oidc_issuer_url": self.oidc_issuer_url,
            }
        )


def _kubelet_object_id(profile: object) -> str:
    """Pick the kubelet identity's object id out of the cluster's identity profile."""
    if not profile or "kubeletidentity" not in profile:  # type: ignore[operator]
        raise ConfigurationError(
            "the AKS cluster reported no kubelet identity; cannot grant AcrPull",
            hint="the cluster must use a managed identity",
            key="identity_profile",
        )
    identity = profile["kubeletidentity"]  # type: ignore[index]
    object_id = getattr(identity, "object_id", None) or identity.get("objectId")
    return str(object_id)
