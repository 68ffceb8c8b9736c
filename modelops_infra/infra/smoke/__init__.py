"""The deploy-time ``BundleSmokeTest`` dynamic resource and the helper that wires it into a stack."""

from __future__ import annotations

from pathlib import Path

import pulumi

from modelops_infra.errors import BundleValidationError, ConfigurationError
from modelops_infra.infra.smoke._wiring import SMOKE_TEST_OUTPUTS, add_smoke_test
from modelops_infra.infra.smoke.provider import BundleSmokeTest, BundleSmokeTestArgs, BundleSmokeTestProvider

__all__ = [
    "SMOKE_TEST_OUTPUTS",
    "BundleSmokeTest",
    "BundleSmokeTestArgs",
    "BundleSmokeTestProvider",
    "add_smoke_test",
    "resolve_smoke_bundle",
]


def resolve_smoke_bundle(bundle: str | None) -> tuple[str, str]:
    """The bundle directory (absolute) and its digest, computed in the program so preview shows changes.

    ``None`` means the built-in test bundle. A relative path is taken from the
    project directory. An invalid bundle raises :class:`ConfigurationError`
    naming ``modelops:smokeTest.bundle``, at stage ``pack``.
    """
    from modelops_infra.bundles import builtin_bundle_path, pack_bundle

    path = Path(bundle).expanduser() if bundle else builtin_bundle_path()
    path = path if path.is_absolute() else Path.cwd() / path
    try:
        digest = pack_bundle(path).digest
    except BundleValidationError as exc:
        raise ConfigurationError(f"modelops:smokeTest.bundle: {exc}", stage="pack",
                                 key="modelops:smokeTest.bundle") from exc
    pulumi.log.info(f"smoke-test bundle {path} packs to {digest}")
    return str(path.resolve()), digest
