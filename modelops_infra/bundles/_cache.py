"""Content-addressed, verified, crash-safe local bundle cache.

Layout under the cache root (``MODELOPS_BUNDLE_CACHE_DIR``)::

    entries/sha256/<hex>/tree/...     a complete, verified, extracted bundle (read-only)
    entries/sha256/<hex>/wheels/...   the bundle's wheels, if it ships them (verified blobs, read-only)
    entries/sha256/<hex>/meta.json    digest, repository, size, bundle manifest, environment key, and
                                      the record of every file: size, mtime and sha256
    entries/sha256/<hex>/.used        mtime = last use (LRU clock)
    envs/<keyhex>/venv/...            a complete Python environment (see _envspec for the key)
    envs/<keyhex>/meta.json           key, size and file count (``__pycache__`` aside), source file
    envs/<keyhex>/.used               mtime = last use
    staging/<hex>.<pid>.<random>/     work in progress; never read by a fetch
    staging/env-<keyhex>.<pid>.<random>/  an environment being built
    locks/<hex>.lock                  one download per bundle per host
    locks/env-<keyhex>.lock           one build per environment per host
    leases/<hex>/<pid>.<token>        "a running process uses this bundle"
    leases/env-<keyhex>/<pid>.<token> "a running process uses this environment"

Contracts:

* **Atomic.** An entry appears by one ``rename`` of a fully written, fsynced
  staging directory, so a reader sees a whole bundle or none. A directory
  already at the entry's place never blocks it: it is moved aside.
* **Verified.** Every manifest and blob is checked against its digest before it
  is extracted; on any error the staging directory is removed and no entry is
  created. Existing entries are never touched by a failed fetch.
* **Never serves what it did not verify.** A committed bundle entry is
  read-only (files ``0444``, or ``0555`` if executable; directories ``0555``).
  Its ``meta.json`` records each file's size, mtime and digest; the first use
  of an entry in each :class:`BundleCache` object compares them with the disk
  (a stat per file; a file whose stat changed is hashed again) and checks that
  nothing was added, ``__pycache__`` aside. A tampered or broken entry --
  changed, missing or added files, a ``meta.json`` that is missing, unparseable
  or lacks a key -- is evicted, logged at WARNING and fetched again; it is
  never returned. :meth:`BundleCache.verify` re-hashes every file.
* **One download per host.** Concurrent :meth:`BundleCache.ensure` calls for the
  same digest (threads or processes) serialize on a file lock; the first
  downloads, the rest find the entry.
* **Crash-safe.** A process killed mid-download leaves only a staging directory
  named with its pid, which later fetches ignore and sweep once the pid is dead.
* **Size cap.** With ``max_bytes`` set, least-recently-used entries -- bundles
  and environments alike -- are evicted after each download or build, except
  those with a live lease or a held lock.
* **Errors.** A cache that cannot be written (read-only mount, unwritable
  ``locks/``, a full disk) raises :class:`CacheError` naming the path and the
  cause, never a bare ``OSError``.

Environments follow the same rules: built in staging, published by one rename,
one build per host (file lock), swept when their builder died, leased while used.
They are not made read-only: a venv is uv's to lay out, and it is not re-hashed.
Their files are not fsynced one by one either (thousands of files: it would
double a cold build). Instead the first use of an environment in each
:class:`BundleCache` object counts its files and bytes (``__pycache__`` aside,
which the interpreter adds) against ``meta.json``: an environment whose files
did not all reach the disk before a crash (the rename did, the data did not:
empty or missing files) differs, is logged at WARNING and is built again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import Timeout

from modelops_infra.bundles._digest import DIGEST_RE, digest_file, digest_hex, validate_digest
from modelops_infra.bundles._envspec import PythonTarget, environment_key, find_environment
from modelops_infra.bundles._extract import ExtractBudget, TreeWriter, extract_code_tar, place_file
from modelops_infra.bundles._layout import BundleLayout, CodeLayer, FileLayer, WheelLayer
from modelops_infra.bundles._locks import HolderLock
from modelops_infra.bundles._manifest import BundleManifest, parse_manifest
from modelops_infra.bundles._registry import ProgressCallback, RegistryClient
from modelops_infra.bundles._streams import SyncedWriter, fsync_dir
from modelops_infra.errors import BundleValidationError, CacheError, IntegrityError, UnsafeArchiveError

__all__ = ["BundleCache", "Environment", "Lease", "LocalBundle"]

log = logging.getLogger(__name__)
ClientSource = RegistryClient | Callable[[], RegistryClient]
#: written by Python itself when it imports from a tree (as root, read-only modes do not stop it)
_BYTECODE_DIR = "__pycache__"


@dataclass(frozen=True)
class LocalBundle:
    """A verified bundle on local disk. ``path`` is the bundle's root directory."""

    digest: str
    path: Path
    manifest: BundleManifest
    size: int
    repository: str
    environment_key: str | None = None
    wheels: tuple[str, ...] = ()

    @property
    def wheels_dir(self) -> Path | None:
        """The directory of the wheels the bundle ships through the registry (``None`` if it ships none)."""
        return self.path.parent / "wheels" if self.wheels else None


@dataclass(frozen=True)
class Environment:
    """A built Python environment in the cache. ``python`` is its interpreter."""

    key: str
    path: Path
    size: int

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


class Lease:
    """Marks a bundle as in use by this process; the evictor skips it. Release when done."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def release(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class _Broken(Exception):
    """An entry that must not be served; ``reason`` says what is wrong with it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Materialized:
    """A staging directory holding a complete, verified tree (and wheels), not yet sealed."""

    manifest: BundleManifest
    size: int
    wheels: list[dict[str, str]]
    digests: dict[str, str]  # entry-relative path -> sha256 digest of every regular file


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cache_error(what: str, exc: OSError, fallback: Path) -> CacheError:
    """``exc`` as a CacheError naming the path at fault and the cause."""
    path = exc.filename if exc.filename is not None else fallback
    return CacheError(f"{what}: {path}: {exc.strerror or exc}",
                      hint="check the cache directory's free space, permissions and mount (read-only?), or set"
                           " MODELOPS_BUNDLE_CACHE_DIR to a writable directory", path=str(path))


def _remove_tree(path: Path) -> None:
    """``rmtree`` that also empties read-only directories (entries are ``0555``); never raises."""

    def writable_and_retry(func: Callable[..., Any], name: str, _exc: object) -> None:
        try:
            os.chmod(os.path.dirname(name), 0o755)
            func(name)
        except OSError:
            pass

    try:
        os.chmod(path, 0o755)
    except OSError:
        pass
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=writable_and_retry)
    else:
        shutil.rmtree(path, onerror=writable_and_retry)


class BundleCache:
    """The cache at ``root``. Safe to share between threads and processes on one host.

    Each object remembers which entries it has verified, so the stat check of
    an entry runs once per object (a worker process holds one), not per use.
    """

    def __init__(self, root: Path | str, *, max_bytes: int | None = None,
                 max_extract_bytes: int = 8 * 1024**3, lock_timeout: float = 900.0) -> None:
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes
        self.max_extract_bytes = max_extract_bytes
        self.lock_timeout = lock_timeout
        self._verified: set[str] = set()
        self._envs_counted: set[str] = set()
        try:
            for sub in ("entries/sha256", "envs", "staging", "locks", "leases"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"bundle cache {self.root} cannot be created ({exc})",
                             hint="set MODELOPS_BUNDLE_CACHE_DIR to a writable directory") from exc

    # -- paths and locks ---------------------------------------------------------------

    def entry_dir(self, digest: str) -> Path:
        return self.root / "entries" / "sha256" / digest_hex(digest)

    def _lock(self, name: str) -> HolderLock:
        """The lock of ``locks/<name>.lock`` (a bundle's hex digest, ``env-<hex>`` or ``evict``).

        It records its holder, so a waiter that times out names the process it waited for.
        """
        return HolderLock(self.root / "locks" / f"{name}.lock", timeout=self.lock_timeout)

    @contextlib.contextmanager
    def _locked(self, lock: HolderLock, timeout: float) -> Iterator[None]:
        lock.acquire(timeout=timeout)  # CacheError naming the holder, or the unwritable locks/ directory
        try:
            yield
        finally:
            lock.release()

    def _bundle_locked(self, digest: str) -> contextlib.AbstractContextManager[None]:
        return self._locked(self._lock(digest_hex(digest)), self.lock_timeout)

    # -- reading -----------------------------------------------------------------------

    def get(self, digest: str) -> LocalBundle | None:
        """The cached, verified bundle, or ``None``. Marks it used (LRU).

        A broken or tampered entry is evicted (under the bundle's lock, logged
        at WARNING) and ``None`` returned, so the next :meth:`ensure` fetches it
        again. Raises :class:`CacheError` if the cache cannot be read or written.
        """
        validate_digest(digest)
        try:
            return self._open(digest)
        except _Broken:
            with self._bundle_locked(digest):
                try:
                    return self._open(digest)  # another process may have replaced it meanwhile
                except _Broken as broken:
                    self._discard(digest, broken.reason)
                    return None

    def _open(self, digest: str, *, rehash: bool = False) -> LocalBundle | None:
        """The entry, checked against its record on first use (or hashed in full with ``rehash``).

        Returns ``None`` if there is no entry; raises :class:`_Broken` if it must not be served.
        """
        entry = self.entry_dir(digest)
        try:
            raw = (entry / "meta.json").read_bytes()
        except FileNotFoundError:
            if os.path.lexists(entry):
                raise _Broken("its meta.json is missing") from None
            return None
        except OSError as exc:
            raise _cache_error("bundle cache entry cannot be read", exc, entry) from exc
        meta = _parse_meta(raw, digest)
        if rehash or digest not in self._verified:
            problem = _check_files(entry, meta, rehash=rehash)
            if problem is not None:
                raise _Broken(problem)
            self._verified.add(digest)
        try:
            os.utime(entry / ".used")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _cache_error("bundle cache entry cannot be marked used", exc, entry / ".used") from exc
        wheels = tuple(w["digest"] for w in meta["wheels"])
        env_key = meta["environment"]["key"] if meta["environment"] else None
        return LocalBundle(digest, entry / "tree", meta["_manifest"], meta["size"], meta["repository"], env_key, wheels)

    def _discard(self, digest: str, reason: str) -> None:
        """Evict a broken entry (the caller holds the bundle's lock)."""
        entry = self.entry_dir(digest)
        self._verified.discard(digest)
        log.warning("bundle cache entry %s is broken (%s): evicted; it will be fetched again", entry, reason)
        self._move_to_trash(entry, digest_hex(digest))

    def entries(self) -> list[str]:
        return sorted("sha256:" + p.name for p in (self.root / "entries" / "sha256").iterdir()
                      if (p / "meta.json").exists())

    def verify(self) -> list[tuple[str, str | None]]:
        """Re-hash every file of every cached bundle against its record; evict the broken ones.

        Returns ``(digest, problem)`` per entry, ``problem`` being ``None`` for a
        sound entry. Evicted entries are fetched again by their next use.
        """
        results: list[tuple[str, str | None]] = []
        for folder in sorted((self.root / "entries" / "sha256").iterdir()):
            digest = "sha256:" + folder.name
            if not DIGEST_RE.match(digest):
                continue
            with self._bundle_locked(digest):
                try:
                    found = self._open(digest, rehash=True)
                except _Broken as broken:
                    self._discard(digest, broken.reason)
                    results.append((digest, broken.reason))
                    continue
            if found is not None:
                results.append((digest, None))
        return results

    def verify_environments(self) -> list[tuple[str, str | None]]:
        """Count the files and bytes of every built environment against its ``meta.json``; evict the broken ones.

        Returns ``(key, problem)`` per environment, ``problem`` being ``None``
        for a sound one. An evicted environment is built again by its next use.
        Environments are not hashed (see the module docs): this finds what a
        crash leaves (empty or missing files), not a deliberate edit.
        """
        results: list[tuple[str, str | None]] = []
        for folder in sorted((self.root / "envs").iterdir()):
            key = "sha256:" + folder.name
            if not DIGEST_RE.match(key):
                continue
            with self._locked(self._lock(f"env-{folder.name}"), self.lock_timeout):
                problem = _environment_problem(folder)
                if problem is not None:
                    self._envs_counted.discard(key)
                    log.warning("environment %s is broken (%s): evicted; it will be built again", folder, problem)
                    self._move_to_trash(folder, f"env-{folder.name}")
                else:
                    self._envs_counted.add(key)
            results.append((key, problem))
        return results

    # -- fetching ----------------------------------------------------------------------

    def ensure(self, repository: str, digest: str, *, client: ClientSource,
               progress: ProgressCallback | None = None, rehash: bool = False) -> LocalBundle:
        """Return the bundle, downloading and verifying it first if it is not cached (or is broken).

        ``client`` may be a factory, called only on a miss. With ``rehash`` a
        cached entry is hashed in full, not only checked by stat. The bundle may
        be evicted by another process once this returns: use
        :meth:`ensure_leased` to keep it.

        Raises :class:`IntegrityError`, :class:`UnsafeArchiveError`,
        :class:`~modelops_infra.errors.RegistryError` or :class:`CacheError`;
        on any of them nothing is added to the cache.
        """
        validate_digest(digest)
        if not rehash:
            try:
                found = self._open(digest)
            except _Broken:
                found = None  # dealt with under the lock
            if found is not None:
                return found
        with self._bundle_locked(digest):
            found = self._get_or_fetch(repository, digest, client, progress, rehash=rehash)
        self._evict_after_fetch(digest)
        return found

    def ensure_leased(self, repository: str, digest: str, *, client: ClientSource,
                      progress: ProgressCallback | None = None, rehash: bool = False) -> tuple[LocalBundle, Lease]:
        """As :meth:`ensure`, and take a :class:`Lease` under the bundle's lock, so the bundle cannot
        be evicted between the fetch and its use. Release the lease when done."""
        validate_digest(digest)
        with self._bundle_locked(digest):
            found = self._get_or_fetch(repository, digest, client, progress, rehash=rehash)
            taken = self._take_lease(digest)
        self._evict_after_fetch(digest)
        return found, taken

    def _get_or_fetch(self, repository: str, digest: str, client: ClientSource,
                      progress: ProgressCallback | None, *, rehash: bool) -> LocalBundle:
        """Under the bundle's lock: the verified entry, or a fresh fetch in place of a missing or broken one."""
        try:
            found = self._open(digest, rehash=rehash)
        except _Broken as broken:
            self._discard(digest, broken.reason)
            found = None
        if found is not None:
            return found
        self._sweep_staging()
        return self._fetch(repository, digest, client() if callable(client) else client, progress)

    def _evict_after_fetch(self, keep: str) -> None:
        """Bring the cache under its cap; best effort, so a busy evictor never costs the caller its lease."""
        if self.max_bytes is None:
            return
        try:
            self.evict(keep={keep})
        except (Timeout, OSError, CacheError) as exc:
            log.warning("bundle cache %s: eviction skipped (%s); the cache may stay over its cap until the next"
                        " fetch", self.root, exc)

    def _take_lease(self, digest: str) -> Lease:
        return self._lease_in(digest_hex(digest))

    def _lease_in(self, name: str) -> Lease:
        folder = self.root / "leases" / name
        path = folder / f"{os.getpid()}.{secrets.token_hex(4)}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as exc:
            raise _cache_error("cannot take a lease", exc, path) from exc
        return Lease(path)

    # -- environments ------------------------------------------------------------------

    def environment_dir(self, key: str) -> Path:
        return self.root / "envs" / digest_hex(key)

    def environment(self, key: str) -> Environment | None:
        """The built environment with ``key``, or ``None``. Marks it used (LRU).

        The first call for ``key`` in this object counts the environment's files
        and bytes against its ``meta.json``; a broken one is logged at WARNING
        and ``None`` is returned (:meth:`ensure_environment` then replaces it).
        """
        folder = self.environment_dir(validate_digest(key))
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CacheError(f"environment {folder} is unreadable ({exc})", hint=f"remove {folder}") from exc
        if key not in self._envs_counted:
            problem = _environment_problem(folder)
            if problem is not None:
                log.warning("environment %s is broken (%s): it will be built again", folder, problem)
                return None
            self._envs_counted.add(key)
        try:
            os.utime(folder / ".used")
        except FileNotFoundError:
            (folder / ".used").touch()
        return Environment(key, folder / "venv", int(meta["size"]))

    def ensure_environment(self, key: str, build: Callable[[Path, Path], None], *,
                           describe: dict[str, str] | None = None,
                           lock_timeout: float | None = None) -> tuple[Environment, Lease]:
        """Return the environment ``key``, building it first if no process on this host has.

        ``build(venv, work)`` must create the environment at ``venv`` (scratch
        files under ``work``). It runs at most once per host at a time: the
        first caller builds under ``locks/env-<hex>.lock`` while the others wait
        and then find it. The result is published by one rename, so a half-built
        environment is never used; a builder killed half-way leaves a staging
        directory that the next build sweeps. The returned :class:`Lease` keeps
        the environment from eviction until released. Waiters wait ``lock_timeout``
        (default the cache's), which should cover a whole build.
        """
        hexkey = digest_hex(validate_digest(key))
        wait = self.lock_timeout if lock_timeout is None else lock_timeout
        with self._locked(self._lock(f"env-{hexkey}"), wait):
            found = self.environment(key)
            if found is None:
                self._sweep_staging()
                found = self._build_environment(key, build, describe or {})
            taken = self._lease_in(f"env-{hexkey}")
        self._evict_after_fetch(key)
        return found, taken

    def _build_environment(self, key: str, build: Callable[[Path, Path], None], describe: dict[str, str]
                           ) -> Environment:
        hexkey = digest_hex(key)
        stage = self.root / "staging" / f"env-{hexkey}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            stage.mkdir()
            work = stage / "work"
            work.mkdir()
            start = time.perf_counter()
            build(stage / "venv", work)
            shutil.rmtree(work)
            size, files = _tree_census(stage / "venv")
            meta = {"key": key, "size": size, "files": files, "built_at": time.time(),
                    "seconds": time.perf_counter() - start, **describe}
            with open(stage / "meta.json", "w", encoding="utf-8") as fh:
                json.dump(meta, fh)
                fh.flush()
                os.fsync(fh.fileno())
            (stage / ".used").touch()
            fsync_dir(stage)
            final = self.environment_dir(key)
            self._publish(stage, final, f"env-{hexkey}")  # moves a broken environment aside
            fsync_dir(final.parent)
            self._envs_counted.add(key)
        except OSError as exc:
            shutil.rmtree(stage, ignore_errors=True)
            raise CacheError(f"environment {key} cannot be written under {self.root} ({exc.strerror or exc})",
                             hint="check the cache directory's free space and permissions") from exc
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        log.info("built environment %s (%d bytes) in %.1f s", key, size, meta["seconds"])
        return Environment(key, final / "venv", size)

    # -- one fetch: stage, materialize, commit -------------------------------------------

    def _fetch(self, repository: str, digest: str, client: RegistryClient,
               progress: ProgressCallback | None) -> LocalBundle:
        """Download, verify and extract ``digest`` into a staging directory, then publish it as the entry."""
        raw, _ = client.get_manifest(repository, digest)
        layout = BundleLayout.from_manifest(raw, source=f"{repository}@{digest}")
        stage = self._stage(digest)
        try:
            done = self._materialize(client, repository, digest, layout, stage, progress)
            local = self._commit(stage, digest, repository, done)
        except OSError as exc:
            _remove_tree(stage)
            if exc.errno is None:  # not the disk (requests' errors are OSErrors too): leave it to its own seam
                raise
            raise _cache_error(f"bundle {digest} cannot be written to the cache", exc, stage) from exc
        except BaseException:
            _remove_tree(stage)
            raise
        log.info("cached bundle %s (%d bytes) from %s/%s", digest, local.size, client.registry, repository)
        return local

    def _stage(self, digest: str) -> Path:
        """A new staging directory of this process, with empty ``tree/`` and ``blobs/``."""
        stage = self.root / "staging" / f"{digest_hex(digest)}.{os.getpid()}.{secrets.token_hex(4)}"
        try:
            stage.mkdir()
            (stage / "tree").mkdir()
            (stage / "blobs").mkdir()
        except OSError as exc:
            _remove_tree(stage)
            raise _cache_error("cannot create a staging directory", exc, stage) from exc
        return stage

    def _materialize(self, client: RegistryClient, repository: str, digest: str, layout: BundleLayout, stage: Path,
                     progress: ProgressCallback | None) -> _Materialized:
        """Download every blob of ``layout`` (each checked against its digest) and place it in ``stage``."""
        config_path = stage / "config.json"
        with open(config_path, "wb") as out:
            client.download_blob(repository, layout.config.digest, layout.config.size, out)
        manifest, problems = parse_manifest(config_path.read_bytes(), source=f"{repository}@{digest} config")
        if manifest is None:
            raise IntegrityError("; ".join(problems))
        config_path.unlink()
        tree, blobs = stage / "tree", stage / "blobs"
        budget = ExtractBudget(self.max_extract_bytes)
        wheels: list[dict[str, str]] = []
        digests: dict[str, str] = {}
        size = 0
        with TreeWriter(tree, budget) as writer:
            for layer in layout.layers:
                desc = layer.descriptor
                entry = desc.annotations.get("org.opencontainers.image.title") or desc.digest
                if desc.size > self.max_extract_bytes:
                    raise UnsafeArchiveError(f"refused entry {entry!r}: {desc.size} bytes exceeds the extraction"
                                             f" limit of {self.max_extract_bytes} bytes", entry=entry)
                blob_path = blobs / digest_hex(desc.digest)
                sink = SyncedWriter(blob_path)
                try:
                    client.download_blob(repository, desc.digest, desc.size, sink, progress)
                finally:
                    sink.close()
                size += desc.size
                if isinstance(layer, CodeLayer):
                    with open(blob_path, "rb") as fh:
                        extract_code_tar(fh, tree, budget, writer=writer)
                    blob_path.unlink()
                elif isinstance(layer, FileLayer):
                    place_file(blob_path, tree, layer.path, layer.mode, budget, writer=writer, digest=desc.digest)
                elif isinstance(layer, WheelLayer):
                    (stage / "wheels").mkdir(exist_ok=True)
                    os.rename(blob_path, stage / "wheels" / layer.filename)
                    wheels.append({"file": layer.filename, "digest": desc.digest})
                    digests[f"wheels/{layer.filename}"] = desc.digest
            digests.update({f"tree/{rel}": d for rel, d in writer.digests.items()})
        blobs.rmdir()
        return _Materialized(manifest, size, wheels, digests)

    def _commit(self, stage: Path, digest: str, repository: str, done: _Materialized) -> LocalBundle:
        """Seal ``stage`` (read-only, every file recorded, fsynced) and publish it by one rename."""
        spec, env_problems = find_environment(stage / "tree")
        if env_problems:
            raise BundleValidationError(f"bundle {digest} declares an invalid environment: "
                                        + "; ".join(env_problems), problems=env_problems)
        wheel_digests = [w["digest"] for w in done.wheels]
        env_key = environment_key(spec, PythonTarget.current(), wheel_digests) if spec else None
        record = _seal(stage, done.digests)
        meta = {"digest": digest, "repository": repository, "size": done.size, "manifest": done.manifest.to_dict(),
                "fetched_at": time.time(), "wheels": done.wheels,
                "environment": None if spec is None else {"key": env_key, "file": spec.source, "kind": spec.kind},
                **record}
        with open(stage / "meta.json", "w", encoding="utf-8") as fh:
            json.dump(meta, fh)
            fh.flush()
            os.fchmod(fh.fileno(), 0o444)
            os.fsync(fh.fileno())
        (stage / ".used").touch()
        fsync_dir(stage)
        final = self.entry_dir(digest)
        self._publish(stage, final, digest_hex(digest))
        os.chmod(final, 0o555)  # after the rename: moving a directory needs write access to it
        fsync_dir(final.parent)
        self._verified.add(digest)
        return LocalBundle(digest, final / "tree", done.manifest, done.size, repository, env_key, tuple(wheel_digests))

    def _publish(self, stage: Path, final: Path, name: str) -> None:
        """Rename ``stage`` to ``final``. Whatever is at ``final`` (the caller holds its lock and found no sound
        entry there) is moved aside first, so a planted or half-removed directory never blocks a bundle."""
        try:
            os.rename(stage, final)
            return
        except OSError as exc:
            if not os.path.lexists(final):
                raise
            log.warning("bundle cache %s: replacing %s, which is not a sound entry (%s)", self.root, final,
                        exc.strerror)
        self._move_to_trash(final, name)
        os.rename(stage, final)

    def _move_to_trash(self, folder: Path, name: str) -> None:
        """Take ``folder`` out of ``entries/`` or ``envs/`` by one rename, then delete it."""
        # pid 0 in the trash name: _sweep_staging treats it as a dead owner, so a crash
        # between this rename and the removal is cleaned up by the next sweep.
        trash = self.root / "staging" / f"evict-{name}.0.{secrets.token_hex(4)}"
        try:
            if not folder.is_symlink():
                os.chmod(folder, 0o755)  # moving a directory to another parent needs write access to it
            os.rename(folder, trash)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _cache_error("cannot evict a cache entry", exc, folder) from exc
        _remove_tree(trash)

    def _sweep_staging(self) -> None:
        """Remove staging dirs left by dead processes (called under a bundle lock)."""
        for path in (self.root / "staging").iterdir():
            parts = path.name.split(".")
            try:
                pid = int(parts[1])
            except (IndexError, ValueError):
                pid = -1
            if pid == os.getpid() or (pid > 0 and _pid_alive(pid)):
                continue
            _remove_tree(path)

    # -- eviction ----------------------------------------------------------------------

    def _leased(self, name: str) -> bool:
        """Whether a live process holds a lease in ``leases/<name>`` (dead holders' leases are removed)."""
        folder = self.root / "leases" / name
        if not folder.is_dir():
            return False
        live = False
        for lease in folder.iterdir():
            try:
                pid = int(lease.name.split(".")[0])
            except ValueError:
                continue
            if _pid_alive(pid):
                live = True
            else:
                lease.unlink(missing_ok=True)
        return live

    def _items(self) -> list[tuple[float, str, int, str, Path]]:
        """(last use, id, size, lease/lock name, folder) of every bundle and environment."""
        rows = []
        for kind, folder_root, prefix in (("bundle", self.root / "entries" / "sha256", ""),
                                          ("env", self.root / "envs", "env-")):
            for folder in folder_root.iterdir():
                try:
                    size = int(json.loads((folder / "meta.json").read_text())["size"])
                    used = (folder / ".used").stat().st_mtime
                except (OSError, ValueError, KeyError):
                    continue
                ident = ("sha256:" if kind == "bundle" else "env sha256:") + folder.name
                rows.append((used, ident, size, prefix + folder.name, folder))
        return rows

    def total_size(self) -> int:
        """Bytes held by every bundle and environment."""
        return sum(row[2] for row in self._items())

    def evict(self, *, keep: set[str] = frozenset(), max_bytes: int | None = None) -> list[str]:  # type: ignore[assignment]
        """Evict least-recently-used bundles and environments until the cache fits ``max_bytes``.

        Skips ``keep`` (digests or environment keys), leased items and items
        whose lock is held. Returns the evicted ids (``sha256:...`` for a bundle,
        ``env sha256:...`` for an environment). Each eviction is one rename out of
        ``entries/`` or ``envs/``.
        """
        limit = self.max_bytes if max_bytes is None else max_bytes
        if limit is None:
            return []
        keep_hex = {digest_hex(k) for k in keep}
        with self._locked(self._lock("evict"), self.lock_timeout):
            rows = self._items()
            total = sum(r[2] for r in rows)
            evicted: list[str] = []
            for _, ident, size, name, folder in sorted(rows):
                if total <= limit:
                    break
                if folder.name in keep_hex or self._leased(name):
                    continue
                lock = self._lock(name)
                try:
                    lock.acquire(timeout=0)
                except CacheError:  # busy: a fetch or build holds it, so it is not evicted now
                    continue
                try:
                    if self._leased(name):
                        continue
                    self._move_to_trash(folder, name)
                    self._verified.discard("sha256:" + folder.name)
                finally:
                    lock.release()
                total -= size
                evicted.append(ident)
                log.info("evicted %s (%d bytes) from cache %s", ident, size, self.root)
            if total > limit:
                log.warning("bundle cache %s holds %d bytes over its %d-byte cap: the rest is in use", self.root,
                            total, limit)
            return evicted


def _environment_problem(folder: Path) -> str | None:
    """Why the environment in ``folder`` must not be used (its census differs from its meta.json), or ``None``."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        expected_size, expected_files = meta["size"], meta.get("files")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its meta.json is missing or unreadable ({exc})"
    size, files = _tree_census(folder / "venv")
    if size == expected_size and (expected_files is None or files == expected_files):
        return None
    return f"{files} files and {size} bytes, built with {expected_files} files and {expected_size} bytes"


def _tree_census(root: Path) -> tuple[int, int]:
    """(bytes, entries) of the files and links under ``root``, ``__pycache__`` directories left out."""
    total = count = 0
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_size
            count += 1
    return total, count


def _parse_meta(raw: bytes, digest: str) -> dict[str, Any]:
    """``meta.json`` of the entry for ``digest``, every key checked; raises :class:`_Broken` saying what is wrong."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise _Broken(f"its meta.json is not JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _Broken("its meta.json is not a JSON object")

    def need(key: str, ok: Callable[[Any], bool]) -> Any:
        if key not in meta:
            raise _Broken(f"its meta.json lacks {key!r}")
        if not ok(meta[key]):
            raise _Broken(f"its meta.json has a malformed {key!r}")
        return meta[key]

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    need("digest", lambda v: v == digest)
    need("size", is_int)
    need("repository", lambda v: isinstance(v, str))
    need("manifest", lambda v: isinstance(v, dict))
    need("files", lambda v: isinstance(v, dict) and all(
        isinstance(r, list) and len(r) == 3 and is_int(r[0]) and is_int(r[1]) and isinstance(r[2], str)
        for r in v.values()))
    need("links", lambda v: isinstance(v, dict) and all(isinstance(t, str) for t in v.values()))
    need("dirs", lambda v: isinstance(v, list) and all(isinstance(d, str) for d in v))
    need("wheels", lambda v: isinstance(v, list) and all(
        isinstance(w, dict) and isinstance(w.get("file"), str) and isinstance(w.get("digest"), str) for w in v))
    need("environment", lambda v: v is None or (isinstance(v, dict) and isinstance(v.get("key"), str)))
    manifest, problems = parse_manifest(json.dumps(meta["manifest"]).encode(), source="meta.json manifest")
    if manifest is None:
        raise _Broken("; ".join(problems))
    meta["_manifest"] = manifest
    return meta


def _check_files(entry: Path, meta: dict[str, Any], *, rehash: bool) -> str | None:
    """What differs between ``entry`` on disk and the record in its meta (``None`` if nothing does).

    A file whose size or mtime changed, or every file with ``rehash``, is
    hashed and compared with its recorded digest. ``__pycache__`` directories
    that Python wrote beside the sources are not part of the bundle, and skipped.
    """
    files: dict[str, list[Any]] = meta["files"]
    links: dict[str, str] = meta["links"]
    dirs = set(meta["dirs"])
    seen_files: set[str] = set()
    seen_links = 0
    pending = [top for top in ("tree", "wheels") if top in dirs or os.path.lexists(entry / top)]
    for top in pending:
        if os.path.islink(entry / top):
            return f"{top}/ was replaced by a symlink"
    while pending:
        rel_dir = pending.pop()
        if rel_dir not in dirs:
            return f"{rel_dir}/ was added"
        try:
            scan = list(os.scandir(entry / rel_dir))
        except NotADirectoryError:
            return f"{rel_dir}/ is no longer a directory"
        except FileNotFoundError:
            return f"{rel_dir}/ is missing"
        except OSError as exc:
            return f"{rel_dir}/ cannot be read ({exc.strerror})"
        for item in scan:
            rel = f"{rel_dir}/{item.name}"
            st = item.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if rel in dirs or item.name != _BYTECODE_DIR:
                    pending.append(rel)
            elif stat.S_ISLNK(st.st_mode):
                if links.get(rel) != os.readlink(item.path):
                    return f"{rel} was added or changed (a symlink)"
                seen_links += 1
            elif stat.S_ISREG(st.st_mode):
                record = files.get(rel)
                if record is None:
                    if _BYTECODE_DIR in rel.split("/"):
                        continue
                    return f"{rel} was added"
                seen_files.add(rel)
                size, mtime_ns, digest = record
                if rehash or st.st_size != size or st.st_mtime_ns != mtime_ns:
                    actual, _ = digest_file(Path(item.path))
                    if actual != digest:
                        return f"{rel} was modified (sha256 is now {actual}, recorded {digest})"
                    log.debug("bundle cache: %s/%s changed its stat but not its content", entry, rel)
            else:
                return f"{rel} is not a regular file, directory or symlink"
    if len(seen_files) != len(files):
        missing = sorted(set(files) - seen_files)
        return f"{missing[0]} is missing" + (f" (and {len(missing) - 1} more files)" if len(missing) > 1 else "")
    if seen_links != len(links):
        return "a recorded symlink is missing"
    return None


def _seal(stage: Path, digests: dict[str, str]) -> dict[str, Any]:
    """Make the tree and wheels in ``stage`` read-only and fsynced; return their record for ``meta.json``.

    ``digests`` (entry-relative path -> sha256) comes from extraction; a file
    not in it would be hashed here.
    """
    files: dict[str, list[Any]] = {}
    links: dict[str, str] = {}
    dirs: list[str] = []
    for top in ("tree", "wheels"):
        if not (stage / top).is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(stage / top, topdown=False):
            rel_dir = os.path.relpath(dirpath, stage)
            for name in (*filenames, *dirnames):
                full = os.path.join(dirpath, name)
                rel = f"{rel_dir}/{name}"
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    links[rel] = os.readlink(full)
                elif stat.S_ISREG(st.st_mode):
                    os.chmod(full, 0o555 if st.st_mode & 0o111 else 0o444)
                    files[rel] = [st.st_size, st.st_mtime_ns, digests.get(rel) or digest_file(Path(full))[0]]
            fsync_dir(Path(dirpath))
            os.chmod(dirpath, 0o555)
            dirs.append(rel_dir)
    return {"files": files, "links": links, "dirs": sorted(dirs)}
