"""OCI distribution registry client: the one place bundles touch the network.

Speaks the OCI distribution API over ``requests`` (the transport oras-py uses),
because oras-py's high-level calls fall short here: ``download_blob`` does not
verify digests, and its request wrapper retries every error (4xx included) with
sleeps of up to 83 s. This client:

* retries only connection errors, timeouts and 5xx, with bounded exponential
  backoff (tenacity), and never a 4xx;
* verifies every manifest and blob against its digest while streaming;
* skips blobs the registry already has (``HEAD`` first);
* uses plain HTTP only for loopback hosts or when ``insecure`` is set, and never
  for ``*.azurecr.io``.

Errors are :class:`~modelops_infra.errors.RegistryError` subclasses naming the
registry and the object at fault.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from modelops_infra.bundles._auth import Authenticator, BasicCredentials, resolve_basic_credentials
from modelops_infra.bundles._digest import digest_bytes, validate_digest
from modelops_infra.bundles._oci import MANIFEST_MEDIA_TYPE
from modelops_infra.bundles._pack import BlobSource
from modelops_infra.bundles._streams import BackgroundHash
from modelops_infra.errors import (
    ConfigurationError,
    IntegrityError,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)

__all__ = ["ByteSink", "ProgressCallback", "RegistryClient", "use_plain_http"]

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int], None]


class ByteSink(Protocol):
    """Where a download writes: a binary file, ``io.BytesIO``, or the cache's background writer."""

    def write(self, data: bytes, /) -> int: ...
_CHUNK = 1 << 20
_MAX_MANIFEST = 4 * 1024 * 1024
_CONNECT_TIMEOUT = 5.0
_ACCEPT = ", ".join([MANIFEST_MEDIA_TYPE, "application/vnd.oci.image.index.v1+json"])


def _is_loopback(registry: str) -> bool:
    host = registry.rsplit(":", 1)[0] if not registry.startswith("[") else registry[1:].split("]")[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def use_plain_http(registry: str, insecure: bool | None) -> bool:
    """Decide the scheme. Raises if insecure mode is asked for an Azure registry."""
    if registry.lower().split(":")[0].endswith(".azurecr.io"):
        if insecure:
            raise ConfigurationError(
                f"MODELOPS_BUNDLE_INSECURE is set, but {registry} is an Azure Container Registry; refusing plain HTTP"
            )
        return False
    return bool(insecure) or _is_loopback(registry)


class _Retryable(Exception):
    def __init__(self, error: RegistryUnavailableError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Progress:
    callback: ProgressCallback | None

    def __call__(self, n: int) -> None:
        if self.callback is not None:
            self.callback(n)


class _ProgressReader:
    """File-like wrapper that reports bytes read; requests streams it as the body."""

    def __init__(self, fh: BinaryIO, size: int, progress: _Progress) -> None:
        self._fh, self._progress, self.len = fh, progress, size

    def read(self, n: int = -1) -> bytes:
        chunk = self._fh.read(n if n and n > 0 else _CHUNK)
        self._progress(len(chunk))
        return chunk

    def __len__(self) -> int:
        return self.len


class RegistryClient:
    """Client for one registry host. Cheap to create; holds one HTTP session.

    Use as a context manager (or call :meth:`close`) to release connections.
    Counters ``bytes_uploaded`` and ``blobs_skipped`` describe the last pushes.
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool | None = None,
        credentials: BasicCredentials | None = None,
        environ: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        max_backoff: float = 2.0,
    ) -> None:
        self.registry = registry.rstrip("/")
        self.scheme = "http" if use_plain_http(self.registry, insecure) else "https"
        self.timeout = timeout
        # A registry that does not even accept the connection should fail fast; once
        # connected, reads may take up to ``timeout`` (large blobs, slow storage).
        self._timeouts = (min(timeout, _CONNECT_TIMEOUT), timeout)
        self.attempts = max(1, attempts)
        self.max_backoff = max_backoff
        self._session = requests.Session()
        self._auth = Authenticator(
            self.registry,
            self._session,
            basic=credentials or resolve_basic_credentials(self.registry, environ),
            timeout=timeout,
            scheme=self.scheme,
        )
        self.bytes_uploaded = 0
        self.blobs_skipped = 0

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # -- request layer -------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.scheme}://{self.registry}{path}"

    def _send(self, method: str, url: str, scope: str, *, body: Callable[[], Any] | None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        headers.update(self._auth.cached_header(scope))
        try:
            resp = self._session.request(method, url, headers=headers, data=body() if body else None, timeout=self._timeouts, **kw)
            if resp.status_code == 401 and "WWW-Authenticate" in resp.headers:
                answer = self._auth.answer(resp.headers["WWW-Authenticate"], scope)
                if answer is not None:
                    resp.close()
                    headers.update(answer)
                    resp = self._session.request(
                        method, url, headers=headers, data=body() if body else None, timeout=self.timeout, **kw
                    )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Retryable(
                RegistryUnavailableError(
                    f"registry {self.registry} unreachable: {method} {url} failed ({type(exc).__name__})",
                    hint="check the registry address and that it is running",
                    registry=self.registry,
                )
            ) from exc
        if resp.status_code >= 500:
            resp.close()
            raise _Retryable(
                RegistryUnavailableError(
                    f"registry {self.registry} failed: {method} {url} returned HTTP {resp.status_code}",
                    registry=self.registry,
                )
            )
        return resp

    def request(
        self,
        method: str,
        path: str,
        *,
        repository: str,
        actions: str = "pull",
        what: str,
        ok: tuple[int, ...] = (200,),
        body: Callable[[], Any] | None = None,
        allow_missing: bool = False,
        **kw: Any,
    ) -> requests.Response:
        """Send one request with auth and bounded retries; map failures to named errors.

        ``body`` is a factory so that a retried upload re-reads its data from the start.
        ``what`` names the object for error messages (e.g. ``"manifest modelops/bundles:latest"``).
        """
        scope = f"repository:{repository}:{actions}"
        url = self._url(path)
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Retryable),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.25, max=self.max_backoff),
                reraise=True,
            ):
                with attempt:
                    resp = self._send(method, url, scope, body=body, **kw)
        except _Retryable as exc:
            err = exc.error
            err.message = f"{err.message}; gave up after {self.attempts} attempts"
            raise err from exc.__cause__
        if resp.status_code in ok or (allow_missing and resp.status_code == 404):
            return resp
        detail = _error_detail(resp)
        resp.close()
        if resp.status_code in (401, 403):
            raise RegistryAuthError(
                f"registry {self.registry} refused {method} on {what}: HTTP {resp.status_code}{detail}; "
                f"credentials tried: {self._auth.describe()}",
                hint="set REGISTRY_USERNAME/REGISTRY_PASSWORD or log in with 'docker login'",
                registry=self.registry,
            )
        if resp.status_code == 404:
            raise RegistryNotFoundError(
                f"{what} not found in registry {self.registry}{detail}", registry=self.registry
            )
        raise RegistryError(
            f"registry {self.registry}: {method} on {what} returned HTTP {resp.status_code}{detail}",
            registry=self.registry,
        )

    # -- API -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Check the registry answers ``/v2/`` (auth challenges count as alive)."""
        self.request("GET", "/v2/", repository="", what="/v2/", ok=(200, 401))

    def blob_exists(self, repository: str, digest: str) -> bool:
        resp = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository, actions="pull,push",
            what=f"blob {repository}@{digest}", allow_missing=True,
        )
        return resp.status_code == 200

    def upload_blob(self, repository: str, blob: BlobSource, progress: ProgressCallback | None = None) -> bool:
        """Upload ``blob`` unless the registry has it. Returns ``True`` if bytes were sent."""
        desc = blob.descriptor
        if self.blob_exists(repository, desc.digest):
            self.blobs_skipped += 1
            if progress:
                progress(desc.size)
            return False
        what = f"blob upload {repository}@{desc.digest}"
        start = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/", repository=repository, actions="pull,push", what=what, ok=(202,)
        )
        location = start.headers.get("Location")
        if not location:
            raise RegistryError(f"registry {self.registry} gave no upload location for {what}", registry=self.registry)
        if location.startswith("/"):
            location = self._url(location)
        sep = "&" if "?" in location else "?"
        report = _Progress(progress)
        handles: list[BinaryIO] = []

        def body() -> _ProgressReader:
            fh = blob.open()
            handles.append(fh)
            return _ProgressReader(fh, desc.size, report)

        try:
            self.request(
                "PUT", f"{location}{sep}digest={desc.digest}", repository=repository, actions="pull,push",
                what=what, ok=(201,), body=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
            )
        finally:
            for fh in handles:
                fh.close()
        self.bytes_uploaded += desc.size
        return True

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str = MANIFEST_MEDIA_TYPE) -> str:
        """PUT manifest bytes under a tag or digest; returns the digest the registry reports."""
        expected = digest_bytes(raw)
        resp = self.request(
            "PUT", f"/v2/{repository}/manifests/{reference}", repository=repository, actions="pull,push",
            what=f"manifest {repository}:{reference}", ok=(201,), body=lambda: raw,
            headers={"Content-Type": media_type},
        )
        reported = resp.headers.get("Docker-Content-Digest", expected)
        if reported != expected:
            raise IntegrityError(f"registry {self.registry} stored manifest {repository} as {reported}, expected {expected}")
        return expected

    def resolve(self, repository: str, tag: str) -> str:
        """Resolve a tag to its manifest digest (on the client; workers only see digests)."""
        what = f"manifest {repository}:{tag}"
        resp = self.request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", repository=repository, what=what, headers={"Accept": _ACCEPT}
        )
        digest = resp.headers.get("Docker-Content-Digest")
        if digest:
            return validate_digest(digest)
        raw, _ = self.get_manifest(repository, tag)
        return digest_bytes(raw)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """Fetch manifest bytes; when ``reference`` is a digest, verify it. Returns (bytes, media type)."""
        what = f"manifest {repository}@{reference}" if reference.startswith("sha256:") else f"manifest {repository}:{reference}"
        resp = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", repository=repository, what=what,
            headers={"Accept": _ACCEPT}, stream=True,
        )
        with resp:
            raw = resp.raw.read(_MAX_MANIFEST + 1, decode_content=True)
        if len(raw) > _MAX_MANIFEST:
            raise IntegrityError(f"{what} is larger than {_MAX_MANIFEST} bytes; refusing it")
        if reference.startswith("sha256:") and digest_bytes(raw) != reference:
            raise IntegrityError(f"integrity error on {reference}: {what} has digest {digest_bytes(raw)}")
        return raw, resp.headers.get("Content-Type", MANIFEST_MEDIA_TYPE)

    def iter_blob(self, repository: str, digest: str, size: int | None = None) -> Iterator[bytes]:
        """Stream a blob's bytes *unverified*; callers use :meth:`download_blob` instead."""
        resp = self.request("GET", f"/v2/{repository}/blobs/{digest}", repository=repository,
                            what=f"blob {repository}@{digest}", stream=True)
        with resp:
            yield from resp.iter_content(_CHUNK)

    def download_blob(
        self, repository: str, digest: str, size: int, out: ByteSink, progress: ProgressCallback | None = None
    ) -> None:
        """Stream blob ``digest`` into ``out``, verifying size and sha256.

        Raises :class:`IntegrityError` on mismatch; ``out`` then holds unverified
        bytes, which the caller must discard (the cache writes to a temp file).
        """
        validate_digest(digest)
        h = BackgroundHash() if size >= _CHUNK else hashlib.sha256()
        got = 0
        try:
            for chunk in self.iter_blob(repository, digest, size):
                got += len(chunk)
                if got > size:
                    raise IntegrityError(
                        f"integrity error on {digest}: blob from {self.registry}/{repository} is larger than the {size} bytes declared"
                    )
                h.update(chunk)
                out.write(chunk)
                if progress:
                    progress(len(chunk))
        except requests.RequestException as exc:
            raise RegistryUnavailableError(
                f"registry {self.registry}: download of blob {digest} broke off after {got} bytes ({type(exc).__name__})",
                registry=self.registry,
            ) from exc
        finally:
            hexdigest = h.hexdigest()
        actual = "sha256:" + hexdigest
        if got != size or actual != digest:
            raise IntegrityError(
                f"integrity error on {digest}: blob from {self.registry}/{repository} has digest {actual} and size {got}"
                f" (expected {size})",
                digest=digest,
            )

    # -- container images ----------------------------------------------------------------
    # Used by the worker image assembly (modelops_infra.infra.image). Kept as one block at
    # the end of the class: image manifests need other Accept headers than bundles, and
    # base layers move between repositories by cross-repository mount.

    _IMAGE_ACCEPT = ", ".join([
        MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ])

    def get_image_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """Fetch an image manifest or index (OCI or Docker schema 2); verify it when ``reference`` is a digest.

        Returns (bytes, media type). Schema 1 is never asked for.
        """
        what = f"image {repository}@{reference}" if reference.startswith("sha256:") else f"image {repository}:{reference}"
        resp = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", repository=repository, what=what,
            headers={"Accept": self._IMAGE_ACCEPT}, stream=True,
        )
        with resp:
            raw = resp.raw.read(_MAX_MANIFEST + 1, decode_content=True)
        if len(raw) > _MAX_MANIFEST:
            raise IntegrityError(f"{what} is larger than {_MAX_MANIFEST} bytes; refusing it")
        if reference.startswith("sha256:") and digest_bytes(raw) != reference:
            raise IntegrityError(f"integrity error on {reference}: {what} has digest {digest_bytes(raw)}")
        return raw, resp.headers.get("Content-Type", "").split(";")[0].strip()

    def manifest_exists(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the manifest ``digest`` (any image or artifact media type)."""
        resp = self.request(
            "HEAD", f"/v2/{repository}/manifests/{digest}", repository=repository, actions="pull,push",
            what=f"manifest {repository}@{digest}", headers={"Accept": self._IMAGE_ACCEPT}, allow_missing=True,
        )
        return resp.status_code == 200

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-mount blob ``digest`` from ``from_repository`` of this registry; ``True`` if mounted.

        A registry that does not mount (HTTP 202, e.g. when the token does not
        cover the source repository) has started an upload instead; it is
        cancelled and ``False`` returned, so the caller copies the blob.
        """
        validate_digest(digest)
        what = f"blob mount {from_repository}@{digest} into {repository}"
        resp = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/?mount={digest}&from={from_repository}",
            repository=repository, actions="pull,push", what=what, ok=(201, 202),
        )
        resp.close()
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if location:
            cancel = self.request(
                "DELETE", location if not location.startswith("/") else self._url(location), repository=repository,
                actions="pull,push", what=f"cancel of {what}", ok=(202, 204), allow_missing=True,
            )
            cancel.close()
        return False


def _error_detail(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        msgs = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
        return f" ({'; '.join(msgs)})" if msgs else ""
    except ValueError:
        return ""
