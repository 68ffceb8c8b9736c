"""OCI distribution registry client: the one place bundles touch the network.

Speaks the OCI distribution API over ``requests`` (the transport oras-py uses),
because oras-py's high-level calls fall short here: ``download_blob`` does not
verify digests, and its request wrapper retries every error (4xx included) with
sleeps of up to 83 s. This client:

* takes its transport (a ``requests.Session``) by keyword, as httpx takes a
  transport, so tests inject one instead of reaching into the client;
* authenticates through strategies chosen once per host
  (:func:`~modelops_infra.bundles._auth.choose_auth`), and sends credentials
  only to the registry's own origin (see :mod:`modelops_infra.bundles._auth`);
* retries only connection errors, timeouts and 5xx, with bounded exponential
  backoff (tenacity), and never a 4xx; every request and retry is logged at DEBUG;
* bounds every read: bodies read into memory are capped, reads time out, and a
  blob download has an overall deadline derived from a minimum rate;
* verifies every manifest and blob against its digest while streaming;
* skips blobs the registry already has (``HEAD`` first);
* uses plain HTTP only for loopback hosts or when ``insecure`` is set, and never
  for ``*.azurecr.io``.

Errors are :class:`~modelops_infra.errors.RegistryError` subclasses naming the
registry and the object at fault.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urljoin, urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from modelops_infra.bundles._auth import AuthStrategy, BasicCredentials, RegistryAuth, choose_auth
from modelops_infra.bundles._digest import DIGEST_RE, digest_bytes, validate_digest
from modelops_infra.bundles._host import RegistryHost
from modelops_infra.bundles._http import MAX_SMALL_BODY, read_capped, redact, send
from modelops_infra.bundles._oci import MANIFEST_MEDIA_TYPE
from modelops_infra.bundles._pack import BlobSource
from modelops_infra.bundles._reference import check_repository, check_tag
from modelops_infra.bundles._streams import BackgroundHash
from modelops_infra.errors import (
    ConfigurationError,
    IntegrityError,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)

if TYPE_CHECKING:
    from modelops_infra.bundles._settings import BundleSettings

__all__ = ["MIN_DOWNLOAD_RATE", "ByteSink", "ProgressCallback", "RegistryClient", "use_plain_http"]

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int], None]


class ByteSink(Protocol):
    """Where a download writes: a binary file, ``io.BytesIO``, or the cache's background writer."""

    def write(self, data: bytes, /) -> int: ...
_CHUNK = 1 << 20
_MAX_MANIFEST = 4 * 1024 * 1024
_MAX_ERROR_BODY = 64 * 1024
_CONNECT_TIMEOUT = 5.0
_MAX_REDIRECTS = 5
_ACCEPT = ", ".join([MANIFEST_MEDIA_TYPE, "application/vnd.oci.image.index.v1+json"])
#: A blob download must average at least this many bytes per second (after the first ``timeout``
#: seconds), or it is cut off: a registry trickling bytes cannot hold a pull (and its lock) forever.
MIN_DOWNLOAD_RATE = 128 * 1024


def use_plain_http(registry: str | RegistryHost, insecure: bool | None) -> bool:
    """Decide the scheme from the *parsed* host. Raises if insecure mode is asked for an Azure registry."""
    host = RegistryHost.parse(registry)
    if host.is_acr:
        if insecure:
            raise ConfigurationError(
                f"MODELOPS_BUNDLE_INSECURE is set, but {registry} is an Azure Container Registry; refusing plain HTTP"
            )
        return False
    return bool(insecure) or host.is_loopback


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


class _Watchdog:
    """Cuts a streaming download off at a deadline by shutting its socket down; no per-chunk cost.

    A read timeout bounds each ``recv``, not the whole transfer: a server that
    sends one byte just inside every timeout would otherwise hold the download,
    and the cache lock around it, for as long as it likes.
    """

    def __init__(self, resp: requests.Response, seconds: float) -> None:
        self.seconds = seconds
        self.fired = False
        self._resp = resp
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            # A connection already handed back to the pool (body read to its end) may serve
            # another request by now: never shut that one down.
            conn = getattr(self._resp.raw, "connection", None)
            if self._done or conn is None:
                return
            self.fired = True
            sock = getattr(conn, "sock", None)
            try:
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
                else:
                    self._resp.close()
            except OSError:
                pass

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()


class RegistryClient:
    """Client for one registry host. Cheap to create; holds one HTTP session.

    Use as a context manager (or call :meth:`close`) to release connections; a
    ``session`` passed in is the caller's and is not closed. Counters
    ``bytes_uploaded`` and ``blobs_skipped`` describe the last pushes.

    ``registry`` is parsed with :meth:`RegistryHost.parse` (a malformed one is a
    :class:`ConfigurationError`). ``auth`` overrides the strategies
    :func:`choose_auth` would pick from ``credentials`` and ``environ``.
    """

    def __init__(
        self,
        registry: str | RegistryHost,
        *,
        insecure: bool | None = None,
        credentials: BasicCredentials | None = None,
        environ: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        attempts: int = 4,
        max_backoff: float = 2.0,
        session: requests.Session | None = None,
        auth: Sequence[AuthStrategy] | None = None,
        min_rate: float = MIN_DOWNLOAD_RATE,
    ) -> None:
        self.host = RegistryHost.parse(registry)
        self.registry = str(self.host)
        self.scheme = "http" if use_plain_http(self.host, insecure) else "https"
        self.timeout = timeout
        # A registry that does not even accept the connection should fail fast; once
        # connected, reads may take up to ``timeout`` (large blobs, slow storage).
        self._timeouts = (min(timeout, _CONNECT_TIMEOUT), timeout)
        self.attempts = max(1, attempts)
        self.max_backoff = max_backoff
        self.min_rate = min_rate
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        strategies = list(auth) if auth is not None else choose_auth(self.host, credentials=credentials,
                                                                     environ=environ)
        self._auth = RegistryAuth(self.host, self.scheme, self._session, strategies=strategies,
                                  timeouts=self._timeouts)
        self.bytes_uploaded = 0
        self.blobs_skipped = 0

    @classmethod
    def from_settings(cls, settings: BundleSettings, registry: str | RegistryHost | None = None,
                      **kw: Any) -> RegistryClient:
        """The one way to build a client from :class:`BundleSettings` (``insecure``, ``timeout``).

        ``registry`` defaults to ``settings.registry``; other keywords go to the constructor.
        """
        target = registry if registry is not None else settings.registry
        if target is None:
            raise ConfigurationError("no bundle registry: MODELOPS_BUNDLE_REGISTRY is unset",
                                     hint="export MODELOPS_BUNDLE_REGISTRY or pass --registry")
        kw.setdefault("insecure", settings.insecure)
        kw.setdefault("timeout", settings.timeout)
        return cls(target, **kw)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    # -- request layer -------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.scheme}://{self.host.api_netloc}{path}"

    def _exchange(self, method: str, url: str, scope: str, headers: Mapping[str, str],
                  body: Callable[[], Any] | None, kw: Mapping[str, Any]) -> tuple[requests.Response, str]:
        """One request, following redirects by hand: credentials are attached per hop, on the registry only.

        Redirects are not left to ``requests``, which reads each redirect's body
        into memory without a bound. Returns the response and the URL that gave it.
        """
        for _ in range(_MAX_REDIRECTS + 1):
            sent = {**headers, **self._auth.headers_for(url, scope)}
            started = time.perf_counter()
            resp = send(self._session, method, url, headers=sent, data=body() if body else None,
                        timeout=self._timeouts, **kw)
            log.debug("%s %s -> HTTP %d in %.3f s%s", method, redact(url), resp.status_code,
                      time.perf_counter() - started, " (with credentials)" if "Authorization" in sent else "")
            if not resp.is_redirect:
                return resp, url
            resp.close()
            target = urljoin(url, resp.headers["Location"])
            if urlsplit(target).scheme not in ("http", "https") or (
                    urlsplit(target).scheme == "http" and urlsplit(url).scheme == "https"):
                raise RegistryError(f"registry {self.registry}: {method} {redact(url)} was redirected to"
                                    f" {redact(target)}, which is not https; refusing to follow",
                                    registry=self.registry)
            url = target
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method == "POST"):
                method, body = "GET", None
        raise RegistryError(f"registry {self.registry}: more than {_MAX_REDIRECTS} redirects, last to {redact(url)}",
                            registry=self.registry)

    def _send(self, method: str, url: str, scope: str, *, body: Callable[[], Any] | None, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        try:
            resp, final = self._exchange(method, url, scope, headers, body, kw)
            if resp.status_code == 401:
                answer = self._auth.answer(final, resp, scope)
                if answer is not None:
                    resp.close()
                    resp, final = self._exchange(method, url, scope, headers, body, kw)
            resp.url = final  # what answered: the registry, or a redirect target (for error messages)
        except (requests.ConnectionError, requests.Timeout) as exc:
            log.debug("%s %s failed: %s", method, redact(url), type(exc).__name__)
            raise _Retryable(
                RegistryUnavailableError(
                    f"registry {self.registry} unreachable: {method} {redact(url)} failed ({type(exc).__name__})",
                    hint="check the registry address and that it is running",
                    registry=self.registry,
                )
            ) from exc
        except requests.RequestException as exc:
            raise RegistryError(f"registry {self.registry}: {method} {redact(url)} failed ({type(exc).__name__}:"
                                f" {exc})", registry=self.registry) from exc
        if resp.status_code >= 500:
            resp.close()
            raise _Retryable(
                RegistryUnavailableError(
                    f"registry {self.registry} failed: {method} {redact(url)} returned HTTP {resp.status_code}",
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
        subject: str,
        ok: tuple[int, ...] = (200,),
        body: Callable[[], Any] | None = None,
        allow_missing: bool = False,
        stream: bool = False,
        **kw: Any,
    ) -> requests.Response:
        """Send one request with auth and bounded retries; map failures to named errors.

        ``body`` is a factory so that a retried upload re-reads its data from the start.
        ``subject`` names the object for error messages (e.g. ``"manifest modelops/bundles:latest"``).
        With ``stream=False`` the response body is read (at most 1 MiB, else
        :class:`RegistryError` naming the URL) and dropped: only status and headers are kept.
        """
        scope = f"repository:{repository}:{actions}"
        url = self._url(path)

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.debug("retrying %s %s after attempt %d: %s", method, redact(url), state.attempt_number,
                      getattr(exc, "error", exc))

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Retryable),
                stop=stop_after_attempt(self.attempts),
                wait=wait_exponential(multiplier=0.25, max=self.max_backoff),
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    resp = self._send(method, url, scope, body=body, **kw)
        except _Retryable as exc:
            err = exc.error
            err.message = f"{err.message}; gave up after {self.attempts} attempts"
            raise err from exc.__cause__
        if resp.status_code in ok or (allow_missing and resp.status_code == 404):
            if not stream:
                self._discard_body(resp, method, url)
            return resp
        detail = self._error_detail(resp)
        if resp.status_code in (401, 403):
            foreign = "" if self._auth.owns(resp.url) else (
                f" (the answer came from {redact(resp.url)}, a redirect target outside the registry, which is never"
                " sent the registry's credentials)")
            raise RegistryAuthError(
                f"registry {self.registry} refused {method} on {subject}: HTTP {resp.status_code}{detail}{foreign}; "
                f"credentials tried: {self._auth.describe()}",
                hint="set REGISTRY_USERNAME/REGISTRY_PASSWORD or log in with 'docker login'",
                registry=self.registry,
            )
        if resp.status_code == 404:
            raise RegistryNotFoundError(
                f"{subject} not found in registry {self.registry}{detail}", registry=self.registry
            )
        raise RegistryError(
            f"registry {self.registry}: {method} on {subject} returned HTTP {resp.status_code}{detail}",
            registry=self.registry,
        )

    def _read_body(self, resp: requests.Response, cap: int, method: str, url: str) -> bytes | None:
        try:
            return read_capped(resp, cap)
        except requests.RequestException as exc:
            raise RegistryUnavailableError(
                f"registry {self.registry}: reading the answer to {method} {redact(url)} failed ({type(exc).__name__})",
                registry=self.registry,
            ) from exc

    def _discard_body(self, resp: requests.Response, method: str, url: str) -> None:
        if method == "HEAD":
            resp.close()
            return
        if self._read_body(resp, MAX_SMALL_BODY, method, url) is None:
            raise RegistryError(
                f"registry {self.registry}: the answer to {method} {redact(url)} is larger than {MAX_SMALL_BODY}"
                " bytes; refusing it", registry=self.registry)

    def _error_detail(self, resp: requests.Response) -> str:
        """`` (code: message; ...)`` from an OCI error body, read up to 64 KiB; never raises."""
        if resp.request is not None and resp.request.method == "HEAD":
            resp.close()
            return ""
        try:
            raw = read_capped(resp, _MAX_ERROR_BODY)
        except requests.RequestException:
            return ""
        if raw is None:
            return f" (error body over {_MAX_ERROR_BODY} bytes, not read)"
        return _error_detail(raw)

    # -- API -----------------------------------------------------------------------------

    def ping(self) -> None:
        """Check the registry answers ``/v2/`` (auth challenges count as alive)."""
        self.request("GET", "/v2/", repository="", subject="/v2/", ok=(200, 401))

    def blob_exists(self, repository: str, digest: str) -> bool:
        check_repository(repository)
        validate_digest(digest)
        resp = self.request(
            "HEAD", f"/v2/{repository}/blobs/{digest}", repository=repository, actions="pull,push",
            subject=f"blob {repository}@{digest}", allow_missing=True,
        )
        return resp.status_code == 200

    def _upload_location(self, location: str | None, repository: str, subject: str) -> str:
        """The absolute upload URL from a ``Location`` header; an ``http`` one on a TLS registry is refused."""
        if not location:
            raise RegistryError(f"registry {self.registry} gave no upload location for {subject}", registry=self.registry)
        url = urljoin(self._url(f"/v2/{repository}/blobs/uploads/"), location)
        scheme = urlsplit(url).scheme
        if scheme not in ("http", "https"):
            raise RegistryError(f"registry {self.registry} gave upload location {redact(url)!r} for {subject},"
                                " which is not an http(s) URL", registry=self.registry)
        if scheme == "http" and self.scheme == "https":
            raise RegistryError(
                f"registry {self.registry} is reached over TLS but gave the plain-HTTP upload location {redact(url)}"
                f" for {subject}; refusing to send the blob there", registry=self.registry)
        if not self._auth.owns(url):
            log.debug("upload location %s is outside registry %s: no credentials go there", redact(url),
                      self.registry)
        return url

    def upload_blob(self, repository: str, blob: BlobSource, progress: ProgressCallback | None = None) -> bool:
        """Upload ``blob`` unless the registry has it. Returns ``True`` if bytes were sent."""
        desc = blob.descriptor
        if self.blob_exists(repository, desc.digest):
            self.blobs_skipped += 1
            if progress:
                progress(desc.size)
            return False
        subject = f"blob upload {repository}@{desc.digest}"
        start = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/", repository=repository, actions="pull,push", subject=subject, ok=(202,)
        )
        location = self._upload_location(start.headers.get("Location"), repository, subject)
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
                subject=subject, ok=(201,), body=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(desc.size)},
            )
        finally:
            for fh in handles:
                fh.close()
        self.bytes_uploaded += desc.size
        return True

    def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str = MANIFEST_MEDIA_TYPE) -> str:
        """PUT manifest bytes under a tag or digest; returns the digest the registry reports."""
        check_repository(repository)
        _check_reference(reference)
        expected = digest_bytes(raw)
        resp = self.request(
            "PUT", f"/v2/{repository}/manifests/{reference}", repository=repository, actions="pull,push",
            subject=f"manifest {repository}:{reference}", ok=(201,), body=lambda: raw,
            headers={"Content-Type": media_type},
        )
        reported = resp.headers.get("Docker-Content-Digest", expected)
        if reported != expected:
            raise IntegrityError(f"registry {self.registry} stored manifest {repository} as {reported}, expected {expected}")
        return expected

    def resolve(self, repository: str, tag: str) -> str:
        """Resolve a tag to its manifest digest (on the client; workers only see digests)."""
        check_repository(repository)
        _check_reference(tag)
        subject = f"manifest {repository}:{tag}"
        resp = self.request(
            "HEAD", f"/v2/{repository}/manifests/{tag}", repository=repository, subject=subject, headers={"Accept": _ACCEPT}
        )
        digest = resp.headers.get("Docker-Content-Digest")
        if digest:
            if not DIGEST_RE.match(digest):
                raise IntegrityError(f"registry {self.registry} reported digest {digest!r} for {subject}, which is not"
                                     " sha256:<64 lowercase hex>")
            return digest
        raw, _ = self.get_manifest(repository, tag)
        return digest_bytes(raw)

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """Fetch manifest bytes (at most 4 MiB); when ``reference`` is a digest, verify it. Returns (bytes, media type)."""
        check_repository(repository)
        _check_reference(reference)
        subject = f"manifest {repository}@{reference}" if reference.startswith("sha256:") else f"manifest {repository}:{reference}"
        path = f"/v2/{repository}/manifests/{reference}"
        resp = self.request("GET", path, repository=repository, subject=subject, headers={"Accept": _ACCEPT}, stream=True)
        raw = self._read_body(resp, _MAX_MANIFEST, "GET", self._url(path))
        if raw is None:
            raise IntegrityError(f"{subject} is larger than {_MAX_MANIFEST} bytes; refusing it")
        if reference.startswith("sha256:") and digest_bytes(raw) != reference:
            raise IntegrityError(f"integrity error on {reference}: {subject} has digest {digest_bytes(raw)}")
        return raw, resp.headers.get("Content-Type", MANIFEST_MEDIA_TYPE)

    def _blob_response(self, repository: str, digest: str) -> requests.Response:
        check_repository(repository)
        if not DIGEST_RE.match(digest):
            # Digests reach here from manifests: a malformed one is bad content, not bad usage.
            raise IntegrityError(f"blob digest {digest!r} in a manifest of {self.registry}/{repository} is not"
                                 " sha256:<64 lowercase hex>", digest=digest)
        return self.request("GET", f"/v2/{repository}/blobs/{digest}", repository=repository,
                            subject=f"blob {repository}@{digest}", stream=True)

    def download_deadline(self, size: int) -> float:
        """Seconds a ``size``-byte download may take in all: ``timeout`` plus ``size`` at :attr:`min_rate`."""
        return self.timeout + size / self.min_rate

    def download_blob(
        self, repository: str, digest: str, size: int, out: ByteSink, progress: ProgressCallback | None = None
    ) -> None:
        """Stream blob ``digest`` into ``out``, verifying size and sha256, within :meth:`download_deadline`.

        Raises :class:`IntegrityError` on mismatch (or a malformed digest), and
        :class:`RegistryUnavailableError` when the transfer breaks off or misses
        its deadline; ``out`` then holds unverified bytes, which the caller must
        discard (the cache writes to a temp file).
        """
        url = self._url(f"/v2/{repository}/blobs/{digest}")
        resp = self._blob_response(repository, digest)
        h = BackgroundHash() if size >= _CHUNK else hashlib.sha256()
        got = 0
        watchdog = _Watchdog(resp, self.download_deadline(size))
        try:
            with resp:
                for chunk in resp.iter_content(_CHUNK):
                    got += len(chunk)
                    if got > size:
                        raise IntegrityError(
                            f"integrity error on {digest}: blob from {self.registry}/{repository} is larger than the"
                            f" {size} bytes declared"
                        )
                    h.update(chunk)
                    out.write(chunk)
                    if progress:
                        progress(len(chunk))
        except (requests.RequestException, OSError) as exc:
            if watchdog.fired:
                raise RegistryUnavailableError(
                    f"registry {self.registry}: download of blob {digest} from {redact(url)} did not finish within"
                    f" {watchdog.seconds:.1f} s ({got} of {size} bytes; the minimum rate is"
                    f" {self.min_rate / 1024:.0f} KiB/s after the first {self.timeout:g} s)",
                    hint="check the network to the registry; MODELOPS_BUNDLE_TIMEOUT raises the allowance",
                    registry=self.registry,
                ) from exc
            raise RegistryUnavailableError(
                f"registry {self.registry}: download of blob {digest} broke off after {got} bytes ({type(exc).__name__})",
                registry=self.registry,
            ) from exc
        finally:
            watchdog.cancel()
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
        subject = f"image {repository}@{reference}" if reference.startswith("sha256:") else f"image {repository}:{reference}"
        resp = self.request(
            "GET", f"/v2/{repository}/manifests/{reference}", repository=repository, subject=subject,
            headers={"Accept": self._IMAGE_ACCEPT}, stream=True,
        )
        with resp:
            raw = resp.raw.read(_MAX_MANIFEST + 1, decode_content=True)
        if len(raw) > _MAX_MANIFEST:
            raise IntegrityError(f"{subject} is larger than {_MAX_MANIFEST} bytes; refusing it")
        if reference.startswith("sha256:") and digest_bytes(raw) != reference:
            raise IntegrityError(f"integrity error on {reference}: {subject} has digest {digest_bytes(raw)}")
        return raw, resp.headers.get("Content-Type", "").split(";")[0].strip()

    def resolve_image(self, repository: str, reference: str) -> str:
        """The digest of the image manifest or index that ``reference`` (a tag or a digest) names; headers only.

        A digest is asked about and returned as is. A tag's digest is the
        registry's ``Docker-Content-Digest``, or the digest of the manifest
        itself when a registry leaves that header out. Raises
        :class:`RegistryNotFoundError` when the registry does not hold it,
        :class:`RegistryAuthError` and :class:`RegistryUnavailableError` as every request does.
        """
        check_repository(repository)
        _check_reference(reference)
        pinned = reference.startswith("sha256:")
        subject = f"image {repository}@{reference}" if pinned else f"image {repository}:{reference}"
        resp = self.request("HEAD", f"/v2/{repository}/manifests/{reference}", repository=repository,
                            subject=subject, headers={"Accept": self._IMAGE_ACCEPT})
        if pinned:
            return reference
        digest = resp.headers.get("Docker-Content-Digest")
        if digest:
            if not DIGEST_RE.match(digest):
                raise IntegrityError(f"registry {self.registry} reported digest {digest!r} for {subject}, which is not"
                                     " sha256:<64 lowercase hex>")
            return digest
        raw, _ = self.get_image_manifest(repository, reference)
        return digest_bytes(raw)

    def manifest_exists(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the manifest ``digest`` (any image or artifact media type)."""
        resp = self.request(
            "HEAD", f"/v2/{repository}/manifests/{digest}", repository=repository, actions="pull,push",
            subject=f"manifest {repository}@{digest}", headers={"Accept": self._IMAGE_ACCEPT}, allow_missing=True,
        )
        return resp.status_code == 200

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-mount blob ``digest`` from ``from_repository`` of this registry; ``True`` if mounted.

        A registry that does not mount (HTTP 202, e.g. when the token does not
        cover the source repository) has started an upload instead; it is
        cancelled and ``False`` returned, so the caller copies the blob.
        """
        validate_digest(digest)
        subject = f"blob mount {from_repository}@{digest} into {repository}"
        resp = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/?mount={digest}&from={from_repository}",
            repository=repository, actions="pull,push", subject=subject, ok=(201, 202),
        )
        resp.close()
        if resp.status_code == 201:
            return True
        location = resp.headers.get("Location")
        if location:
            cancel = self.request(
                "DELETE", location if not location.startswith("/") else self._url(location), repository=repository,
                actions="pull,push", subject=f"cancel of {subject}", ok=(202, 204), allow_missing=True,
            )
            cancel.close()
        return False


def _check_reference(reference: str) -> str:
    """A manifest reference is a digest or a tag; anything else (``?``, ``/``) never goes into a URL."""
    return reference if DIGEST_RE.match(reference) else check_tag(reference)


def _error_detail(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return ""
    msgs = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
    return f" ({'; '.join(msgs)})" if msgs else ""
