"""``add_smoke_test``: the one place a stack wires the deploy-time ``BundleSmokeTest`` and its outputs.

Every stack (Azure, kubernetes, local) calls it, so they run the same test and
export the same outputs (:data:`SMOKE_TEST_OUTPUTS`); a stack differs only in
how the test reaches the scheduler (an address, or a port-forward through the
Kubernetes API) and the registry (credentials, plain HTTP).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    from modelops_infra.infra.config import SmokeTestConfig

__all__ = ["SMOKE_TEST_OUTPUTS", "add_smoke_test"]

logger = logging.getLogger(__name__)

#: The stack outputs of an enabled smoke test, the same on every stack.
SMOKE_TEST_OUTPUTS = ("smoke_test_bundle_ref", "smoke_test_result", "smoke_test_timings")


def add_smoke_test(
    cfg: SmokeTestConfig,
    *,
    login_server: pulumi.Input[str],
    repository: str,
    depends_on: Sequence[pulumi.Resource],
    scheduler_address: pulumi.Input[str] | None = None,
    kubeconfig: pulumi.Input[str] | None = None,
    namespace: pulumi.Input[str] | None = None,
    scheduler_service: pulumi.Input[str] | None = None,
    registry_username: pulumi.Input[str] | None = None,
    registry_password: pulumi.Input[str] | None = None,
    insecure: bool = False,
) -> dict[str, pulumi.Output[Any]]:
    """Create the ``BundleSmokeTest`` named ``smoke-test`` when ``cfg.enabled``; return its stack outputs.

    The test waits for ``depends_on`` (the workspace). It reaches the scheduler
    at ``scheduler_address``, or through a port-forward given ``kubeconfig``,
    ``namespace`` and ``scheduler_service`` (never a public endpoint). The
    bundle is packed here, in the program, so ``pulumi preview`` shows a
    changed digest; an invalid bundle raises :class:`ConfigurationError`
    naming ``modelops:smokeTest.bundle``. Returns the outputs keyed by
    :data:`SMOKE_TEST_OUTPUTS`, or ``{}`` (and creates nothing) when disabled.
    """
    if not cfg.enabled:
        logger.info("smoke test disabled by modelops:smokeTest.enabled")
        return {}
    from modelops_infra.infra.smoke import BundleSmokeTest, BundleSmokeTestArgs, resolve_smoke_bundle

    bundle, digest = resolve_smoke_bundle(cfg.bundle)
    smoke = BundleSmokeTest(
        "smoke-test",
        BundleSmokeTestArgs(
            login_server=login_server,
            bundle=bundle,
            bundle_digest=digest,
            repository=repository,
            scheduler_address=scheduler_address,
            kubeconfig=kubeconfig,
            namespace=namespace,
            scheduler_service=scheduler_service,
            registry_username=registry_username,
            registry_password=registry_password,
            insecure=insecure,
            timeout=cfg.timeout,
            triggers=list(cfg.triggers),
        ),
        opts=pulumi.ResourceOptions(depends_on=list(depends_on)),
    )
    return dict(zip(SMOKE_TEST_OUTPUTS, (smoke.bundle_ref, smoke.result, smoke.timings), strict=True))
