"""``DaskWorkspace``: a Dask scheduler and workers on AKS that fetch bundles from ACR."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import managedidentity

from modelops_infra.errors import ConfigurationError, ImageBuildError
from modelops_infra.infra.azure import k8s_specs as specs
from modelops_infra.infra.azure.roles import acr_pull_assignment
from modelops_infra.infra.config import DEFAULT_BASE_IMAGE, DEFAULT_EXTRA_PACKAGES, AutoscaleConfig
from modelops_infra.infra.quantities import bundle_cache_cap, parse_cpu, parse_memory

if TYPE_CHECKING:
    from modelops_infra.infra.image.provider import WorkerImage

__all__ = ["DaskWorkspace", "DaskWorkspaceArgs", "WORKER_IMAGE_REPOSITORY"]

logger = logging.getLogger(__name__)

WORKER_IMAGE_REPOSITORY = "modelops/dask-worker"
WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"


@dataclass
class DaskWorkspaceArgs:
    """Inputs of :class:`DaskWorkspace`.

    ``login_server`` is the registry's login server *output* (same stack) or a
    StackReference output (two-stack layout); it becomes the workers'
    ``MODELOPS_BUNDLE_REGISTRY`` and the default image's registry.
    ``registry_id`` scopes the workspace identity's AcrPull grant; ``None``
    skips the grant (the registry is managed, and granted, elsewhere).
    ``threads=None`` derives ``--nthreads`` from ``cpu``. ``image=None`` builds
    the image in the stack: a ``WorkerImage`` child assembles ``base_image`` +
    this checkout (``checkout=None``: the one ``modelops_infra`` is imported
    from) + ``extra_packages``, pushes it to ``<login_server>/modelops/dask-worker``
    (also tagged ``image_tag``), and the Deployments name it by digest.
    ``cache_size`` is the workers' bundle cache volume; their
    ``MODELOPS_BUNDLE_CACHE_MAX_BYTES`` is derived from it
    (:func:`~modelops_infra.infra.quantities.bundle_cache_cap`).
    """

    provider: k8s.Provider
    login_server: pulumi.Input[str]
    resource_group_name: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    registry_id: pulumi.Input[str] | None = None
    location: pulumi.Input[str] | None = None
    namespace: str = "modelops"
    workers: int = 2
    threads: int | None = None
    cpu: str = "2"
    memory: str = "8Gi"
    scheduler_cpu: str = "1"
    scheduler_memory: str = "2Gi"
    image: pulumi.Input[str] | None = None
    base_image: str = DEFAULT_BASE_IMAGE
    extra_packages: tuple[str, ...] = DEFAULT_EXTRA_PACKAGES
    checkout: str | None = None
    image_tag: str = "latest"
    bundle_repository: str = "modelops/bundles"
    cache_size: str = "10Gi"
    autoscale: AutoscaleConfig | None = None


class DaskWorkspace(pulumi.ComponentResource):
    """A namespace holding one Dask scheduler, N workers and their workload identity.

    Pods pull bundles with an Entra ID token obtained through workload
    identity (a user-assigned identity federated with the workspace's
    ServiceAccount and granted AcrPull), so no password or long-lived secret
    exists anywhere. Nothing is exposed outside the cluster: the scheduler
    Service is ClusterIP and NetworkPolicies admit only the workspace's pods;
    reach the dashboard with ``kubectl port-forward``.

    Outputs: ``namespace``, ``scheduler_address``
    (``tcp://<svc>.<ns>.svc.cluster.local:8786``), ``dashboard_url``,
    ``scheduler_service``, ``identity_client_id``, ``image`` (what the pods run).

    Raises :class:`ConfigurationError` for malformed quantities, a cache size
    too small to leave an LRU cap, or a negative worker count, before creating
    anything.
    """

    namespace: pulumi.Output[str]
    scheduler_address: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]
    scheduler_service: pulumi.Output[str]
    identity_client_id: pulumi.Output[str]
    image: pulumi.Output[str]

    def __init__(self, name: str, args: DaskWorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        sizes = _validate(name, args)
        super().__init__("modelops:infra:DaskWorkspace", name, None, opts)
        names = specs.workspace_names(name, args.namespace)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)

        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": names.namespace,
                # Every pod here satisfies the "restricted" Pod Security Standard.
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=k8s_opts,
        )
        namespace = ns.metadata.apply(lambda m: m.name)

        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=args.resource_group_name,
            location=args.location,
            opts=pulumi.ResourceOptions(parent=self),
        )
        federation = managedidentity.FederatedIdentityCredential(
            f"{name}-federation",
            resource_group_name=args.resource_group_name,
            resource_name_=identity.name,
            issuer=args.oidc_issuer_url,
            subject=specs.federated_subject(names),
            audiences=[WORKLOAD_IDENTITY_AUDIENCE],
            opts=pulumi.ResourceOptions(parent=self),
        )
        grants: list[pulumi.Resource] = [federation]
        if args.registry_id is not None:
            grants.append(
                acr_pull_assignment(
                    f"{name}-acrpull", scope=args.registry_id, principal_id=identity.principal_id, parent=self
                )
            )

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={
                "name": names.service_account,
                "namespace": namespace,
                "annotations": {specs.WORKLOAD_IDENTITY_CLIENT_ID_ANNOTATION: identity.client_id},
            },
            automount_service_account_token=False,
            opts=k8s_opts,
        )

        image = args.image if args.image is not None else self._worker_image(name, args).image_ref
        env = specs.bundle_env(
            login_server=args.login_server,
            repository=args.bundle_repository,
            client_id=identity.client_id,
        )
        # Pods must not start before their identity can be exchanged for a token.
        workload_opts = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=[service_account, *grants]
        )

        scheduler = k8s.apps.v1.Deployment(
            f"{name}-scheduler",
            metadata={"name": names.scheduler, "namespace": namespace},
            spec=specs.scheduler_deployment_spec(
                names,
                image=image,
                env=env,
                cpu=args.scheduler_cpu,
                memory=args.scheduler_memory,
            ),
            opts=workload_opts,
        )
        service = k8s.core.v1.Service(
            f"{name}-scheduler-svc",
            metadata={"name": names.scheduler_service, "namespace": namespace},
            spec=specs.scheduler_service_spec(names),
            opts=k8s_opts,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-scheduler-pdb",
            metadata={"name": names.scheduler, "namespace": namespace},
            spec=specs.scheduler_pdb_spec(names),
            opts=k8s_opts,
        )

        autoscale = args.autoscale if args.autoscale is not None and args.autoscale.enabled else None
        workers = k8s.apps.v1.Deployment(
            f"{name}-workers",
            metadata={"name": names.workers, "namespace": namespace},
            spec=specs.worker_deployment_spec(
                names,
                image=image,
                env=env,
                cpu=args.cpu,
                memory=args.memory,
                nthreads=sizes.nthreads,
                memory_limit_bytes=sizes.memory_bytes,
                cache_size=args.cache_size,
                cache_max_bytes=sizes.cache_max_bytes,
                replicas=None if autoscale else args.workers,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[service_account, service, *grants]
            ),
        )
        if autoscale is not None:
            k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-workers-hpa",
                metadata={"name": names.workers, "namespace": namespace},
                spec=specs.worker_hpa_spec(
                    names,
                    min_replicas=autoscale.min_replicas,
                    max_replicas=autoscale.max_replicas,
                    target_cpu_utilization=autoscale.target_cpu_utilization,
                ),
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[workers]),
            )

        for role, spec in specs.network_policy_specs(names).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{role}-netpol",
                metadata={"name": f"{names.workspace}-{role}", "namespace": namespace},
                spec=spec,
                opts=k8s_opts,
            )

        self.namespace = namespace
        self.scheduler_service = service.metadata.apply(lambda m: m.name)
        # Derived from the Service's real name and namespace so the address follows any rename.
        self.scheduler_address = pulumi.Output.all(self.scheduler_service, namespace).apply(
            lambda v: f"tcp://{v[0]}.{v[1]}.svc.cluster.local:{specs.SCHEDULER_PORT}"
        )
        self.dashboard_url = pulumi.Output.all(self.scheduler_service, namespace).apply(
            lambda v: f"http://{v[0]}.{v[1]}.svc.cluster.local:{specs.DASHBOARD_PORT}"
        )
        self.identity_client_id = identity.client_id
        self.image = pulumi.Output.from_input(image)
        self.scheduler = scheduler
        self.workers = workers
        self.register_outputs(
            {
                "namespace": self.namespace,
                "scheduler_address": self.scheduler_address,
                "dashboard_url": self.dashboard_url,
                "scheduler_service": self.scheduler_service,
                "identity_client_id": self.identity_client_id,
                "image": self.image,
            }
        )

    def _worker_image(self, name: str, args: DaskWorkspaceArgs) -> WorkerImage:
        """The image built by the stack (``WorkerImage``), pushed to the workspace's registry."""
        from modelops_infra.infra.image import default_checkout
        from modelops_infra.infra.image.provider import WorkerImage, WorkerImageArgs

        try:
            checkout = args.checkout or str(default_checkout())
        except ImageBuildError as exc:
            raise ConfigurationError(f"DaskWorkspace {name!r}: {exc.message}", hint=exc.hint,
                                     key="modelops:workspace.image") from exc
        return WorkerImage(
            f"{name}-image",
            WorkerImageArgs(
                base_image=args.base_image,
                target=pulumi.Output.concat(args.login_server, f"/{WORKER_IMAGE_REPOSITORY}"),
                checkout=checkout,
                extra_packages=list(args.extra_packages),
                tag=args.image_tag,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


@dataclass(frozen=True)
class _Sizes:
    memory_bytes: int
    nthreads: int
    cache_max_bytes: int


def _validate(name: str, args: DaskWorkspaceArgs) -> _Sizes:
    """Check sizes before any resource exists; return the numbers the workers are sized by."""
    where = f"DaskWorkspace {name!r}"
    if args.workers < 0:
        raise ConfigurationError(f"{where}: workers must be >= 0, got {args.workers}", key="workers")
    if args.threads is not None and args.threads < 1:
        raise ConfigurationError(f"{where}: threads must be >= 1, got {args.threads}", key="threads")
    memory_bytes = parse_memory(args.memory, key=f"{where}: memory")
    cpu_millis = parse_cpu(args.cpu, key=f"{where}: cpu")
    parse_memory(args.scheduler_memory, key=f"{where}: scheduler_memory")
    parse_cpu(args.scheduler_cpu, key=f"{where}: scheduler_cpu")
    cache_max_bytes = bundle_cache_cap(args.cache_size, key=f"{where}: cache_size")
    nthreads = args.threads if args.threads is not None else max(1, cpu_millis // 1000)
    return _Sizes(memory_bytes=memory_bytes, nthreads=nthreads, cache_max_bytes=cache_max_bytes)
