"""A file lock that says who holds it: waiters log whom they wait for, and time out naming the holder.

``filelock.FileLock`` alone makes a waiter wait in silence and then fail with
"timed out waiting for <file>". :class:`HolderLock` records the holder (pid,
host, program, since when) beside the lock file when it acquires, so that

* a waiter logs, at INFO every ``report_every`` seconds, whom it is waiting for;
* a waiter that gives up raises :class:`~modelops_infra.errors.CacheError`
  naming the lock file and its holder, and whether that process still runs.

The lock itself is still the operating system's (``flock`` through
``filelock``): it is released when its holder exits, however it exits. The
holder file is only a description, and a stale one is harmless: the next
holder overwrites it.

>>> from pathlib import Path; import tempfile
>>> lock = HolderLock(Path(tempfile.mkdtemp()) / "x.lock", timeout=1)
>>> with lock: print(lock.holder() is not None)
True
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from modelops_infra.errors import CacheError

__all__ = ["HolderLock", "LockHolder"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    program: str
    since: float

    def running(self) -> bool | None:
        """Whether the holder still runs (``None``: on another host, so unknown)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self, now: float | None = None) -> str:
        held = (now if now is not None else time.time()) - self.since
        state = {True: "", False: ", no longer running", None: ""}[self.running()]
        return f"pid {self.pid} ({self.program}) on {self.host}, holding it for {held:.0f} s{state}"


class HolderLock:
    """An inter-process lock on ``path`` that records its holder in ``<path>.holder``.

    ``timeout`` bounds :meth:`acquire`; on expiry it raises :class:`CacheError`
    naming the holder. Re-entrant within a thread, like ``FileLock``.
    """

    def __init__(self, path: Path | str, *, timeout: float, report_every: float = 30.0) -> None:
        self.path = Path(path)
        self.holder_path = self.path.with_name(self.path.name + ".holder")
        self.timeout = timeout
        self.report_every = report_every
        self._lock = FileLock(str(self.path))

    def holder(self) -> LockHolder | None:
        """The recorded holder, or ``None`` when there is no (readable) record."""
        try:
            data = json.loads(self.holder_path.read_text(encoding="utf-8"))
            return LockHolder(int(data["pid"]), str(data["host"]), str(data["program"]), float(data["since"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _describe_holder(self) -> str:
        found = self.holder()
        return found.describe() if found is not None else "a process that left no record"

    def acquire(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` (default: the lock's) seconds for the lock. Raises :class:`CacheError` naming the holder.

        ``timeout=0`` tries once, for callers such as eviction that skip a busy entry.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            remaining = deadline - time.monotonic()
            try:
                self._lock.acquire(timeout=max(0.0, min(remaining, self.report_every)))
                break
            except Timeout:
                if time.monotonic() >= deadline:
                    raise CacheError(
                        f"timed out after {limit:.0f} s waiting for {self.path}, held by"
                        f" {self._describe_holder()}",
                        hint="another process is downloading this bundle; if it hung, stop it and retry",
                    ) from None
                log.info("waiting for %s, held by %s", self.path, self._describe_holder())
            except OSError as exc:
                raise CacheError(f"cannot lock {self.path} ({exc.strerror or exc})",
                                 hint="the cache's locks/ directory must be writable") from exc
        if self._lock.lock_counter == 1:
            self._record()

    def _record(self) -> None:
        data = {"pid": os.getpid(), "host": socket.gethostname(), "program": os.path.basename(sys.argv[0] or "python"),
                "since": time.time()}
        tmp = self.holder_path.with_name(f"{self.holder_path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(data), encoding="utf-8")
            os.replace(tmp, self.holder_path)
        except OSError as exc:  # the record is a courtesy to waiters; the lock itself is held
            log.debug("cannot record the holder of %s: %s", self.path, exc)

    def release(self) -> None:
        self._lock.release()

    @property
    def is_locked(self) -> bool:
        return self._lock.is_locked

    def __enter__(self) -> HolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
