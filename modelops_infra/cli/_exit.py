"""Exit codes of the ``mops`` CLI, and the one table that maps errors to them.

=====  ============  =================================================================
code   name          meaning
=====  ============  =================================================================
0      SUCCESS       the command did what it was asked
1      FAILURE       a check ran and failed: bundle validation (``BundleValidationError``),
                     a smoke test (``SmokeTestError``), an unreachable scheduler in
                     ``mops dev test-connection``
2      USAGE         bad command line (click's own code) or a malformed bundle
                     reference (``ReferenceError_``)
3      CONFIG        missing or malformed settings: env vars, bundle-env files,
                     stack outputs, the ``pulumi`` CLI (``ConfigurationError``)
4      REGISTRY      the OCI registry failed or refused us (``RegistryError``)
5      AUTH          the registry refused our credentials (``RegistryAuthError``)
6      NOT_FOUND     the registry has no such repository, tag or digest
                     (``RegistryNotFoundError``)
7      INTEGRITY     content did not match its digest, or an archive entry was refused
                     (``IntegrityError``, ``UnsafeArchiveError``)
8      CACHE         the local bundle cache cannot be used (``CacheError``)
9      RUN           a bundle could not run: unmet requirements or a failing
                     entrypoint (``RequirementsError``, ``BundleRunError``)
70     INTERNAL      a bug in mops: an exception outside the ``ModelOpsError`` tree
                     (re-run with ``--debug`` for the traceback)
130    INTERRUPTED   interrupted with Ctrl-C
=====  ============  =================================================================

Any other ``ModelOpsError`` subclass maps to the code of its nearest mapped
ancestor, and ``ModelOpsError`` itself to ``FAILURE``.
"""

from __future__ import annotations

from enum import IntEnum

from modelops_infra.errors import (
    BundleRunError,
    BundleValidationError,
    CacheError,
    ConfigurationError,
    IntegrityError,
    ModelOpsError,
    ReferenceError_,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RequirementsError,
    SmokeTestError,
    UnsafeArchiveError,
)

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(IntEnum):
    """Named exit codes; see the module docstring for the table."""

    SUCCESS = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    REGISTRY = 4
    AUTH = 5
    NOT_FOUND = 6
    INTEGRITY = 7
    CACHE = 8
    RUN = 9
    INTERNAL = 70
    INTERRUPTED = 130


_BY_ERROR: dict[type[ModelOpsError], ExitCode] = {
    BundleValidationError: ExitCode.FAILURE,
    SmokeTestError: ExitCode.FAILURE,
    ReferenceError_: ExitCode.USAGE,
    ConfigurationError: ExitCode.CONFIG,
    RegistryError: ExitCode.REGISTRY,
    RegistryAuthError: ExitCode.AUTH,
    RegistryNotFoundError: ExitCode.NOT_FOUND,
    IntegrityError: ExitCode.INTEGRITY,
    UnsafeArchiveError: ExitCode.INTEGRITY,
    CacheError: ExitCode.CACHE,
    RequirementsError: ExitCode.RUN,
    BundleRunError: ExitCode.RUN,
    ModelOpsError: ExitCode.FAILURE,
}


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for ``exc``: its own class's, else its nearest mapped ancestor's.

    >>> exit_code_for(RegistryNotFoundError("no such tag")).name
    'NOT_FOUND'
    >>> exit_code_for(ValueError("bug")).name
    'INTERNAL'
    """
    for cls in type(exc).__mro__:
        code = _BY_ERROR.get(cls)
        if code is not None:
            return code
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    return ExitCode.INTERNAL
