"""Which files of a bundle directory are packed (pure matching, one directory walk).

Always ignored: ``.git``, ``__pycache__``, ``.venv`` and ``*.pyc``. A ``.bundleignore``
file at the bundle root adds gitignore-style patterns: ``#`` comments, ``dir/``
matches directories only, a leading ``/`` anchors to the root, ``*``/``?``/``[]``
globs, and ``**`` spans directories. Negation (``!``) is not supported and is
reported as a validation problem.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["IGNORE_FILE", "IgnoreRules", "list_bundle_files"]

IGNORE_FILE = ".bundleignore"
_BUILTIN = (".git/", "__pycache__/", ".venv/", "*.pyc")


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
        path = root / IGNORE_FILE
        if not path.is_file():
            return cls([])
        lines = path.read_text(encoding="utf-8").splitlines()
        return cls([ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith(("#", "!"))])

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        return any(p.regex.match(rel) and (is_dir or not p.dir_only) for p in self._compiled)


def list_bundle_files(root: Path, rules: IgnoreRules | None = None) -> list[str]:
    """Sorted root-relative POSIX paths of the files to pack (symlinks, to files or directories, too)."""
    rules = rules or IgnoreRules.for_directory(root)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        kept = [d for d in dirnames if not rules.ignored(rel_dir + d, is_dir=True)]
        # os.walk lists a symlink to a directory among dirnames and never descends into it:
        # list it as an entry (packed as a link), or it would silently vanish from the bundle.
        links = [d for d in kept if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in kept if d not in links)
        out.extend(rel_dir + d for d in links)
        out.extend(rel_dir + f for f in filenames if not rules.ignored(rel_dir + f, is_dir=False))
    return sorted(out)
