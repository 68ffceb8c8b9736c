"""Detached local processes: start, identify, probe and stop (no Pulumi here).

A process is identified by ``(pid, start_time)`` -- the start time from
``/proc/<pid>/stat`` -- so a recycled pid is never mistaken for ours and never
killed. Processes start in their own session with stdin closed and output to a
log file, so they outlive the ``pulumi up`` that created them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessHandle", "port_in_use", "spawn_detached", "tail", "wait_until"]


def _start_time(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may hold spaces, so split after ')'.
    fields = raw.rsplit(")", 1)[1].split()
    state = fields[0]
    if state in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass(frozen=True)
class ProcessHandle:
    pid: int
    start_time: int

    def alive(self) -> bool:
        return _start_time(self.pid) == self.start_time

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL after ``timeout``. Idempotent."""
        if not self.alive():
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                return
            except PermissionError:
                os.kill(self.pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self.alive():
                    return
                time.sleep(0.05)


def spawn_detached(argv: Sequence[str], *, log: Path, env: Mapping[str, str] | None = None,
                   cwd: Path | None = None) -> ProcessHandle:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(list(argv), stdin=devnull, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True,
                                close_fds=True)
    started = None
    for _ in range(100):
        started = _start_time(proc.pid)
        if started is not None:
            break
        time.sleep(0.01)
    if started is None:
        raise OSError(f"{argv[0]} exited immediately (exit code {proc.poll()}); see {log}")
    return ProcessHandle(proc.pid, started)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could *not* bind ``host:port`` now.

    Probing by binding (with SO_REUSEADDR, as the servers we start do) rather than
    connecting: a connect to an unused port in the ephemeral range can succeed by
    connecting to itself (TCP self-connect), which would report a free port as used.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1,
               alive: ProcessHandle | None = None) -> bool:
    """Poll ``predicate`` until true (``True``), ``timeout`` passes or ``alive`` dies (``False``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except OSError:
            pass
        if alive is not None and not alive.alive():
            return False
        time.sleep(interval)
    return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
