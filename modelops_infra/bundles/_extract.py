"""Safe extraction of bundle layers into a directory.

Every path is resolved against the staging root one component at a time with
directory file descriptors (``openat`` with ``O_DIRECTORY | O_NOFOLLOW``), so
nothing -- not even an empty directory, not even for a moment -- is created
outside the root: a member whose directory is a symlink is refused before
anything is made, whatever the link points at. Files are created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` relative to their directory's descriptor,
file blobs are hard-linked in (``linkat`` never replaces or follows the target
name), and links are created with ``symlinkat``.

Refuses, naming the entry (:class:`UnsafeArchiveError`): absolute paths, ``..``
components, a path through a symlink, symlinks or hardlinks whose target leaves
the bundle, device files, FIFOs and other special entries, duplicate paths, a
file and then a directory of the same name, names the file system refuses
(overlong, say), and archives whose total size exceeds the limit. A failure of
the disk itself (full, read-only, no permission) is a :class:`CacheError`
naming the entry and the cause.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
import tarfile
from pathlib import Path
from typing import IO, BinaryIO

from modelops_infra.errors import CacheError, UnsafeArchiveError

__all__ = ["ExtractBudget", "TreeWriter", "check_member_path", "extract_code_tar", "place_file"]

_CHUNK = 1 << 20
#: the disk's fault, not the archive's: reported as CacheError
_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO})
_MAX_LINK_HOPS = 40  # as Linux's MAXSYMLINKS


class ExtractBudget:
    """Bytes still allowed to be written into one bundle."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def charge(self, size: int, entry: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise UnsafeArchiveError(
                f"refused entry {entry!r}: bundle content exceeds the extraction limit of {self.limit} bytes",
                hint="raise MODELOPS_BUNDLE_MAX_EXTRACT_BYTES if this bundle is legitimately this large",
                entry=entry,
            )


def check_member_path(name: str) -> str:
    """Normalize a member name to a safe root-relative POSIX path, or raise naming it."""
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name or "\x00" in name:
        raise UnsafeArchiveError(f"refused entry {name!r}: absolute or malformed path", entry=name)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise UnsafeArchiveError(f"refused entry {name!r}: path escapes the bundle ('..')", entry=name)
    return "/".join(parts)


def _refuse(rel: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"refused entry {rel!r}: {why}", entry=rel)


def _os_failure(rel: str, where: str, exc: OSError) -> UnsafeArchiveError | CacheError:
    """An OSError while writing ``rel``: the disk's fault (CacheError) or the archive's (UnsafeArchiveError)."""
    cause = exc.strerror or str(exc)
    if exc.errno in _DISK_ERRNOS:
        return CacheError(f"cannot write entry {rel!r} under {where} ({cause})",
                          hint="check the cache directory's free space and permissions", entry=rel)
    return _refuse(rel, f"cannot be created ({cause})")


def _open_subdir(dir_fd: int, name: str) -> int:
    return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)


class TreeWriter:
    """Writes one bundle tree under ``dest`` (which must exist), holding a descriptor of it.

    ``digests`` maps every regular file written to its ``sha256:`` digest, so
    the cache can record it without reading the tree again. Use as a context
    manager, or call :meth:`close`.
    """

    def __init__(self, dest: Path, budget: ExtractBudget) -> None:
        self.dest = dest
        self.budget = budget
        self.digests: dict[str, str] = {}
        self.links: dict[str, str] = {}
        self._root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def close(self) -> None:
        if self._root >= 0:
            os.close(self._root)
            self._root = -1

    def __enter__(self) -> TreeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- walking ---------------------------------------------------------------------

    def _open_dir(self, rel: str, parts: list[str], *, create: bool) -> int:
        """A new descriptor of directory ``parts`` below the root, made if ``create``; never follows a link."""
        fd = os.dup(self._root)
        try:
            for i, part in enumerate(parts):
                prefix = "/".join(parts[:i + 1])
                try:
                    nxt = _open_subdir(fd, part)
                except FileNotFoundError:
                    if not create:
                        raise _refuse(rel, f"{prefix!r} does not exist") from None
                    try:
                        os.mkdir(part, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass  # made meanwhile; the open below checks what it is
                    except OSError as exc:
                        raise _os_failure(rel, str(self.dest), exc) from exc
                    try:
                        nxt = _open_subdir(fd, part)
                    except OSError as exc:
                        raise self._not_a_directory(rel, prefix, fd, part, exc) from exc
                except OSError as exc:
                    raise self._not_a_directory(rel, prefix, fd, part, exc) from exc
                os.close(fd)
                fd = nxt
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _not_a_directory(self, rel: str, prefix: str, dir_fd: int, name: str, exc: OSError
                         ) -> UnsafeArchiveError | CacheError:
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except OSError:
            return _os_failure(rel, str(self.dest), exc)
        if stat.S_ISLNK(mode):
            return _refuse(rel, f"its directory {prefix!r} is a symlink (paths are never followed through links)")
        if not stat.S_ISDIR(mode):
            return _refuse(rel, f"{prefix!r} is already a file, not a directory")
        return _os_failure(rel, str(self.dest), exc)

    def _parent(self, rel: str) -> tuple[int, str]:
        *dirs, name = rel.split("/")
        return self._open_dir(rel, dirs, create=True), name

    # -- writing ---------------------------------------------------------------------

    def mkdir(self, rel: str) -> None:
        os.close(self._open_dir(rel, rel.split("/"), create=True))

    def write(self, rel: str, src: IO[bytes], mode: int) -> None:
        """Create regular file ``rel`` from ``src`` (``0755`` if ``mode`` has an x bit, else ``0644``), fsynced."""
        parent, name = self._parent(rel)
        try:
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                             dir_fd=parent)
            except FileExistsError:
                raise _refuse(rel, "duplicate path") from None
            except OSError as exc:
                raise _os_failure(rel, str(self.dest), exc) from exc
            digest = hashlib.sha256()
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fchmod(out.fileno(), 0o755 if mode & 0o111 else 0o644)
                    os.fsync(out.fileno())
            except OSError as exc:
                raise _os_failure(rel, str(self.dest), exc) from exc
        finally:
            os.close(parent)
        self.digests[rel] = "sha256:" + digest.hexdigest()

    def symlink(self, rel: str, link: str) -> None:
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
        if not link or link.startswith("/") or "\x00" in link or resolved == ".." or resolved.startswith("../"):
            raise _refuse(rel, f"symlink to {link!r} leaves the bundle")
        parent, name = self._parent(rel)
        try:
            os.symlink(link, name, dir_fd=parent)
        except FileExistsError:
            raise _refuse(rel, "duplicate path") from None
        except OSError as exc:
            raise _os_failure(rel, str(self.dest), exc) from exc
        finally:
            os.close(parent)
        self.links[rel] = link

    def hardlink(self, rel: str, linkname: str) -> None:
        """Write ``rel`` as a copy of regular file ``linkname``, found without following any link."""
        try:
            source_rel = check_member_path(linkname)
        except UnsafeArchiveError:
            raise _refuse(rel, f"hardlink to {linkname!r} leaves the bundle") from None
        *dirs, name = source_rel.split("/")
        try:
            parent = self._open_dir(rel, dirs, create=False)
        except UnsafeArchiveError:
            raise _refuse(rel, f"hardlink to {linkname!r} does not name a file of the bundle") from None
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError:
            raise _refuse(rel, f"hardlink to {linkname!r} does not name a file of the bundle") from None
        finally:
            os.close(parent)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise _refuse(rel, f"hardlink to {linkname!r} does not name a file of the bundle")
        with os.fdopen(fd, "rb") as src:
            self.budget.charge(st.st_size, rel)
            self.write(rel, src, st.st_mode)

    def place(self, blob: Path, rel: str, mode: int, digest: str | None = None) -> None:
        """Move the (verified, fsynced, same file system) ``blob`` to ``rel``; never replaces anything."""
        parent, name = self._parent(rel)
        try:
            os.chmod(blob, 0o755 if mode & 0o111 else 0o644)
            os.link(blob, name, dst_dir_fd=parent)
        except FileExistsError:
            raise _refuse(rel, "duplicate path") from None
        except OSError as exc:
            raise _os_failure(rel, str(self.dest), exc) from exc
        finally:
            os.close(parent)
        os.unlink(blob)
        if digest is not None:
            self.digests[rel] = digest

    # -- links, once the tree is complete ----------------------------------------------

    def _resolve(self, rel: str) -> str | None:
        """Where ``rel`` leads, following links inside the tree only; ``None`` if it climbs out."""
        pending = rel.split("/")
        done: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not done:
                    return None
                done.pop()
                continue
            here = "/".join([*done, part])
            try:
                parent = self._open_dir(rel, done, create=False)
            except UnsafeArchiveError:
                done.append(part)  # a dangling path stays dangling, inside
                continue
            try:
                target = os.readlink(part, dir_fd=parent)
            except OSError:
                target = None  # not a link (or absent): keep walking lexically
            finally:
                os.close(parent)
            if target is None:
                done.append(part)
                continue
            hops += 1
            if hops > _MAX_LINK_HOPS:
                raise _refuse(rel, f"symlink to {self.links.get(rel)!r} cannot be resolved (a loop at {here!r})")
            if target.startswith("/"):
                return None
            pending = target.split("/") + pending
        return "/".join(done)

    def check_links(self) -> None:
        """Refuse any symlink that climbs out through another (``d/l -> ..``, then ``l2 -> d/l/..``)."""
        for rel, link in self.links.items():
            if self._resolve(rel) is None:
                raise _refuse(rel, f"symlink to {link!r} resolves outside the bundle")


def extract_code_tar(fileobj: BinaryIO, dest: Path, budget: ExtractBudget, *,
                     writer: TreeWriter | None = None) -> list[str]:
    """Extract the code layer tar from ``fileobj`` into ``dest``; returns the paths written.

    Pass a ``writer`` to collect file digests (``writer.digests``); otherwise one is opened on ``dest``.
    """
    own = writer is None
    tree = writer or TreeWriter(dest, budget)
    written: list[str] = []
    try:
        try:
            tar = tarfile.open(fileobj=fileobj, mode="r:")
        except tarfile.TarError as exc:
            raise UnsafeArchiveError(f"code layer is not a tar archive ({exc})") from exc
        with tar:
            try:
                for member in tar:
                    rel = check_member_path(member.name)
                    if member.isdir():
                        tree.mkdir(rel)
                        continue
                    if member.isreg():
                        budget.charge(member.size, rel)
                        src = tar.extractfile(member)
                        assert src is not None
                        tree.write(rel, src, member.mode)
                    elif member.issym():
                        tree.symlink(rel, member.linkname)
                    elif member.islnk():
                        tree.hardlink(rel, member.linkname)
                    else:
                        kind = ("device file" if member.ischr() or member.isblk() else "FIFO" if member.isfifo()
                                else "special entry")
                        raise _refuse(rel, f"{kind} not allowed in a bundle")
                    written.append(rel)
            except tarfile.TarError as exc:
                after = f" after entry {written[-1]!r}" if written else ""
                raise UnsafeArchiveError(f"code layer is a damaged tar archive{after} ({exc})",
                                         entry=written[-1] if written else None) from exc
        tree.check_links()
    finally:
        if own:
            tree.close()
    return written


def place_file(blob_path: Path, dest: Path, title: str, mode: int, budget: ExtractBudget, *,
               writer: TreeWriter | None = None, digest: str | None = None) -> str:
    """Move a verified file blob (already fsynced, on the same file system) to the path its title gives."""
    rel = check_member_path(title)
    budget.charge(blob_path.stat().st_size, rel)
    own = writer is None
    tree = writer or TreeWriter(dest, budget)
    try:
        tree.place(blob_path, rel, mode, digest)
    finally:
        if own:
            tree.close()
    return rel
