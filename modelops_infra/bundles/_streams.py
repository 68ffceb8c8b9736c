"""Streaming helpers for blob transfers: hashing and durable writes that overlap the network.

Both run their work on a helper thread; ``hashlib`` and file writes release the
GIL, so a download's socket reads, hashing and disk writeback proceed together.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from pathlib import Path

from modelops_infra.errors import CacheError

__all__ = ["BackgroundHash", "SyncedWriter", "fsync_dir"]


class BackgroundHash:
    """SHA-256 computed on a helper thread (hashlib releases the GIL), overlapping socket reads."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, name="modelops-blob-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._h.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self._queue.put(None)
        self._thread.join()
        return self._h.hexdigest()


class SyncedWriter:
    """Writes a file on a background thread, flushing to disk as it goes, so that disk
    writeback overlaps the network transfer and hashing instead of following them.

    ``close()`` waits for the writer, fsyncs and re-raises any write error.
    """

    _SYNC_EVERY = 32 << 20

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "wb")
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=64)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="modelops-blob-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = 0
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue
            try:
                self._fh.write(chunk)
                pending += len(chunk)
                if pending >= self._SYNC_EVERY:
                    self._fh.flush()
                    os.fdatasync(self._fh.fileno())
                    pending = 0
            except BaseException as exc:  # surfaced by close()
                self._error = exc

    def write(self, chunk: bytes) -> int:
        if self._error is not None:
            raise CacheError(f"writing {self._fh.name} failed ({self._error})") from self._error
        self._queue.put(chunk)
        return len(chunk)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        try:
            if self._error is None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
        finally:
            self._fh.close()
        if self._error is not None:
            raise CacheError(f"writing {self._fh.name} failed ({self._error})") from self._error


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
