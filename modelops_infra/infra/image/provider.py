"""``WorkerImage``: a Pulumi dynamic resource that builds and pushes the worker image (see :mod:`._assemble`).

Inputs: ``base_image`` (any ``registry/repository[:tag|@digest]``), ``target``
(``registry/repository``, usually ``<login_server>/modelops/dask-worker``),
``checkout`` (the directory holding ``pyproject.toml``), ``extra_packages``,
``python_version`` and ``install_hash`` (both computed by the program, so
``pulumi preview`` shows a change of code), and ``tag`` (also given to the
manifest, for people browsing the registry).

``check`` resolves the base reference to the digest of its linux/amd64
manifest (a few small requests, no layers) and adds it as ``base_digest``, so
a base tag that moved shows at preview, and an unreachable base registry or a
base without linux/amd64 fails preview naming ``base_image``.

``diff`` is explicit: the image is rebuilt only when ``base_digest``,
``install_hash``, ``extra_packages``, ``python_version`` or ``target`` change.
A no-op ``pulumi up`` builds and uploads nothing. ``tag`` alone never rebuilds: the new tag is
pointed at the same manifest.

Outputs: the inputs (less ``registry_password``) plus ``image_ref``
(``registry/repo@sha256:…``), ``digest`` and ``layer_digest`` (the top layer,
modelops-infra's own files; the dependencies layer below it is cached on the
deploying machine, see :mod:`._layercache`). By default no
credentials are inputs: the registry client finds them per host when it runs
(Entra ID token exchange for ACR, ``REGISTRY_USERNAME``/``REGISTRY_PASSWORD``,
Docker's config). A stack that holds the target registry's credentials in its
own config (the ``kubernetes`` cloud) passes ``registry_username`` and
``registry_password``: they are used for the target host only, the password is a
secret input and never an output. ``insecure`` pushes to the target over plain
HTTP (loopback always is). Neither rebuilds the image.

Deleting the resource leaves the image in the registry (a running Deployment
may still use it); clean up with the registry's retention policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    DiffResult,
    ReadResult,
    Resource,
)

from modelops_infra.infra._engine_errors import EdgeProvider

if TYPE_CHECKING:
    from modelops_infra.bundles._auth import BasicCredentials
    from modelops_infra.bundles._registry import RegistryClient
    from modelops_infra.infra.image._assemble import ClientFactory

__all__ = ["REBUILD_KEYS", "WorkerImage", "WorkerImageArgs", "WorkerImageProvider"]

#: Inputs whose change rebuilds the image.
REBUILD_KEYS = ("base_digest", "install_hash", "extra_packages", "python_version", "target")
_OUTPUT_KEYS = ("image_ref", "digest", "layer_digest")
#: Inputs that never reach the outputs.
_SECRET_KEYS = ("registry_password",)


def _known(value: Any) -> bool:
    """Whether a dynamic-provider input is known (at preview an output of another resource may not be)."""
    from pulumi.runtime.rpc import UNKNOWN

    return isinstance(value, str) and value != UNKNOWN


def _target_credentials(props: dict[str, Any]) -> BasicCredentials | None:
    """The target registry's ``BasicCredentials`` when the stack passed them, else ``None`` (found per host)."""
    from modelops_infra.bundles._auth import BasicCredentials

    if not props.get("registry_username"):
        return None
    return BasicCredentials(props["registry_username"], props.get("registry_password") or "",
                            "the WorkerImage registry credentials")


def _client_factory(props: dict[str, Any], timeout: float = 120.0) -> ClientFactory:
    """Registry clients for the build: plain HTTP to the target's registry when ``insecure`` (the base too,
    when it lives there), any other registry as usual."""
    from modelops_infra.bundles._reference import Reference
    from modelops_infra.bundles._registry import RegistryClient

    target = props.get("target")
    target_registry = Reference.parse(target).registry if props.get("insecure") and isinstance(target, str) \
        and _known(target) else None

    def factory(registry: str, credentials: BasicCredentials | None) -> RegistryClient:
        insecure = True if target_registry is not None and registry == target_registry else None
        return RegistryClient(registry, credentials=credentials, timeout=timeout, insecure=insecure)

    return factory


def _retag(props: dict[str, Any], digest: str) -> None:
    """Point ``props["tag"]`` at the already pushed manifest ``digest`` in ``props["target"]`` (no build)."""
    from modelops_infra.bundles._reference import Reference
    from modelops_infra.errors import ImageBuildError, IntegrityError, RegistryError

    ref = Reference.parse(props["target"])
    try:
        with _client_factory(props)(ref.registry or "", _target_credentials(props)) as client:
            raw, media_type = client.get_image_manifest(ref.repository, digest)
            client.put_manifest(ref.repository, props["tag"], raw, media_type)
    except (RegistryError, IntegrityError) as exc:
        raise ImageBuildError(f"tagging {props['target']}@{digest} as {props['tag']!r}: {exc.message}",
                              stage="push", input="target") from exc


class WorkerImageProvider(EdgeProvider):
    """Stateless: every method creates the clients it needs and closes them."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures: list[CheckFailure] = []
        target = news.get("target")
        if isinstance(target, str) and _known(target) and \
                ("/" not in target or "@" in target or ":" in target.rsplit("/", 1)[-1]):
            failures.append(CheckFailure("target", f"target {target!r} must be registry/repository"))
        base = news.get("base_image")
        if not isinstance(base, str) or not base:
            failures.append(CheckFailure("base_image", "modelops:workspace.baseImage is empty"))
        elif _known(base) and "@sha256:" in base and olds.get("base_image") == base and olds.get("base_digest"):
            # A base pinned by digest cannot change: what it resolved to last time still holds, and a
            # no-op `pulumi up` of the default (pinned) base asks no registry anything.
            news = {**news, "base_digest": olds["base_digest"]}
        elif _known(base):
            from modelops_infra.errors import ModelOpsError
            from modelops_infra.infra.image._assemble import parse_base, resolve_base_digest

            try:
                ref = parse_base(base)
                with _client_factory(news, timeout=30.0)(ref.registry or "", None) as client:
                    news = {**news, "base_digest": resolve_base_digest(base, ref, client)}
            except ModelOpsError as exc:
                failures.append(CheckFailure("base_image", exc.render()))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in REBUILD_KEYS if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed) or olds.get("tag") != news.get("tag"), replaces=[], stables=[],
                          delete_before_replace=False)

    def outputs(self, props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        from pathlib import Path

        from modelops_infra.infra.image._assemble import build_worker_image
        from modelops_infra.infra.image._venv import WorkerInstall

        outs = {k: v for k, v in props.items() if k not in _SECRET_KEYS and not k.startswith("__")}
        if olds is not None and not any(olds.get(k) != props.get(k) for k in REBUILD_KEYS):
            # Only the tag changed: the image is the same; the new tag is pointed at it.
            outs.update({k: olds.get(k) for k in _OUTPUT_KEYS})
            if props.get("tag"):
                _retag(props, str(olds["digest"]))
            return outs
        install = WorkerInstall(Path(props["checkout"]), extra_packages=tuple(props.get("extra_packages") or ()))
        built = build_worker_image(props["base_image"], props["target"], install,
                                   python_version=props["python_version"], tag=props.get("tag") or None,
                                   target_credentials=_target_credentials(props),
                                   client_factory=_client_factory(props))
        if built.install_hash != props.get("install_hash"):
            pulumi.log.warn(f"WorkerImage: the checkout changed between preview and up ({built.install_hash})")
        outs.update(image_ref=built.image_ref, digest=built.digest, layer_digest=built.layer_digest,
                    base_digest=props.get("base_digest") or built.base_digest)
        return outs

    def resource_id(self, outs: dict[str, Any]) -> str:
        return f"worker-image-{outs['digest'].split(':', 1)[1][:16]}"

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


@dataclass
class WorkerImageArgs:
    """Inputs of :class:`WorkerImage`; ``install_hash`` and ``python_version`` default to this program's."""

    base_image: str
    target: pulumi.Input[str]
    checkout: str
    extra_packages: list[str] = field(default_factory=list)
    tag: str | None = None
    python_version: str | None = None
    registry_username: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    insecure: bool = False


class WorkerImage(Resource, module="modelops", name="WorkerImage"):
    """The Dask worker image, assembled from ``base_image`` and this checkout, pushed to ``target`` by digest."""

    image_ref: pulumi.Output[str]
    digest: pulumi.Output[str]
    layer_digest: pulumi.Output[str]
    base_digest: pulumi.Output[str]

    def __init__(self, name: str, args: WorkerImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        import sys
        from pathlib import Path

        from modelops_infra.errors import ConfigurationError, ModelOpsError
        from modelops_infra.infra.image._manifests import parse_base
        from modelops_infra.infra.image._venv import WorkerInstall

        python_version = args.python_version or "%d.%d" % sys.version_info[:2]
        try:
            parse_base(args.base_image)
            install_hash = WorkerInstall(Path(args.checkout), extra_packages=tuple(args.extra_packages)) \
                .content_hash(python_version)
        except (ModelOpsError, OSError) as exc:
            raise ConfigurationError(f"WorkerImage {name!r}: {exc}", key="modelops:workspace.baseImage") from exc
        props: dict[str, Any] = {
            "base_image": args.base_image,
            "target": args.target,
            "checkout": str(Path(args.checkout).resolve()),
            "extra_packages": list(args.extra_packages),
            "tag": args.tag,
            "python_version": python_version,
            "install_hash": install_hash,
            "base_digest": None,
            # None, not False or "", when unused: stacks built before these inputs existed see no change.
            "insecure": True if args.insecure else None,
            "registry_username": args.registry_username,
            "registry_password": pulumi.Output.secret(args.registry_password)
            if args.registry_password is not None else None,
        }
        props.update({key: None for key in _OUTPUT_KEYS})
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["registry_password"]))
        super().__init__(WorkerImageProvider(), name, props, opts)
