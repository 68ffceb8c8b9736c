"""Safe extraction of bundle layers into a directory.

Refuses, naming the entry: absolute paths, ``..`` components, symlinks or
hardlinks whose target leaves the bundle, device files, FIFOs and other special
entries, and archives whose total size exceeds the limit. Files are created with
``O_EXCL | O_NOFOLLOW`` so that nothing is written through a link, and fsynced.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
from pathlib import Path
from typing import IO, BinaryIO

from modelops_infra.errors import UnsafeArchiveError

__all__ = ["ExtractBudget", "check_member_path", "extract_code_tar", "place_file"]


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


def _inside(root: Path, path: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _parent_ok(root: Path, rel: str) -> Path:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if not _inside(root, target.parent.resolve()):
        raise UnsafeArchiveError(f"refused entry {rel!r}: its directory resolves outside the bundle", entry=rel)
    return target


def _write(target: Path, src: IO[bytes], mode: int) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(target, 0o755 if mode & 0o111 else 0o644)


def extract_code_tar(fileobj: BinaryIO, dest: Path, budget: ExtractBudget) -> list[str]:
    """Extract the code layer tar from ``fileobj`` into ``dest``; returns the paths written."""
    root = dest.resolve()
    written: list[str] = []
    links: dict[str, str] = {}
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:")
    except tarfile.TarError as exc:
        raise UnsafeArchiveError(f"code layer is not a tar archive ({exc})") from exc
    with tar:
        for member in tar:
            rel = check_member_path(member.name)
            if member.isdir():
                target = _parent_ok(root, rel + "/.")
                continue
            if member.isreg():
                budget.charge(member.size, rel)
                target = _parent_ok(root, rel)
                src = tar.extractfile(member)
                assert src is not None
                try:
                    _write(target, src, member.mode)
                except FileExistsError as exc:
                    raise UnsafeArchiveError(f"refused entry {rel!r}: duplicate path", entry=rel) from exc
            elif member.issym():
                link = member.linkname
                resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
                if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                    raise UnsafeArchiveError(
                        f"refused entry {rel!r}: symlink to {link!r} leaves the bundle", entry=rel
                    )
                target = _parent_ok(root, rel)
                os.symlink(link, target)
                links[rel] = link
            elif member.islnk():
                try:
                    source_rel = check_member_path(member.linkname)
                except UnsafeArchiveError as exc:
                    raise UnsafeArchiveError(
                        f"refused entry {rel!r}: hardlink to {member.linkname!r} leaves the bundle", entry=rel
                    ) from exc
                source = (root / source_rel).resolve()
                if not _inside(root, source) or not source.is_file():
                    raise UnsafeArchiveError(
                        f"refused entry {rel!r}: hardlink to {member.linkname!r} leaves the bundle", entry=rel
                    )
                budget.charge(source.stat().st_size, rel)
                with open(source, "rb") as src_fh:
                    _write(_parent_ok(root, rel), src_fh, source.stat().st_mode)
            else:
                kind = "device file" if member.ischr() or member.isblk() else "FIFO" if member.isfifo() else "special entry"
                raise UnsafeArchiveError(f"refused entry {rel!r}: {kind} not allowed in a bundle", entry=rel)
            written.append(rel)
    # The textual check above cannot see a link that climbs out through another link
    # ("d/l" -> "..", then "l2" -> "d/l/.."), so resolve every link against the finished tree.
    for rel, link in links.items():
        try:
            final = (root / rel).resolve()
        except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
            raise UnsafeArchiveError(f"refused entry {rel!r}: symlink to {link!r} cannot be resolved ({exc})",
                                     entry=rel) from exc
        if not _inside(root, final):
            raise UnsafeArchiveError(f"refused entry {rel!r}: symlink to {link!r} resolves outside the bundle", entry=rel)
    return written


def place_file(blob_path: Path, dest: Path, title: str, mode: int, budget: ExtractBudget) -> str:
    """Move a verified file blob (already fsynced, on the same filesystem) to the path its title gives."""
    rel = check_member_path(title)
    budget.charge(blob_path.stat().st_size, rel)
    target = _parent_ok(dest.resolve(), rel)
    if os.path.lexists(target):
        raise UnsafeArchiveError(f"refused entry {rel!r}: duplicate path", entry=rel)
    os.chmod(blob_path, 0o755 if mode & 0o111 else 0o644)
    os.rename(blob_path, target)
    return rel
