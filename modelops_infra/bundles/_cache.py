"""Content-addressed, verified, crash-safe local bundle cache.

Layout under the cache root (``MODELOPS_BUNDLE_CACHE_DIR``)::

    entries/sha256/<hex>/tree/...     a complete, verified, extracted bundle
    entries/sha256/<hex>/wheels/...   the bundle's wheels, if it ships them (verified blobs)
    entries/sha256/<hex>/meta.json    digest, repository, size, bundle manifest, environment key
    entries/sha256/<hex>/.used        mtime = last use (LRU clock)
    envs/<keyhex>/venv/...            a complete Python environment (see _envspec for the key)
    envs/<keyhex>/meta.json           key, size, source file
    envs/<keyhex>/.used               mtime = last use
    staging/<hex>.<pid>.<random>/     work in progress; never read by a fetch
    staging/env-<keyhex>.<pid>.<random>/  an environment being built
    locks/<hex>.lock                  one download per bundle per host
    locks/env-<keyhex>.lock           one build per environment per host
    leases/<hex>/<pid>.<token>        "a running process uses this bundle"
    leases/env-<keyhex>/<pid>.<token> "a running process uses this environment"

Contracts:

* **Atomic.** An entry appears by one ``rename`` of a fully written, fsynced
  staging directory, so a reader sees a whole bundle or none.
* **Verified.** Every manifest and blob is checked against its digest before it
  is extracted; on any error the staging directory is removed and no entry is
  created. Existing entries are never touched by a failed fetch.
* **One download per host.** Concurrent :meth:`BundleCache.ensure` calls for the
  same digest (threads or processes) serialize on a file lock; the first
  downloads, the rest find the entry.
* **Crash-safe.** A process killed mid-download leaves only a staging directory
  named with its pid, which later fetches ignore and sweep once the pid is dead.
* **Size cap.** With ``max_bytes`` set, least-recently-used entries -- bundles
  and environments alike -- are evicted after each download or build, except
  those with a live lease or a held lock.

Environments follow the same rules: built in staging, published by one rename,
one build per host (file lock), swept when their builder died, leased while used.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from modelops_infra.bundles._digest import digest_hex, validate_digest
from modelops_infra.bundles._envspec import PythonTarget, environment_key, find_environment
from modelops_infra.bundles._extract import ExtractBudget, extract_code_tar, place_file
from modelops_infra.bundles._manifest import BundleManifest, parse_manifest
from modelops_infra.bundles._oci import (
    ANNOTATION_FILE_MODE,
    ARTIFACT_TYPE,
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    WHEEL_LAYER_MEDIA_TYPE,
    is_wheel_filename,
    parse_oci_manifest,
)
from modelops_infra.bundles._registry import ProgressCallback, RegistryClient
from modelops_infra.bundles._streams import SyncedWriter, fsync_dir
from modelops_infra.errors import BundleValidationError, CacheError, IntegrityError, UnsafeArchiveError

__all__ = ["BundleCache", "Environment", "Lease", "LocalBundle"]

log = logging.getLogger(__name__)
ClientSource = RegistryClient | Callable[[], RegistryClient]


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class BundleCache:
    """The cache at ``root``. Safe to share between threads and processes on one host."""

    def __init__(self, root: Path | str, *, max_bytes: int | None = None,
                 max_extract_bytes: int = 8 * 1024**3, lock_timeout: float = 900.0) -> None:
        self.root = Path(root).expanduser()
        self.max_bytes = max_bytes
        self.max_extract_bytes = max_extract_bytes
        self.lock_timeout = lock_timeout
        try:
            for sub in ("entries/sha256", "envs", "staging", "locks", "leases"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"bundle cache {self.root} cannot be created ({exc})",
                             hint="set MODELOPS_BUNDLE_CACHE_DIR to a writable directory") from exc

    # -- paths -------------------------------------------------------------------------

    def entry_dir(self, digest: str) -> Path:
        return self.root / "entries" / "sha256" / digest_hex(digest)

    def _lock(self, digest: str) -> FileLock:
        return FileLock(str(self.root / "locks" / f"{digest_hex(digest)}.lock"))

    # -- reading -----------------------------------------------------------------------

    def get(self, digest: str) -> LocalBundle | None:
        """The cached bundle, or ``None``. Marks it used (LRU)."""
        entry = self.entry_dir(validate_digest(digest))
        try:
            meta = json.loads((entry / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CacheError(f"bundle cache entry {entry} is unreadable ({exc})",
                             hint=f"remove {entry} and fetch again") from exc
        try:
            os.utime(entry / ".used")
        except FileNotFoundError:
            (entry / ".used").touch()
        manifest, _ = parse_manifest(json.dumps(meta["manifest"]).encode())
        assert manifest is not None
        wheels = tuple(w["digest"] for w in meta.get("wheels", []))
        if "environment" in meta:
            env_key = (meta["environment"] or {}).get("key")
        else:  # an entry cached before environments existed: derive the key from its tree
            spec, _ = find_environment(entry / "tree")
            env_key = environment_key(spec, PythonTarget.current(), wheels) if spec else None
        return LocalBundle(digest, entry / "tree", manifest, int(meta["size"]), meta.get("repository", ""),
                           env_key, wheels)

    def entries(self) -> list[str]:
        return sorted("sha256:" + p.name for p in (self.root / "entries" / "sha256").iterdir()
                      if (p / "meta.json").exists())

    # -- fetching ----------------------------------------------------------------------

    def ensure(self, repository: str, digest: str, *, client: ClientSource,
               progress: ProgressCallback | None = None, lease: bool = False) -> tuple[LocalBundle, Lease | None]:
        """Return the bundle, downloading and verifying it first if needed.

        ``client`` may be a factory, called only on a miss. With ``lease=True``
        a :class:`Lease` is taken under the bundle's lock, so the bundle cannot
        be evicted between the fetch and its use.

        Raises :class:`IntegrityError`, :class:`UnsafeArchiveError`,
        :class:`~modelops_infra.errors.RegistryError` or :class:`CacheError`;
        on any of them nothing is added to the cache.
        """
        validate_digest(digest)
        found = self.get(digest)
        if found is not None and not lease:
            return found, None
        lock = self._lock(digest)
        try:
            lock.acquire(timeout=self.lock_timeout)
        except Timeout as exc:
            raise CacheError(f"timed out after {self.lock_timeout:.0f} s waiting for {lock.lock_file}",
                             hint="another process is downloading this bundle, or hung holding the lock") from exc
        try:
            found = self.get(digest)
            if found is None:
                self._sweep_staging()
                found = self._download(repository, digest, client() if callable(client) else client, progress)
            taken = self._take_lease(digest) if lease else None
        finally:
            lock.release()
        if found is not None:
            self._evict_after_fetch(digest)
        return found, taken

    def _evict_after_fetch(self, keep: str) -> None:
        """Bring the cache under its cap; best effort, so a busy evictor never costs the caller its lease."""
        if self.max_bytes is None:
            return
        try:
            self.evict(keep={keep})
        except (Timeout, OSError) as exc:
            log.warning("bundle cache %s: eviction skipped (%s); the cache may stay over its cap until the next"
                        " fetch", self.root, exc)

    def _take_lease(self, digest: str) -> Lease:
        return self._lease_in(digest_hex(digest))

    def _lease_in(self, name: str) -> Lease:
        folder = self.root / "leases" / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{os.getpid()}.{secrets.token_hex(4)}"
        path.touch()
        return Lease(path)

    # -- environments ------------------------------------------------------------------

    def environment_dir(self, key: str) -> Path:
        return self.root / "envs" / digest_hex(key)

    def environment(self, key: str) -> Environment | None:
        """The built environment with ``key``, or ``None``. Marks it used (LRU)."""
        folder = self.environment_dir(validate_digest(key))
        try:
            meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CacheError(f"environment {folder} is unreadable ({exc})", hint=f"remove {folder}") from exc
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
        lock = FileLock(str(self.root / "locks" / f"env-{hexkey}.lock"))
        wait = self.lock_timeout if lock_timeout is None else lock_timeout
        try:
            lock.acquire(timeout=wait)
        except Timeout as exc:
            raise CacheError(f"timed out after {wait:.0f} s waiting for {lock.lock_file}",
                             hint="another process is building this environment, or hung holding the lock") from exc
        try:
            found = self.environment(key)
            if found is None:
                self._sweep_staging()
                found = self._build_environment(key, build, describe or {})
            taken = self._lease_in(f"env-{hexkey}")
        finally:
            lock.release()
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
            size = _tree_size(stage / "venv")
            meta = {"key": key, "size": size, "built_at": time.time(), "seconds": time.perf_counter() - start,
                    **describe}
            with open(stage / "meta.json", "w", encoding="utf-8") as fh:
                json.dump(meta, fh)
                fh.flush()
                os.fsync(fh.fileno())
            (stage / ".used").touch()
            fsync_dir(stage)
            final = self.environment_dir(key)
            os.rename(stage, final)
            fsync_dir(final.parent)
        except OSError as exc:
            shutil.rmtree(stage, ignore_errors=True)
            raise CacheError(f"environment {key} cannot be written under {self.root} ({exc.strerror or exc})",
                             hint="check the cache directory's free space and permissions") from exc
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        log.info("built environment %s (%d bytes) in %.1f s", key, size, meta["seconds"])
        return Environment(key, final / "venv", size)

    def _download(self, repository: str, digest: str, client: RegistryClient,
                  progress: ProgressCallback | None) -> LocalBundle:
        stage = self.root / "staging" / f"{digest_hex(digest)}.{os.getpid()}.{secrets.token_hex(4)}"
        stage.mkdir()
        try:
            raw, _ = client.get_manifest(repository, digest)
            try:
                parsed = parse_oci_manifest(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                raise IntegrityError(f"{repository}@{digest} is not a valid OCI manifest ({exc})") from exc
            if parsed.artifact_type not in (None, ARTIFACT_TYPE) or parsed.config.media_type != CONFIG_MEDIA_TYPE:
                raise IntegrityError(
                    f"{repository}@{digest} is not a modelops bundle (artifactType {parsed.artifact_type!r},"
                    f" config {parsed.config.media_type!r})"
                )
            config_path = stage / "config.json"
            with open(config_path, "wb") as out:
                client.download_blob(repository, parsed.config.digest, parsed.config.size, out)
            manifest, problems = parse_manifest(config_path.read_bytes(), source=f"{repository}@{digest} config")
            if manifest is None:
                raise IntegrityError("; ".join(problems))
            tree = stage / "tree"
            tree.mkdir()
            blobs = stage / "blobs"
            blobs.mkdir()
            wheels: list[dict[str, str]] = []
            budget = ExtractBudget(self.max_extract_bytes)
            size = 0
            for layer in parsed.layers:
                budget.charge(0, layer.title or layer.digest)
                if layer.size > self.max_extract_bytes:
                    raise UnsafeArchiveError(
                        f"refused entry {layer.title or layer.digest!r}: {layer.size} bytes exceeds the extraction"
                        f" limit of {self.max_extract_bytes} bytes", entry=layer.title)
                blob_path = blobs / digest_hex(validate_digest(layer.digest))
                sink = SyncedWriter(blob_path)
                try:
                    client.download_blob(repository, layer.digest, layer.size, sink, progress)
                finally:
                    sink.close()
                size += layer.size
                if layer.media_type == CODE_LAYER_MEDIA_TYPE:
                    with open(blob_path, "rb") as fh:
                        extract_code_tar(fh, tree, budget)
                    blob_path.unlink()
                elif layer.media_type == WHEEL_LAYER_MEDIA_TYPE:
                    if not layer.title or not is_wheel_filename(layer.title):
                        raise UnsafeArchiveError(f"refused entry {layer.title or layer.digest!r}: a wheel layer"
                                                 " needs a wheel file name as its title", entry=layer.title)
                    (stage / "wheels").mkdir(exist_ok=True)
                    if (stage / "wheels" / layer.title).exists():
                        raise UnsafeArchiveError(f"refused entry {layer.title!r}: two wheel layers share this name",
                                                 entry=layer.title)
                    os.rename(blob_path, stage / "wheels" / layer.title)
                    wheels.append({"file": layer.title, "digest": layer.digest})
                elif layer.media_type == FILE_LAYER_MEDIA_TYPE:
                    if not layer.title:
                        raise UnsafeArchiveError(f"refused entry {layer.digest}: file layer has no title annotation")
                    mode = int(layer.annotations.get(ANNOTATION_FILE_MODE, "0644"), 8)
                    place_file(blob_path, tree, layer.title, mode, budget)
                else:
                    raise UnsafeArchiveError(f"refused entry {layer.digest}: unknown layer media type {layer.media_type!r}")
            shutil.rmtree(blobs)
            config_path.unlink()
            spec, env_problems = find_environment(tree)
            if env_problems:
                raise BundleValidationError(f"bundle {digest} declares an invalid environment: "
                                            + "; ".join(env_problems), problems=env_problems)
            env_key = environment_key(spec, PythonTarget.current(), [w["digest"] for w in wheels]) if spec else None
            meta = {"digest": digest, "repository": repository, "size": size, "manifest": manifest.to_dict(),
                    "fetched_at": time.time(), "wheels": wheels,
                    "environment": None if spec is None else {"key": env_key, "file": spec.source, "kind": spec.kind}}
            with open(stage / "meta.json", "w", encoding="utf-8") as fh:
                json.dump(meta, fh)
                fh.flush()
                os.fsync(fh.fileno())
            (stage / ".used").touch()
            for dirpath, _, _ in os.walk(tree):
                fsync_dir(Path(dirpath))
            fsync_dir(stage)
            final = self.entry_dir(digest)
            os.rename(stage, final)
            fsync_dir(final.parent)
            log.info("cached bundle %s (%d bytes) from %s/%s", digest, size, client.registry, repository)
            return LocalBundle(digest, final / "tree", manifest, size, repository, env_key,
                               tuple(w["digest"] for w in wheels))
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise

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
            shutil.rmtree(path, ignore_errors=True)

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
        with FileLock(str(self.root / "locks" / "evict.lock"), timeout=self.lock_timeout):
            rows = self._items()
            total = sum(r[2] for r in rows)
            evicted: list[str] = []
            for _, ident, size, name, folder in sorted(rows):
                if total <= limit:
                    break
                if folder.name in keep_hex or self._leased(name):
                    continue
                lock = FileLock(str(self.root / "locks" / f"{name}.lock"))
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                try:
                    if self._leased(name):
                        continue
                    # pid 0 in the trash name: _sweep_staging treats it as a dead owner, so a crash
                    # between this rename and the rmtree is cleaned up by the next sweep.
                    trash = self.root / "staging" / f"evict-{name}.0.{secrets.token_hex(4)}"
                    os.rename(folder, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                finally:
                    lock.release()
                total -= size
                evicted.append(ident)
                log.info("evicted %s (%d bytes) from cache %s", ident, size, self.root)
            if total > limit:
                log.warning("bundle cache %s holds %d bytes over its %d-byte cap: the rest is in use", self.root,
                            total, limit)
            return evicted


def _tree_size(root: Path) -> int:
    """Bytes of the regular files under ``root`` (links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += st.st_size
    return total
