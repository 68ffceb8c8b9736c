"""Per-process bundle runtime: fetch through the verified cache, load entrypoints, run tasks.

One :class:`BundleRuntime` lives in each worker process (created by the plugin).
The warm path for a task is two dictionary look-ups: no disk or network I/O.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from modelops_infra.bundles import BundleCache, BundleSettings, Lease, LocalBundle, RegistryClient, validate_digest
from modelops_infra.errors import BundleRunError, ConfigurationError
from modelops_infra.worker._namespace import load_entrypoint
from modelops_infra.worker._requirements import check_requirements

__all__ = ["BundleRuntime"]

log = logging.getLogger(__name__)
EntryFn = Callable[[dict[str, Any], int], Any]


class BundleRuntime:
    """Bundles and entry functions loaded in this process. Thread-safe.

    A bundle used here holds a cache lease until :meth:`close`, so the cache's
    LRU eviction never removes a bundle that a task of this process is using.
    """

    def __init__(self, settings: BundleSettings) -> None:
        self.settings = settings
        self.cache = BundleCache(settings.cache_dir, max_bytes=settings.cache_max_bytes,
                                 max_extract_bytes=settings.max_extract_bytes)
        self._bundles: dict[str, LocalBundle] = {}
        self._entries: dict[tuple[str, str | None], EntryFn] = {}
        self._leases: list[Lease] = []
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._client: RegistryClient | None = None

    def _registry_client(self) -> RegistryClient:
        if self.settings.registry is None:
            raise ConfigurationError(
                "fetch: this worker has no MODELOPS_BUNDLE_REGISTRY in its environment",
                hint="set it on the worker (the Pulumi workspace sets it from the registry's login_server output)",
            )
        if self._client is None:
            self._client = RegistryClient(self.settings.registry, insecure=self.settings.insecure,
                                          timeout=self.settings.timeout)
        return self._client

    def bundle(self, repository: str, digest: str) -> tuple[LocalBundle, bool]:
        """The local bundle (fetching and verifying it if needed) and whether it was already here."""
        found = self._bundles.get(digest)
        if found is not None:
            return found, True
        validate_digest(digest)
        with self._guard:
            lock = self._locks.setdefault(digest, threading.Lock())
        with lock:
            found = self._bundles.get(digest)
            if found is not None:
                return found, True
            cached = self.cache.get(digest) is not None
            local, lease = self.cache.ensure(repository, digest, client=self._registry_client, lease=True)
            if lease is not None:
                self._leases.append(lease)
            self._bundles[digest] = local
            return local, cached

    def entrypoint(self, repository: str, digest: str, fn_ref: str | None) -> EntryFn:
        key = (digest, fn_ref)
        fn = self._entries.get(key)
        if fn is not None:
            return fn
        local, _ = self.bundle(repository, digest)
        with self._locks[digest]:
            fn = self._entries.get(key)
            if fn is None:
                check_requirements(local.path, digest)
                fn = load_entrypoint(local.path, digest, fn_ref or local.manifest.entrypoint)
                self._entries[key] = fn
        return fn

    def run(self, repository: str, digest: str, fn_ref: str | None, params: dict[str, Any], seed: int) -> dict[str, Any]:
        """Run one simulation. Raises :class:`BundleRunError` carrying the bundle's traceback."""
        fn = self.entrypoint(repository, digest, fn_ref)
        name = fn_ref or self._bundles[digest].manifest.entrypoint
        try:
            result = fn(params, seed)
        except Exception as exc:
            tb = traceback.format_exc()
            raise BundleRunError(
                f"run: entrypoint {name} of bundle {digest} raised {type(exc).__name__}: {exc}\n{tb}",
                remote_traceback=tb, digest=digest, exception_type=type(exc).__name__,
            ) from None
        if not isinstance(result, dict):
            raise BundleRunError(
                f"run: entrypoint {name} of bundle {digest} returned {type(result).__name__}, expected a JSON-serializable dict",
                digest=digest,
            )
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise BundleRunError(
                f"run: entrypoint {name} of bundle {digest} returned a dict that is not JSON-serializable ({exc})",
                digest=digest,
            ) from None
        return result

    def fetch(self, repository: str, digest: str) -> dict[str, Any]:
        start = time.perf_counter()
        local, cached = self.bundle(repository, digest)
        return {"cached": cached, "seconds": time.perf_counter() - start, "size": local.size}

    def close(self) -> None:
        for lease in self._leases:
            lease.release()
        self._leases.clear()
        self._entries.clear()
        self._bundles.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
