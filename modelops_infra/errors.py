"""The one exception tree of modelops-infra.

Every error the library raises derives from :class:`ModelOpsError`. Leaves are
named after the stage that failed, so a caller (or the ``mops`` CLI, or the
``BundleSmokeTest`` provider) can say *where* things went wrong::

    ModelOpsError
     ├── ConfigurationError          bad settings: env vars, stack config, bundle-env files
     ├── BundleValidationError       a bundle directory or manifest is malformed (lists every problem)
     ├── ReferenceError_             a bundle reference string cannot be parsed
     ├── RegistryError               talking to an OCI registry failed
     │    ├── RegistryAuthError      401/403: names the registry and the credentials tried
     │    ├── RegistryNotFoundError  404: names the repository, tag or digest
     │    └── RegistryUnavailableError  connection errors, timeouts, 5xx after bounded retries
     ├── IntegrityError              a manifest or blob does not match its digest
     ├── UnsafeArchiveError          extraction refused an entry (names it)
     ├── CacheError                  the local bundle cache cannot be used
     ├── RequirementsError           a bundle's environment cannot be built (names the requirement and the Python)
     ├── BundleRunError              the entrypoint raised, or returned a non-JSON result
     ├── SmokeTestError              a smoke test failed; ``stage`` names the step
     └── ImageBuildError             the worker image cannot be assembled; ``stage`` names the step

Errors from libraries underneath (requests, oras, dask, azure, kubernetes) are
translated at the seam with ``raise ... from exc``.

All errors pickle by value (Dask ships worker-side errors back to the client),
so every attribute is a plain keyword argument.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BundleRunError",
    "BundleValidationError",
    "CacheError",
    "ConfigurationError",
    "ImageBuildError",
    "IntegrityError",
    "ModelOpsError",
    "ReferenceError_",
    "RegistryAuthError",
    "RegistryError",
    "RegistryNotFoundError",
    "RegistryUnavailableError",
    "RequirementsError",
    "SmokeTestError",
    "UnsafeArchiveError",
]


class ModelOpsError(Exception):
    """Root of every error raised by modelops-infra.

    ``message`` is the one line shown to a user; ``hint`` (optional) says how
    to fix it. Extra keyword attributes are kept so that the error survives a
    pickle round trip through Dask.
    """

    def __init__(self, message: str, *, hint: str | None = None, **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self._attrs = attrs
        for key, value in attrs.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.hint, self._attrs))

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


def _rebuild(cls: type[ModelOpsError], message: str, hint: str | None, attrs: dict[str, Any]) -> ModelOpsError:
    return cls(message, hint=hint, **attrs)


class ConfigurationError(ModelOpsError):
    """Settings are missing or malformed; the message names the key or file."""


class BundleValidationError(ModelOpsError):
    """A bundle failed validation. ``problems`` lists every problem found."""

    problems: list[str]

    def __init__(self, message: str, *, problems: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, problems=list(problems or []), **kw)


class ReferenceError_(ModelOpsError):  # noqa: N801 - avoid shadowing the builtin ReferenceError
    """A bundle reference (``[registry/]repository[:tag|@sha256:...]``) is malformed."""


class RegistryError(ModelOpsError):
    """An OCI registry request failed. ``registry`` names the host."""


class RegistryAuthError(RegistryError):
    """The registry refused our credentials (401/403)."""


class RegistryNotFoundError(RegistryError):
    """The registry has no such repository, tag, manifest or blob (404)."""


class RegistryUnavailableError(RegistryError):
    """The registry could not be reached or kept failing (after bounded retries)."""


class IntegrityError(ModelOpsError):
    """Downloaded content does not match the digest it was fetched by."""


class UnsafeArchiveError(ModelOpsError):
    """Extraction refused an entry: absolute path, ``..``, escaping link, device, or too large."""


class CacheError(ModelOpsError):
    """The local bundle cache cannot be read or written."""


class RequirementsError(ModelOpsError):
    """A bundle's environment cannot be resolved, downloaded or installed for the workers' Python."""


class BundleRunError(ModelOpsError):
    """The bundle's entrypoint raised, returned something that is not JSON-serializable, or its process
    died (``exit_code`` / ``signal``) or ran past its ``timeout``.

    ``remote_traceback`` carries the formatted traceback from inside the bundle.
    """


class SmokeTestError(ModelOpsError):
    """A smoke test failed. ``stage`` is one of pack, push, connect, workers, fetch, run, verify."""


class ImageBuildError(ModelOpsError):
    """The worker image cannot be assembled. ``stage`` is one of base, python, install, layer, push;
    ``input`` names the input at fault (``base_image``, ``extra_packages``, ``checkout``, ``target``)."""
