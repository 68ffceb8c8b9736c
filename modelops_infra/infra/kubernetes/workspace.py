"""``DaskWorkspace``: a Dask scheduler and workers on any Kubernetes cluster, fetching bundles from a registry.

The one component every cluster gets. What a kind of cluster adds (AKS:
workload identity and the tainted worker pool) comes in through a
:class:`WorkspaceIdentity`, which creates its own resources under the
workspace and returns a :class:`~modelops_infra.infra.kubernetes.specs.PodAccess`.
Registry credentials, when the registry needs them, become a Kubernetes Secret
of the workspace (:class:`RegistryCredentials`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import pulumi
import pulumi_kubernetes as k8s

from modelops_infra.errors import ConfigurationError, ImageBuildError
from modelops_infra.infra.config import AutoscaleConfig, WorkspaceConfig
from modelops_infra.infra.kubernetes import specs
from modelops_infra.infra.quantities import WorkerSizes, parse_cpu, parse_memory, worker_sizes

if TYPE_CHECKING:
    from modelops_infra.infra.image.provider import WorkerImage

__all__ = [
    "BoundIdentity",
    "DaskWorkspace",
    "DaskWorkspaceArgs",
    "RegistryCredentials",
    "WORKER_IMAGE_REPOSITORY",
    "WorkspaceIdentity",
]


WORKER_IMAGE_REPOSITORY = "modelops/dask-worker"
#: The component's type token; every kind of cluster deploys this same component.
WORKSPACE_TYPE = "modelops:infra:DaskWorkspace"
#: The defaults of ``modelops:workspace``, declared once in the config; the Args take theirs from it.
_DEFAULTS = WorkspaceConfig()
_ArgsT = TypeVar("_ArgsT", bound="DaskWorkspaceArgs")


@dataclass(frozen=True)
class RegistryCredentials:
    """A user name and password for the bundle registry; ``password`` should be a secret Output.

    The workspace stores them in a ``kubernetes.io/dockerconfigjson`` Secret:
    the kubelet pulls the worker image with it, and workers read it for bundles.
    """

    username: pulumi.Input[str]
    password: pulumi.Input[str] = field(repr=False)


@dataclass(frozen=True)
class BoundIdentity:
    """What a :class:`WorkspaceIdentity` made: pod settings, resources pods must wait for, extra outputs."""

    access: specs.PodAccess = field(default_factory=specs.PodAccess)
    depends_on: Sequence[pulumi.Resource] = ()
    outputs: Mapping[str, pulumi.Output[Any]] = field(default_factory=dict)


class WorkspaceIdentity(Protocol):
    """How a kind of cluster gives the workspace's pods an identity (AKS: workload identity).

    ``bind`` creates its resources as children of ``workspace``, named
    ``f"{name}-..."``, and returns what the pods need. It is called once, after
    the namespace exists and before the ServiceAccount is created.
    """

    def bind(self, workspace: pulumi.ComponentResource, name: str, names: specs.WorkspaceNames) -> BoundIdentity: ...


@dataclass
class DaskWorkspaceArgs:
    """Inputs of :class:`DaskWorkspace`.

    ``login_server`` is the bundle registry's login server (an output, a
    StackReference output or config); it becomes the workers'
    ``MODELOPS_BUNDLE_REGISTRY`` and the default image's registry.
    ``threads=None`` derives ``--nthreads`` from ``cpu``. ``image=None`` builds
    the image in the stack: a ``WorkerImage`` child assembles ``base_image`` +
    this checkout (``checkout=None``: the one ``modelops_infra`` is imported
    from) + ``extra_packages``, pushes it to ``<login_server>/modelops/dask-worker``
    (also tagged ``image_tag``; with ``registry_credentials`` and
    ``registry_insecure`` when given), and the Deployments name it by digest.
    A given ``image`` is checked in its registry and pinned to its digest by a
    ``PinnedImage`` child: one that does not exist fails preview naming the workers.
    ``cache_size`` is the workers' bundle cache volume; their
    ``MODELOPS_BUNDLE_CACHE_MAX_BYTES`` is derived from it
    (:func:`~modelops_infra.infra.quantities.bundle_cache_cap`).
    ``registry_credentials=None`` means an open registry, or one the cluster
    and the deploying machine reach by other means (AKS: the kubelet's AcrPull
    grant and workload identity; the deployer's Entra ID login for the push).
    ``identity=None`` adds no identity and lets workers run on any node.
    The defaults are those of ``modelops:workspace``; :meth:`from_config` takes all of it.
    """

    provider: k8s.Provider
    login_server: pulumi.Input[str]
    namespace: str = _DEFAULTS.namespace
    workers: int = _DEFAULTS.workers
    threads: int | None = _DEFAULTS.threads
    cpu: str = _DEFAULTS.cpu
    memory: str = _DEFAULTS.memory
    scheduler_cpu: str = _DEFAULTS.scheduler.cpu
    scheduler_memory: str = _DEFAULTS.scheduler.memory
    image: pulumi.Input[str] | None = _DEFAULTS.image
    base_image: str = _DEFAULTS.base_image
    extra_packages: tuple[str, ...] = _DEFAULTS.extra_packages
    checkout: str | None = None
    image_tag: str = _DEFAULTS.image_tag
    bundle_repository: str = _DEFAULTS.bundle_repository
    cache_size: str = _DEFAULTS.cache_size
    autoscale: AutoscaleConfig | None = _DEFAULTS.autoscale
    #: Seconds Pulumi waits for each Deployment's rollout before failing it with the pods' reasons.
    rollout_timeout: float = _DEFAULTS.rollout_timeout
    registry_credentials: RegistryCredentials | None = None
    #: The workers' package index URL (secret: it may carry credentials); ``None`` leaves uv's default.
    package_index: pulumi.Input[str] | None = None
    #: Plain HTTP to the registry (``MODELOPS_BUNDLE_INSECURE``); loopback registries need no flag.
    registry_insecure: bool = False
    identity: WorkspaceIdentity | None = None

    @classmethod
    def from_config(cls: type[_ArgsT], ws: WorkspaceConfig, **args: Any) -> _ArgsT:
        """The Args of ``modelops:workspace`` (``ws``), plus ``args`` (``provider``, ``login_server``, ...).

        A key of ``args`` overrides the config's, e.g. ``image=`` a reference built elsewhere.
        """
        fields = {
            "namespace": ws.namespace, "workers": ws.workers, "threads": ws.threads, "cpu": ws.cpu,
            "memory": ws.memory, "scheduler_cpu": ws.scheduler.cpu, "scheduler_memory": ws.scheduler.memory,
            "image": ws.image, "base_image": ws.base_image, "extra_packages": ws.extra_packages,
            "image_tag": ws.image_tag, "bundle_repository": ws.bundle_repository, "cache_size": ws.cache_size,
            "autoscale": ws.autoscale, "rollout_timeout": ws.rollout_timeout,
            "package_index": pulumi.Output.secret(ws.package_index.reveal()) if ws.package_index else None,
        }
        return cls(**{**fields, **args})


class DaskWorkspace(pulumi.ComponentResource):
    """A namespace holding one Dask scheduler and N workers.

    Nothing is exposed outside the cluster: the scheduler Service is ClusterIP
    and NetworkPolicies admit only the workspace's pods; the smoke test and
    users reach the scheduler through a port-forward.

    Outputs: ``namespace``, ``scheduler_address``
    (``tcp://<svc>.<ns>.svc.cluster.local:8786``), ``dashboard_url``,
    ``scheduler_service``, ``image`` (what the pods run), plus whatever the
    identity adds (:attr:`identity_outputs`; AKS: ``identity_client_id``).

    Raises :class:`ConfigurationError` for malformed quantities, a cache size
    too small to leave an LRU cap, a negative worker count or an empty
    registry user name, before creating anything.
    """

    namespace: pulumi.Output[str]
    scheduler_address: pulumi.Output[str]
    dashboard_url: pulumi.Output[str]
    scheduler_service: pulumi.Output[str]
    image: pulumi.Output[str]
    identity_outputs: Mapping[str, pulumi.Output[Any]]

    def __init__(self, name: str, args: DaskWorkspaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        sizes = _validate(name, args)
        super().__init__(WORKSPACE_TYPE, name, None, opts)
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

        bound = args.identity.bind(self, name, names) if args.identity is not None else BoundIdentity()
        access = bound.access
        # Pods must not start before their identity and credentials exist.
        prerequisites: list[pulumi.Resource] = list(bound.depends_on)
        if args.registry_credentials is not None:
            prerequisites.append(
                _registry_secret(name, names, namespace, args.login_server, args.registry_credentials, k8s_opts)
            )
            access = dataclasses.replace(access, registry_secret=names.registry_secret)
        index_secret = None
        if args.package_index is not None:
            prerequisites.append(_package_index_secret(name, names, namespace, args.package_index, k8s_opts))
            index_secret = names.package_index_secret

        service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=specs.service_account_metadata(names, namespace, access),
            automount_service_account_token=False,
            opts=k8s_opts,
        )

        image = self._pinned_image(name, args) if args.image is not None else self._worker_image(name, args).image_ref
        env = specs.bundle_env(
            login_server=args.login_server,
            repository=args.bundle_repository,
            identity_env=access.env,
            insecure=args.registry_insecure,
        )

        # Pulumi's await of a Deployment reports its pods' failures (an image that cannot be pulled, a
        # crash loop) but waits 10 minutes by default: bound it by the configured rollout timeout.
        rollout = f"{math.ceil(args.rollout_timeout)}s"
        deployment_timeouts = pulumi.CustomTimeouts(create=rollout, update=rollout)
        scheduler = k8s.apps.v1.Deployment(
            f"{name}-scheduler",
            metadata={"name": names.scheduler, "namespace": namespace},
            spec=specs.scheduler_deployment_spec(
                names,
                image=image,
                env=env,
                cpu=args.scheduler_cpu,
                memory=args.scheduler_memory,
                access=access,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[service_account, *prerequisites],
                custom_timeouts=deployment_timeouts,
            ),
        )
        service = k8s.core.v1.Service(
            f"{name}-scheduler-svc",
            metadata={"name": names.scheduler_service, "namespace": namespace,
                      "annotations": specs.SCHEDULER_SERVICE_ANNOTATIONS},
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
                access=access,
                package_index_secret=index_secret,
            ),
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=[service_account, service, *prerequisites],
                custom_timeouts=deployment_timeouts,
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
        self.image = pulumi.Output.from_input(image)
        self.identity_outputs = dict(bound.outputs)
        self.scheduler = scheduler
        self.workers = workers
        self.register_outputs(
            {
                "namespace": self.namespace,
                "scheduler_address": self.scheduler_address,
                "dashboard_url": self.dashboard_url,
                "scheduler_service": self.scheduler_service,
                "image": self.image,
                **self.identity_outputs,
            }
        )

    def _pinned_image(self, name: str, args: DaskWorkspaceArgs) -> pulumi.Output[str]:
        """The given image (``modelops:workspace.image``), checked in its registry and pinned to its digest.

        An image the registry says does not exist fails preview (``PinnedImage``'s check); one the
        deploying machine cannot check is used as given, with a warning.
        """
        from modelops_infra.infra.image.pinned import PinnedImage, PinnedImageArgs

        creds = args.registry_credentials
        assert args.image is not None
        pinned = PinnedImage(
            f"{name}-image-pin",
            PinnedImageArgs(
                image=args.image,
                registry=args.login_server,
                registry_username=creds.username if creds is not None else None,
                registry_password=creds.password if creds is not None else None,
                insecure=args.registry_insecure,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

        def warn(reason: str | None) -> None:
            if reason:
                pulumi.log.warn(f"the workers' image was not checked, and is used as given: {reason}",
                                resource=pinned)

        pinned.unverified.apply(warn)
        return pinned.image_ref

    def _worker_image(self, name: str, args: DaskWorkspaceArgs) -> WorkerImage:
        """The image built by the stack (``WorkerImage``), pushed to the workspace's registry."""
        from modelops_infra.infra.image import default_checkout
        from modelops_infra.infra.image.provider import WorkerImage, WorkerImageArgs

        try:
            checkout = args.checkout or str(default_checkout())
        except ImageBuildError as exc:
            raise ConfigurationError(f"DaskWorkspace {name!r}: {exc.message}", hint=exc.hint,
                                     key="modelops:workspace.image") from exc
        creds = args.registry_credentials
        return WorkerImage(
            f"{name}-image",
            WorkerImageArgs(
                base_image=args.base_image,
                target=pulumi.Output.concat(args.login_server, f"/{WORKER_IMAGE_REPOSITORY}"),
                checkout=checkout,
                extra_packages=list(args.extra_packages),
                tag=args.image_tag,
                registry_username=creds.username if creds is not None else None,
                registry_password=creds.password if creds is not None else None,
                insecure=args.registry_insecure,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )


def _registry_secret(
    name: str,
    names: specs.WorkspaceNames,
    namespace: pulumi.Input[str],
    login_server: pulumi.Input[str],
    credentials: RegistryCredentials,
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """The ``kubernetes.io/dockerconfigjson`` Secret; its content is a secret Output end to end."""
    config: pulumi.Output[str] = pulumi.Output.secret(
        pulumi.Output.all(login_server, credentials.username, credentials.password).apply(
            lambda v: specs.docker_config_json(str(v[0]), str(v[1]), str(v[2]))
        )
    )
    return k8s.core.v1.Secret(
        f"{name}-registry-secret",
        metadata={"name": names.registry_secret, "namespace": namespace},
        type="kubernetes.io/dockerconfigjson",
        string_data={".dockerconfigjson": config},
        opts=opts,
    )


def _package_index_secret(
    name: str,
    names: specs.WorkspaceNames,
    namespace: pulumi.Input[str],
    url: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
) -> k8s.core.v1.Secret:
    """The Opaque Secret the workers read ``MODELOPS_BUNDLE_INDEX_URL`` from; the URL stays a secret Output."""
    return k8s.core.v1.Secret(
        f"{name}-package-index",
        metadata={"name": names.package_index_secret, "namespace": namespace},
        type="Opaque",
        string_data={specs.PACKAGE_INDEX_KEY: pulumi.Output.secret(url)},
        opts=opts,
    )


def _validate(name: str, args: DaskWorkspaceArgs) -> WorkerSizes:
    """Check the Args before any resource exists; return the numbers the workers are sized by.

    Config-built Args were checked when the config was read (naming the config key);
    these checks are for Args built by hand, and name the argument.
    """
    where = f"DaskWorkspace {name!r}"
    if args.workers < 0:
        raise ConfigurationError(f"{where}: workers must be >= 0, got {args.workers}", key="workers")
    if not (args.rollout_timeout > 0 and math.isfinite(args.rollout_timeout)):
        raise ConfigurationError(f"{where}: rollout_timeout must be a positive number of seconds, got "
                                 f"{args.rollout_timeout!r}", key="rollout_timeout")
    creds = args.registry_credentials
    if creds is not None and isinstance(creds.username, str) and not creds.username.strip():
        raise ConfigurationError(f"{where}: registry_credentials.username is empty", key="registry_credentials")
    parse_memory(args.scheduler_memory, key=f"{where}: scheduler_memory")
    parse_cpu(args.scheduler_cpu, key=f"{where}: scheduler_cpu")
    return worker_sizes(cpu=args.cpu, memory=args.memory, cache_size=args.cache_size, threads=args.threads,
                        key=lambda field: f"{where}: {field}")
