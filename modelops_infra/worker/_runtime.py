"""Per-process bundle runtime: fetch through the verified cache, build environments, run tasks.

One :class:`BundleRuntime` lives in each worker process (created by the plugin).

Where a task runs:

* a bundle with no environment file, no ``isolation`` and no timeout runs in
  the worker process (the fast path: two dictionary look-ups, no I/O);
* a bundle with an environment runs in a warm child process that uses the
  environment's interpreter (built once per host, see :class:`BundleCache`);
* ``"isolation": "process"`` uses a warm child of the worker's own interpreter,
  ``"fresh"`` a new process per task; a task timeout also needs a process,
  since only a process can be killed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import Timeout

from modelops_infra.bundles import (
    BuildOptions,
    BundleCache,
    BundleSettings,
    Environment,
    Lease,
    LocalBundle,
    RegistryClient,
    build_environment,
    find_environment,
    validate_digest,
)
from modelops_infra.errors import BundleRunError, CacheError, ConfigurationError, ModelOpsError, RequirementsError
from modelops_infra.worker._namespace import load_entrypoint
from modelops_infra.worker._pool import ChildSpec, ProcessPool, minimal_child_env

log = logging.getLogger(__name__)

__all__ = ["BundleRuntime"]

#: a failed environment build is remembered this long, then tried again (the index may have been down)
_FAILED_BUILD_MEMORY = 60.0
#: besides the install itself: uv venv and uv export, each bounded at 300 s
_BUILD_SETUP_SECONDS = 600.0
EntryFn = Callable[[dict[str, Any], int], Any]


class BundleRuntime:
    """Bundles and entry functions loaded in this process. Thread-safe.

    A bundle used here holds a cache lease, so the cache's LRU eviction never
    removes a bundle a task of this process is using, nor one it keeps warm
    (idle child processes, entry functions). The warm ones are given up when
    the cache is over its cap (:meth:`_make_room`): after each new fetch or
    environment build, bundles no task is running are released, least recently
    used first, until eviction brings the cache under its cap. Their idle
    children are stopped; their modules stay imported in this process, and a
    later task fetches the bundle again. Without that, a worker that has run
    more bundles than the cap holds would keep them all, and on Kubernetes the
    kubelet would evict the pod when its cache volume fills.
    """

    def __init__(self, settings: BundleSettings, *, threads: int = 1, build_options: BuildOptions | None = None) -> None:
        self.settings = settings
        self.build_options = build_options or BuildOptions.from_env()
        self.pool = ProcessPool(max(threads, settings.max_processes or 0, 1),
                                idle_timeout=settings.process_idle_timeout)
        self._child_env = minimal_child_env()
        self._envs: dict[str, Environment] = {}
        self._env_failures: dict[str, tuple[float, RequirementsError]] = {}
        self.cache = BundleCache(settings.cache_dir, max_bytes=settings.cache_max_bytes,
                                 max_extract_bytes=settings.max_extract_bytes)
        self._bundles: dict[str, LocalBundle] = {}
        self._entries: dict[tuple[str, str | None], EntryFn] = {}
        self._leases: dict[str, Lease] = {}  # bundle digest or environment key -> its lease
        self._active: dict[str, int] = {}  # bundle digest -> tasks using it now
        self._last_used: dict[str, float] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._client: RegistryClient | None = None

    def _registry_client(self) -> RegistryClient:
        if self.settings.registry is None:
            raise ConfigurationError(
                "this worker has no MODELOPS_BUNDLE_REGISTRY in its environment",
                stage="fetch", hint="set it on the worker (the Pulumi workspace sets it from the registry's login_server output)",
            )
        if self._client is None:
            self._client = RegistryClient(self.settings.registry, insecure=self.settings.insecure,
                                          timeout=self.settings.timeout)
        return self._client

    def bundle(self, repository: str, digest: str) -> tuple[LocalBundle, bool]:
        """The local bundle (fetching and verifying it if needed) and whether it was already here.

        Every :class:`ModelOpsError` raised while getting it (registry, integrity, archive, cache) leaves
        with ``stage="fetch"``, so the client can tell a fetch failure from a run failure.
        """
        found = self._bundles.get(digest)
        if found is not None:
            return found, True
        try:
            validate_digest(digest)
            with self._guard:
                lock = self._locks.setdefault(digest, threading.Lock())
            with lock:
                found = self._bundles.get(digest)
                if found is not None:
                    return found, True
                cached = self.cache.get(digest) is not None
                local, lease = self.cache.ensure_leased(repository, digest, client=self._registry_client)
                with self._guard:
                    self._leases[digest] = lease
                    self._bundles[digest] = local
            self._make_room()
            return local, cached
        except ModelOpsError as exc:
            if exc.stage is None:
                exc.stage = "fetch"
            raise

    def entrypoint(self, repository: str, digest: str, fn_ref: str | None) -> EntryFn:
        key = (digest, fn_ref)
        fn = self._entries.get(key)
        if fn is not None:
            return fn
        local, _ = self.bundle(repository, digest)
        with self._locks[digest]:
            fn = self._entries.get(key)
            if fn is None:
                fn = load_entrypoint(local.path, digest, fn_ref or local.manifest.entrypoint)
                self._entries[key] = fn
        return fn

    def environment(self, local: LocalBundle) -> Environment:
        """The bundle's built environment (building it once per host if needed), leased while a bundle here uses it."""
        key = local.environment_key
        assert key is not None
        found = self._envs.get(key)
        if found is not None:
            return found
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            found = self._envs.get(key)
            if found is not None:
                return found
            failed = self._env_failures.get(key)
            if failed is not None and time.monotonic() - failed[0] < _FAILED_BUILD_MEMORY:
                raise failed[1]  # a batch of thousands of tasks must not rebuild a broken environment each time
            spec, problems = find_environment(local.path)
            if spec is None:
                raise RequirementsError(f"bundle {local.digest}: " + "; ".join(problems), stage="run", digest=local.digest)

            def build(venv: Path, work: Path) -> None:
                build_environment(spec, venv, work, wheels_dir=local.wheels_dir, options=self.build_options)

            try:
                found, lease = self.cache.ensure_environment(
                    key, build, describe={"file": spec.source, "bundle": local.digest},
                    lock_timeout=self.build_options.timeout + _BUILD_SETUP_SECONDS)
            except RequirementsError as exc:
                error = RequirementsError(f"the environment of bundle {local.digest} cannot be built:"
                                          f" {exc.message}", stage="run", hint=exc.hint or f"check {spec.source}",
                                          digest=local.digest, environment_key=key)
                self._env_failures[key] = (time.monotonic(), error)
                raise error from None
            with self._guard:
                self._leases[key] = lease
                self._envs[key] = found
        self._make_room()
        return found

    def run(self, repository: str, digest: str, fn_ref: str | None, params: dict[str, Any], seed: int, *,
            timeout: float | None = None) -> dict[str, Any]:
        """Run one simulation. Raises :class:`BundleRunError` carrying the bundle's traceback, or naming the
        exit code, signal or timeout of the process that ran it."""
        with self._using(digest):
            return self._run(repository, digest, fn_ref, params, seed, timeout)

    def _run(self, repository: str, digest: str, fn_ref: str | None, params: dict[str, Any], seed: int,
             timeout: float | None) -> dict[str, Any]:
        local, _ = self.bundle(repository, digest)
        manifest = local.manifest
        isolation = manifest.isolation or ("process" if local.environment_key else None)
        timeout = timeout if timeout is not None else manifest.timeout
        if isolation is None and timeout is None:
            return self._run_here(repository, digest, fn_ref, params, seed)
        if local.environment_key:
            env = self.environment(local)
            python, child_env = env.python, self._env_for_children(env)
        else:
            python, child_env = Path(sys.executable), self._child_env
        spec = ChildSpec((digest, local.environment_key or ""), str(python), local.path, child_env)
        return self.pool.run(spec, fn_ref or manifest.entrypoint, params, seed, digest=digest, timeout=timeout,
                             fresh=isolation == "fresh")

    def _env_for_children(self, env: Environment) -> dict[str, str]:
        """The minimal child environment, with the bundle environment's scripts first on ``PATH``."""
        out = dict(self._child_env)
        out["VIRTUAL_ENV"] = str(env.path)
        out["PATH"] = os.pathsep.join(filter(None, [str(env.path / "bin"), out.get("PATH")]))
        return out

    def _run_here(self, repository: str, digest: str, fn_ref: str | None, params: dict[str, Any],
                  seed: int) -> dict[str, Any]:
        fn = self.entrypoint(repository, digest, fn_ref)
        name = fn_ref or self._bundles[digest].manifest.entrypoint
        try:
            result = fn(params, seed)
        except Exception as exc:
            tb = traceback.format_exc()
            raise BundleRunError(
                f"entrypoint {name} of bundle {digest} raised {type(exc).__name__}: {exc}\n{tb}",
                stage="run", remote_traceback=tb, digest=digest, exception_type=type(exc).__name__,
            ) from None
        if not isinstance(result, dict):
            raise BundleRunError(
                f"entrypoint {name} of bundle {digest} returned {type(result).__name__}, expected a JSON-serializable dict",
                stage="run", digest=digest,
            )
        try:
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise BundleRunError(
                f"entrypoint {name} of bundle {digest} returned a dict that is not JSON-serializable ({exc})",
                stage="run", digest=digest,
            ) from None
        return result

    def fetch(self, repository: str, digest: str) -> dict[str, Any]:
        start = time.perf_counter()
        with self._using(digest):
            local, cached = self.bundle(repository, digest)
        return {"cached": cached, "seconds": time.perf_counter() - start, "size": local.size}

    @contextlib.contextmanager
    def _using(self, digest: str) -> Iterator[None]:
        """Count a task using ``digest``; :meth:`_make_room` never releases a bundle while one does."""
        with self._guard:
            self._active[digest] = self._active.get(digest, 0) + 1
        try:
            yield
        finally:
            with self._guard:
                self._active[digest] -= 1
                if not self._active[digest]:
                    del self._active[digest]
                self._last_used[digest] = time.monotonic()

    def _make_room(self) -> None:
        """While the cache is over its cap, release the least recently used bundle no task is using, and evict.

        Best effort, like the cache's own eviction after a fetch: a busy evictor or a failing disk is logged,
        never raised, because the caller's bundle or environment is already fetched and leased.
        """
        cap = self.cache.max_bytes
        try:
            while cap is not None and self.cache.total_size() > cap:
                with self._guard:
                    idle = sorted((self._last_used.get(d, 0.0), d) for d in self._bundles if not self._active.get(d))
                    if not idle:
                        return  # all in use: the next fetch or build after a task ends tries again
                    digest = idle[0][1]
                    local = self._bundles.pop(digest)
                    self._last_used.pop(digest, None)
                    for key in [k for k in self._entries if k[0] == digest]:
                        del self._entries[key]
                    released = [self._leases.pop(digest)]
                    env_key = local.environment_key
                    if env_key and env_key in self._envs and \
                            not any(b.environment_key == env_key for b in self._bundles.values()):
                        del self._envs[env_key]
                        released.append(self._leases.pop(env_key))
                try:
                    self.pool.stop_idle(digest)
                finally:
                    for lease in released:
                        lease.release()
                log.info("released bundle %s (no task uses it) to bring the cache under its cap", digest)
                self.cache.evict()
        except (Timeout, OSError, CacheError) as exc:
            log.warning("bundle cache %s: making room skipped (%s); it may stay over its cap until the next fetch",
                        self.cache.root, exc)

    def close(self) -> None:
        self.pool.close()
        with self._guard:
            leases, self._leases = list(self._leases.values()), {}
        for lease in leases:
            lease.release()
        self._entries.clear()
        self._bundles.clear()
        self._envs.clear()
        if self._client is not None:
            self._client.close()
            self._client = None
