"""Which files of a bundle directory are packed: the rules, and the one walk that applies them.

Always ignored: ``.git``, ``__pycache__``, ``.venv``, ``*.pyc``, and tool
directories (``.modelops``, ``.pytest_cache``, ``.mypy_cache``, ``.ruff_cache``,
``.hypothesis``, ``.tox``, ``.nox``, ``.ipynb_checkpoints``). A ``.bundleignore``
file at the bundle root adds gitignore-style patterns: ``#`` comments, ``dir/``
matches directories only, a leading ``/`` anchors to the root, ``*``/``?``/``[]``
globs, and ``**`` spans directories. Negation (``!``) is not supported and is
reported as a validation problem.

:func:`scan_bundle` is the one walk behind both ``validate`` and ``push``. It
never drops a file silently: an unreadable directory or file, a symlink that
leaves the bundle and a special file are problems that name the path. A bundle
cache (a directory holding ``entries/``, ``staging/``, ``locks/`` and
``leases/``) and the directories passed as ``exclude`` (the configured cache
and digest memo) are never packed.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from modelops_infra.errors import BundleValidationError

__all__ = ["IGNORE_FILE", "BundleFile", "BundleScan", "IgnoreRules", "list_bundle_files", "printable", "read_ignore_file",
           "scan_bundle"]

IGNORE_FILE = ".bundleignore"
_TOOL_DIRS = (".modelops/", ".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".hypothesis/", ".tox/", ".nox/",
              ".ipynb_checkpoints/")
_BUILTIN = (".git/", "__pycache__/", ".venv/", "*.pyc", *_TOOL_DIRS)
#: the subdirectories that mark a bundle cache root (see _cache)
_CACHE_MARKERS = frozenset({"entries", "staging", "locks", "leases"})


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    dir_only: bool


def _compile(pattern: str) -> _Pattern:
    dir_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    anchored = pattern.startswith("/") or "/" in pattern
    pattern = pattern.lstrip("/")
    parts = []
    for piece in re.split(r"(\*\*/?)", pattern):
        if piece in ("**", "**/"):
            parts.append("(?:.*/)?" if piece == "**/" else ".*")
        else:
            parts.append(fnmatch.translate(piece).removeprefix("(?s:").removesuffix(")\\Z").replace(".*", "[^/]*"))
    body = "".join(parts)
    prefix = "" if anchored else "(?:.*/)?"
    return _Pattern(re.compile(f"^{prefix}{body}$"), dir_only)


class IgnoreRules:
    """Compiled ignore patterns; :meth:`ignored` takes a root-relative POSIX path."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = list(patterns)
        self._compiled = [_compile(p) for p in (*_BUILTIN, *patterns)]

    @classmethod
    def for_directory(cls, root: Path) -> IgnoreRules:
        """The rules of ``root/.bundleignore``; raises :class:`BundleValidationError` if it is not UTF-8 text."""
        path = root / IGNORE_FILE
        if not path.is_file():
            return cls([])
        lines = read_ignore_file(path).splitlines()
        return cls([ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith(("#", "!"))])

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        return any(p.regex.match(rel) and (is_dir or not p.dir_only) for p in self._compiled)


def read_ignore_file(path: Path) -> str:
    """The text of an ignore file; :class:`BundleValidationError` naming it and the byte if not UTF-8."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise BundleValidationError(problem, problems=[problem]) from None


def printable(path: Path | str) -> str:
    """``path`` as text that can always be printed: bytes that are not UTF-8 shown as ``\\xff`` (pure)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class BundleFile:
    """One path to pack: a regular file or a symlink (``link`` is its target), with its ``lstat``."""

    rel: str
    path: Path
    st: os.stat_result
    link: str | None = None


@dataclass(frozen=True)
class BundleScan:
    """What :func:`scan_bundle` found: the files to pack, sorted, and every problem (naming its path)."""

    files: tuple[BundleFile, ...]
    problems: tuple[str, ...]


def scan_bundle(root: Path, rules: IgnoreRules | None = None, *, exclude: Sequence[Path] = ()) -> BundleScan:
    """Walk ``root`` once and apply the packing rules; reads no file content, opens each file once.

    Links are not followed; a link to a directory is packed as a link.
    """
    rules = rules or IgnoreRules.for_directory(root)
    skip = {os.path.realpath(p) for p in exclude}
    files: list[BundleFile] = []
    problems: list[str] = []

    def unreadable(exc: OSError) -> None:
        problems.append(f"{exc.filename}: directory cannot be read ({exc.strerror}); it would be left out")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        if rel_dir and (_CACHE_MARKERS <= set(dirnames) or os.path.realpath(dirpath) in skip):
            dirnames[:] = []  # a bundle cache or a tool's directory inside the bundle: never packed
            continue
        kept = [d for d in dirnames if not rules.ignored(rel_dir + d, is_dir=True)]
        dirnames[:] = []
        for name in sorted(kept):
            full = Path(dirpath, name)
            if full.is_symlink():  # os.walk never descends into it: pack it as a link
                _add(root, rel_dir + name, full, files, problems)
            else:
                dirnames.append(name)
        for name in filenames:
            if not rules.ignored(rel_dir + name, is_dir=False):
                _add(root, rel_dir + name, Path(dirpath, name), files, problems)
    return BundleScan(tuple(sorted(files, key=lambda f: f.rel)), tuple(problems))


def _add(root: Path, rel: str, full: Path, files: list[BundleFile], problems: list[str]) -> None:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:  # os.walk gave undecodable bytes as surrogates
        problems.append(f"{printable(full)}: the name is not UTF-8; paths in a bundle (tar headers, OCI"
                        " annotations) must be UTF-8, rename it or add it to .bundleignore")
        return
    try:
        st = full.lstat()
    except OSError as exc:
        problems.append(f"{full}: cannot be read ({exc.strerror})")
        return
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(full)
        if os.path.isabs(target) or not (full.parent / target).resolve().is_relative_to(root.resolve()):
            problems.append(f"{full}: symlink to {target!r} leaves the bundle")
            return
        files.append(BundleFile(rel, full, st, target))
    elif not stat.S_ISREG(st.st_mode):
        problems.append(f"{full}: not a regular file (devices, sockets and FIFOs cannot be packed)")
    else:
        try:
            os.close(os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
        except OSError as exc:
            problems.append(f"{full}: cannot be read ({exc.strerror})")
            return
        files.append(BundleFile(rel, full, st))


def list_bundle_files(root: Path, rules: IgnoreRules | None = None) -> list[str]:
    """Sorted root-relative POSIX paths of the files to pack (symlinks, to files or directories, too)."""
    return [f.rel for f in scan_bundle(root, rules).files]
