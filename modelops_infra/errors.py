"""The one exception tree of modelops-infra.

Every error the library raises derives from :class:`ModelOpsError`. Leaves are
named after the kind of failure; the step that failed is data, the ``stage``
field (``"fetch"``, ``"run"``, ``"push"``...), never a prefix of the message::

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
     ├── SmokeTestError              a smoke test failed at ``stage``
     └── ImageBuildError             the worker image cannot be assembled at ``stage``

``str(exc)`` is ``message (hint: ...)``. Only the edges, the ``mops`` CLI's
error boundary and the dynamic providers (the Pulumi engine prints what they
raise), show the stage, once, through :meth:`ModelOpsError.render`::

    >>> err = SmokeTestError("no worker within 5 s", stage="workers", hint="check the worker logs")
    >>> str(err)
    'no worker within 5 s (hint: check the worker logs)'
    >>> err.render()
    'workers: no worker within 5 s (hint: check the worker logs)'

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

    ``message`` is the one line shown to a user, without the stage; ``hint``
    (optional) says how to fix it; ``stage`` (optional) names the step that
    failed (a smoke-test stage such as ``"fetch"`` or ``"run"``, or an image
    build stage such as ``"base"``). Extra keyword attributes are kept so that
    the error survives a pickle round trip through Dask.
    """

    def __init__(self, message: str, *, hint: str | None = None, stage: str | None = None, **attrs: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.stage = stage
        self._attrs = attrs
        for key, value in attrs.items():
            setattr(self, key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.hint, self.stage, self._attrs))

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message

    def render(self, message: str | None = None) -> str:
        """``stage: message (hint: ...)``: what an edge (CLI boundary, dynamic provider) shows, the stage once.

        ``message`` stands in for :attr:`message` (the CLI passes its first line).
        """
        text = self.message if message is None else message
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return f"{self.stage}: {text}" if self.stage else text

    def rendered(self) -> ModelOpsError:
        """A copy of this error, same class and attributes, whose message is :meth:`render`'s line.

        For an edge that prints ``str(exc)`` itself: a dynamic provider raises
        it to the Pulumi engine, which prints ``<class>: <str>``. The copy's
        ``stage`` and ``hint`` are ``None``, since its message already shows them.
        """
        return _rebuild(type(self), self.render(), None, None, self._attrs)


def _rebuild(cls: type[ModelOpsError], message: str, hint: str | None, stage: str | None,
             attrs: dict[str, Any]) -> ModelOpsError:
    return cls(message, hint=hint, stage=stage, **attrs)


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
    """A smoke test failed. ``stage`` is one of pack, push, connect, workers, fetch, run
    (``modelops_infra.client.STAGES``)."""


class ImageBuildError(ModelOpsError):
    """The worker image cannot be assembled. ``stage`` is one of base, python, install, layer, push;
    ``input`` names the input at fault (``base_image``, ``extra_packages``, ``checkout``, ``target``)."""
