"""``PinnedImage``: a worker image named by the stack (``modelops:workspace.image``), checked and pinned to its digest.

A Pulumi dynamic resource whose ``check`` asks the image's registry for the
manifest (one ``HEAD``, no layers), at preview as at up:

* **the registry does not hold it**: preview fails, naming the workers and the
  registry's answer, in seconds, before anything is created. Without the
  check, the Deployments would be created, the kubelet would report
  ``ErrImagePull``, and Pulumi would wait for the whole rollout timeout
  (ten minutes by default) before failing;
* **it does**: ``image_ref`` is the reference with its digest added
  (``registry/repo:tag@sha256:…``), and the pods run exactly that. A tag
  moved since the last deploy shows at preview as a change of the workers'
  image, and ``pulumi up`` rolls them; an unmoved tag changes nothing;
* **the registry cannot answer** (unreachable from the deploying machine,
  such as a registry behind a private endpoint, or credentials the kubelet has
  and the deployer lacks): the reference is used as given, and ``unverified``
  says why, which the workspace logs as a warning. The kubelet may still pull it.

Credentials: the stack's registry credentials (``registry_username``,
``registry_password``, a secret input and never an output) and ``insecure``
(plain HTTP) apply only when the image lives in the stack's own registry
(``registry``); any other registry gets what the registry client finds for its
host (Entra ID token exchange for ACR, ``REGISTRY_USERNAME``/``REGISTRY_PASSWORD``,
Docker's config).

Deleting the resource deletes nothing: the image is not the stack's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, DiffResult, ReadResult, Resource

from modelops_infra.infra._engine_errors import EdgeProvider

if TYPE_CHECKING:
    from modelops_infra.bundles._registry import RegistryClient

__all__ = ["PinnedImage", "PinnedImageArgs", "PinnedImageProvider"]

#: Outputs that ``check`` computes; a change of any of them updates the resource (and rolls the pods).
_COMPUTED_KEYS = ("image_ref", "digest", "unverified")
_SECRET_KEYS = ("registry_password",)
#: Seconds for each request of the check: it runs at every preview, so an unreachable registry is given up soon.
CHECK_TIMEOUT = 15.0


def _known(value: Any) -> bool:
    from pulumi.runtime.rpc import UNKNOWN

    return isinstance(value, str) and value != UNKNOWN


def _client(props: dict[str, Any], registry: str) -> RegistryClient:
    """A client for the image's ``registry``, with the stack's credentials and HTTP setting only if it is the stack's."""
    from modelops_infra.bundles._auth import BasicCredentials
    from modelops_infra.bundles._host import RegistryHost
    from modelops_infra.bundles._registry import RegistryClient

    own = props.get("registry")
    same = isinstance(own, str) and _known(own) and \
        RegistryHost.parse(own).api_netloc == RegistryHost.parse(registry).api_netloc
    credentials = None
    if same and props.get("registry_username"):
        credentials = BasicCredentials(props["registry_username"], props.get("registry_password") or "",
                                       "the workspace's registry credentials")
    return RegistryClient(registry, credentials=credentials, insecure=True if same and props.get("insecure") else None,
                          timeout=CHECK_TIMEOUT, attempts=2)


def pin(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with ``image_ref``, ``digest`` and ``unverified`` computed from ``props["image"]``.

    Raises :class:`~modelops_infra.errors.RegistryNotFoundError` when the
    registry answers that the image does not exist, and
    :class:`~modelops_infra.errors.ReferenceError_` for a malformed reference
    or one without a registry. Any other registry failure is not an answer
    about the image: the reference is kept as given and ``unverified`` holds the reason.
    """
    from modelops_infra.bundles._reference import Reference
    from modelops_infra.errors import ReferenceError_, RegistryError, RegistryNotFoundError

    image = props["image"]
    ref = Reference.parse(image)
    if ref.registry is None:
        raise ReferenceError_(f"image {image!r} names no registry",
                              hint="write registry/repository[:tag|@sha256:...]")
    try:
        with _client(props, ref.registry) as client:
            digest = client.resolve_image(ref.repository, ref.digest or ref.tag or "latest")
    except RegistryNotFoundError:
        raise
    except RegistryError as exc:
        return {**props, "image_ref": image, "digest": None, "unverified": exc.message}
    return {**props, "image_ref": str(ref.with_digest(digest)), "digest": digest, "unverified": None}


class PinnedImageProvider(EdgeProvider):
    """Stateless: ``check`` does the work (one registry request); create and update record it."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        from modelops_infra.errors import ModelOpsError, RegistryNotFoundError

        if not _known(news.get("image")):
            return CheckResult(news, [])  # known at up; until then the pods' image is unknown too
        try:
            return CheckResult(pin(news), [])
        except RegistryNotFoundError as exc:
            reason = (f"workers: image {news['image']} does not exist: {exc.message} (hint: push it, or set "
                      "modelops:workspace.image to an image that exists; the kubelet could not pull it either)")
        except ModelOpsError as exc:
            reason = f"workers: image {news['image']!r}: {exc.render()}"
        return CheckResult(news, [CheckFailure("image", reason)])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in ("image", *_COMPUTED_KEYS) if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def outputs(self, props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        return {k: v for k, v in props.items() if k not in _SECRET_KEYS and not k.startswith("__")}

    def resource_id(self, outs: dict[str, Any]) -> str:
        digest = outs.get("digest")
        return f"image-{digest.split(':', 1)[1][:16]}" if digest else "image-unverified"

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


@dataclass
class PinnedImageArgs:
    """Inputs of :class:`PinnedImage`: the image, and the stack's own registry with its access settings."""

    image: pulumi.Input[str]
    registry: pulumi.Input[str] | None = None
    registry_username: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    insecure: bool = False


class PinnedImage(Resource, module="modelops", name="PinnedImage"):
    """An image reference checked against its registry and pinned to its digest (see the module docs)."""

    image_ref: pulumi.Output[str]
    digest: pulumi.Output[str | None]
    unverified: pulumi.Output[str | None]

    def __init__(self, name: str, args: PinnedImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "image": args.image,
            "registry": args.registry,
            "insecure": True if args.insecure else None,
            "registry_username": args.registry_username,
            "registry_password": pulumi.Output.secret(args.registry_password)
            if args.registry_password is not None else None,
            # The given reference until check pins it: unknown while the image is, never a stale value.
            "image_ref": args.image,
            "digest": None,
            "unverified": None,
        }
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["registry_password"]))
        super().__init__(PinnedImageProvider(), name, props, opts)
