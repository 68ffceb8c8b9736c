"""``BundleSmokeTest``: a Pulumi dynamic resource that proves the bundle pipeline during ``pulumi up``.

On create (and on update, when something that matters changed) it runs the
stages ``pack``, ``push``, ``connect``, ``workers``, ``fetch`` and ``run``
(see :mod:`modelops_infra.client._smoketest`). A failure raises a
:class:`~modelops_infra.errors.SmokeTestError` to the engine whose message
starts with the stage, printed once (``"run: entrypoint smoke:run of bundle
sha256:... raised ValueError: ..."``; see :mod:`modelops_infra.infra._engine_errors`),
so ``pulumi up`` exits non-zero and prints it. A failed create leaves no
resource behind, so the next ``pulumi up`` simply tries again.

Re-runs happen when the bundle digest, the registry, the scheduler endpoint
(address, or cluster + namespace + service) or ``triggers`` change; nothing
else (``diff`` is explicit, never the default comparison of the pickled
provider). The digest is computed by the program (packing is pure), so
``pulumi preview`` already shows when the bundle changed.

Secrets: the kubeconfig and registry password are secret inputs; outputs hold
neither, only a SHA-256 of the kubeconfig to detect a change of cluster.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    DiffResult,
    ReadResult,
    Resource,
)

from modelops_infra.infra._engine_errors import EdgeProvider

__all__ = ["BundleSmokeTest", "BundleSmokeTestArgs", "BundleSmokeTestProvider", "RERUN_KEYS"]

#: Inputs whose change re-runs the test. ``kubeconfig_sha256`` stands for the (secret) kubeconfig.
RERUN_KEYS = ("bundle_digest", "registry", "insecure", "scheduler_address", "namespace", "scheduler_service",
              "kubeconfig_sha256", "triggers")
_SECRET_KEYS = ("kubeconfig", "registry_password")
_OUTPUT_KEYS = ("bundle_ref", "result", "worker", "timings", "passed")


def _sha256(text: str | None) -> str | None:
    return hashlib.sha256(text.encode()).hexdigest() if text else None


def _public(props: dict[str, Any]) -> dict[str, Any]:
    """Inputs safe to keep in outputs: everything except the secrets, plus the kubeconfig hash."""
    out = {k: v for k, v in props.items() if k not in _SECRET_KEYS and not k.startswith("__")}
    out["kubeconfig_sha256"] = _sha256(props.get("kubeconfig"))
    return out


class BundleSmokeTestProvider(EdgeProvider):
    """Stateless: every method builds what it needs (clients, port-forwards) and closes it."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = []
        registry = news.get("registry")
        if not registry:
            failures.append(CheckFailure("registry", "the registry login server is empty"))
        elif isinstance(registry, str):
            from modelops_infra.bundles import registry_problem

            problem = registry_problem(registry)
            if problem:
                failures.append(CheckFailure("registry", f"registry {registry!r} is not a host[:port]: {problem}"))
        if not news.get("scheduler_address") and not (news.get("kubeconfig") and news.get("namespace")):
            failures.append(CheckFailure("scheduler_address",
                                         "give scheduler_address, or kubeconfig + namespace + scheduler_service"))
        timeout = news.get("timeout")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            failures.append(CheckFailure("timeout", f"modelops:smokeTest.timeout must be > 0 s, got {timeout!r}"))
        return CheckResult(news, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        new_public = _public(news)
        changed = [k for k in RERUN_KEYS if olds.get(k) != new_public.get(k)]
        return DiffResult(changes=bool(changed), replaces=[], stables=[], delete_before_replace=False)

    def outputs(self, props: dict[str, Any], olds: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run the smoke test (again on every update: that is what a trigger asks for)."""
        import dataclasses

        from modelops_infra.bundles import BasicCredentials, BundleSettings
        from modelops_infra.client import run_smoke_test
        from modelops_infra.infra.smoke._endpoint import scheduler_endpoint

        creds = None
        if props.get("registry_username"):
            creds = BasicCredentials(props["registry_username"], props.get("registry_password") or "",
                                     "the BundleSmokeTest registry credentials")
        timeout = float(props["timeout"])
        settings = BundleSettings.from_env()
        if props.get("insecure"):
            settings = dataclasses.replace(settings, insecure=True)
        with scheduler_endpoint(props, timeout=timeout) as scheduler:
            report = run_smoke_test(bundle=props.get("bundle_path"), registry=props["registry"], scheduler=scheduler,
                                    timeout=timeout, repository=props.get("repository") or "modelops/bundles",
                                    settings=settings, credentials=creds, expected_digest=props.get("bundle_digest"))
        report.raise_for_failure()
        outs = _public(props)
        outs.update({"bundle_ref": report.bundle_ref, "result": report.result, "worker": report.worker,
                     "timings": {k: round(v, 3) for k, v in report.timings.items()}, "passed": True})
        return outs

    def resource_id(self, outs: dict[str, Any]) -> str:
        return f"smoke-{outs['bundle_ref'].rsplit(':', 1)[-1][:16]}"

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None


@dataclass
class BundleSmokeTestArgs:
    """Inputs. Give ``scheduler_address``, or (AKS) ``kubeconfig`` + ``namespace`` + ``scheduler_service``."""

    login_server: pulumi.Input[str]
    bundle_digest: pulumi.Input[str]
    bundle: str
    repository: str = "modelops/bundles"
    scheduler_address: pulumi.Input[str] | None = None
    kubeconfig: pulumi.Input[str] | None = None
    namespace: pulumi.Input[str] | None = None
    scheduler_service: pulumi.Input[str] | None = None
    scheduler_port: int = 8786
    registry_username: pulumi.Input[str] | None = None
    registry_password: pulumi.Input[str] | None = None
    #: Plain HTTP to a registry that is not on loopback (as ``MODELOPS_BUNDLE_INSECURE``).
    insecure: bool = False
    timeout: float = 120.0
    triggers: list[str] = field(default_factory=list)


class BundleSmokeTest(Resource, module="modelops", name="BundleSmokeTest"):
    """Push a bundle, have a worker fetch it by digest and run it, check the result -- during ``pulumi up``."""

    bundle_ref: pulumi.Output[str]
    result: pulumi.Output[dict[str, Any]]
    worker: pulumi.Output[str]
    timings: pulumi.Output[dict[str, float]]
    passed: pulumi.Output[bool]

    def __init__(self, name: str, args: BundleSmokeTestArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        props: dict[str, Any] = {
            "registry": args.login_server,
            # None, not False, when off: stacks deployed before this input existed see no change.
            "insecure": True if args.insecure else None,
            "repository": args.repository,
            "bundle_path": args.bundle,
            "bundle_digest": args.bundle_digest,
            "scheduler_address": args.scheduler_address,
            "kubeconfig": pulumi.Output.secret(args.kubeconfig) if args.kubeconfig is not None else None,
            "namespace": args.namespace,
            "scheduler_service": args.scheduler_service,
            "scheduler_port": args.scheduler_port,
            "registry_username": args.registry_username,
            "registry_password": pulumi.Output.secret(args.registry_password)
            if args.registry_password is not None else None,
            "timeout": args.timeout,
            "triggers": list(args.triggers),
            "kubeconfig_sha256": None,
        }
        props.update({key: None for key in _OUTPUT_KEYS})
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            additional_secret_outputs=["kubeconfig", "registry_password"]))
        super().__init__(BundleSmokeTestProvider(), name, props, opts)
