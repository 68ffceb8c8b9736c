"""A stat-keyed memo of large-file digests, so re-packing an unchanged bundle does not re-hash it.

An entry is trusted only when path, size, inode and ``mtime_ns`` all match and
the file had not been modified in the 100 ms before the entry was recorded
(the "racy clean" rule git's index uses). Linux stamps mtimes from a coarse
clock (one tick, at most 10 ms behind), so a file rewritten after its digest
was recorded can never carry an mtime that far before the record, and is
always hashed again. The memo is an optimization only:
a missing, stale or corrupt memo file costs a re-hash, never a wrong digest
for a changed file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

from modelops_infra.bundles._digest import digest_file

__all__ = ["DigestMemo"]

_RACY_NS = 100_000_000


class DigestMemo:
    """Digests of files under one bundle root, persisted in ``<memo_dir>/<hash of root>.json``."""

    def __init__(self, memo_dir: Path, root: Path) -> None:
        self.path = memo_dir / (hashlib.sha256(str(root).encode()).hexdigest()[:32] + ".json")
        try:
            self._entries: dict[str, list[int | str]] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._entries = {}
        self._dirty = False

    def digest(self, file: Path) -> tuple[str, int]:
        st = file.stat()
        key = str(file)
        entry = self._entries.get(key)
        if entry is not None:
            size, ino, mtime_ns, recorded_ns, digest = entry
            if (size, ino, mtime_ns) == (st.st_size, st.st_ino, st.st_mtime_ns) and int(mtime_ns) < int(recorded_ns) - _RACY_NS:
                return str(digest), st.st_size
        digest, size = digest_file(file)
        self._entries[key] = [st.st_size, st.st_ino, st.st_mtime_ns, time.time_ns(), digest]
        self._dirty = True
        return digest, size

    def save(self) -> None:
        """Write the memo atomically; failures are ignored (it is only a cache)."""
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                json.dump(self._entries, fh)
            os.replace(tmp, self.path)
        except OSError:
            pass
