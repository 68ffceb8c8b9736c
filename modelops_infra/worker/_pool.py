"""Warm child processes that run bundle code in the bundle's own Python environment.

A :class:`ProcessPool` lives in a worker process. Each :meth:`ProcessPool.run`
borrows an idle child started for the same :attr:`ChildSpec.key` (bundle digest
and environment), or starts one, sends it one request over a pipe and waits for
the answer. The child side is :mod:`modelops_infra.worker._child` (stdlib only);
the wire format is described there.

What the worker gets in exchange for a pipe round trip per task:

* a crash in the bundle (``os._exit``, a segfault in native code, the OOM
  killer) kills only the child; the task fails with :class:`BundleRunError`
  and the next task gets a fresh child;
* a task that overruns its timeout is killed (its whole process group);
* the child sees only :func:`minimal_child_env`, never the worker's registry
  password or cloud credentials.

Children live in their own session (process group), with stdin from
``/dev/null`` and stdout/stderr inherited from the worker, so what a bundle
prints lands in the worker's log.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modelops_infra.errors import BundleRunError
from modelops_infra.worker import _child
from modelops_infra.worker._child import HEADER, MAX_FRAME, FrameError, decode_body, encode_frame

__all__ = ["ChildSpec", "ProcessPool", "minimal_child_env"]

log = logging.getLogger(__name__)

#: Variables a child inherits from the worker, when set there. Everything else is dropped.
_ALLOWED = frozenset({
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
})
_ALLOWED_PREFIXES = ("LC_",)
#: Set in every child's environment. The child itself runs with ``-I``, which
#: ignores PYTHON* variables (and sets ``sys.dont_write_bytecode`` itself); these
#: reach Python programs the bundle starts, so they too skip the user site (no
#: packages from outside the environment) and do not write ``__pycache__`` into
#: the digest-verified bundle tree.
_FIXED = {"PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}

#: How often a wait for a child's answer also checks that the child is alive.
#: EOF on the pipe normally says so at once; this covers a grandchild (forked by
#: the bundle) that keeps the pipe open after the child died.
_LIVENESS_TICK = 1.0
#: How long :meth:`ProcessPool.close` waits for tasks whose children it killed to clean up.
_CLOSE_GRACE = 5.0


def minimal_child_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The complete environment for a child, built from an allow-list (pure when ``environ`` is given).

    Kept from ``environ`` (default: ``os.environ``, read at call time): ``PATH``,
    ``HOME``, ``LANG``, ``LANGUAGE``, ``LC_*``, ``TZ``, ``TMPDIR`` and the
    thread-count knobs ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
    ``OPENBLAS_NUM_THREADS``, ``NUMEXPR_NUM_THREADS``. Added:
    ``PYTHONNOUSERSITE=1`` and ``PYTHONDONTWRITEBYTECODE=1`` (see ``_FIXED``).

    Nothing else passes: not ``REGISTRY_PASSWORD`` or ``MODELOPS_BUNDLE_*``
    (registry credentials), not ``ARM_*``/``AZURE_*`` (cloud credentials), not
    ``PULUMI_*``, not ``VIRTUAL_ENV`` or ``PYTHONPATH`` of the worker.

    >>> minimal_child_env({"PATH": "/bin", "LC_ALL": "C", "ARM_CLIENT_SECRET": "x"})["LC_ALL"]
    'C'
    """
    source = os.environ if environ is None else environ
    env = {k: v for k, v in source.items() if k in _ALLOWED or k.startswith(_ALLOWED_PREFIXES)}
    env.update(_FIXED)
    return env


@dataclass(frozen=True)
class ChildSpec:
    """How to start a child, and which children may serve a task.

    ``key`` is ``(bundle digest, environment key or "")``: a child is reused only
    for tasks with the same key, and the key must determine the other fields
    (the pool does not compare them; a child keeps the spec it was started with).
    ``python`` should be an absolute path (an environment's ``bin/python``, or
    ``sys.executable``). ``root`` is the bundle tree: the child's cwd and
    ``sys.path[0]``. ``env`` is the child's *complete* environment; pass
    :func:`minimal_child_env`.
    """

    key: tuple[str, str]
    python: str
    root: Path
    env: Mapping[str, str] = field(hash=False, repr=False)


class _Timeout(Exception):
    pass


class _Gone(Exception):
    """The child closed its pipe or died; the pool reaps it and reports why."""


class _Broken(Exception):
    """The child sent something that is not a valid frame."""


class _Child:
    """One child process and the parent's ends of its two pipes. Used by one thread at a time."""

    def __init__(self, spec: ChildSpec, proc: subprocess.Popen[bytes], rfd: int, wfd: int) -> None:
        self.spec = spec
        self.proc = proc
        self.rfd = rfd
        self.wfd = wfd
        self.poller = select.poll()
        self.poller.register(rfd, select.POLLIN)
        self.last_used = time.monotonic()
        self.tasks = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.wfd, view):]
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _Gone from exc

    def receive(self, deadline: float | None) -> dict[str, Any]:
        """The next frame's object; ``_Timeout`` after ``deadline`` (monotonic), ``_Gone`` on EOF or death."""
        (size,) = HEADER.unpack(self._read_exact(HEADER.size, deadline))
        if size > MAX_FRAME:
            raise _Broken(f"announced a frame of {size} bytes, over the limit of {MAX_FRAME}")
        try:
            return decode_body(self._read_exact(size, deadline))
        except FrameError as exc:
            raise _Broken(str(exc)) from exc

    def _read_exact(self, size: int, deadline: float | None) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            wait = _LIVENESS_TICK
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    raise _Timeout
            if not self.poller.poll(wait * 1000):
                if self.has_exited():
                    raise _Gone
                continue
            chunk = os.read(self.rfd, min(remaining, 1 << 20))
            if not chunk:
                raise _Gone
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def has_exited(self) -> bool:
        """Whether the child has exited, without reaping it where the OS allows (so its group id stays reserved)."""
        if self.proc.returncode is not None:
            return True
        if hasattr(os, "waitid"):  # Linux; macOS only from Python 3.13
            try:
                return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
            except ChildProcessError:
                return True
        return self.proc.poll() is not None

    def kill(self) -> None:
        """SIGKILL the child's whole process group (it leads its own session). Does not reap.

        A child already reaped is left alone: its group id may belong to someone else by now.
        """
        if self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # already gone (macOS answers EPERM for a group of zombies)

    def stop(self) -> int:
        """Kill the group, reap the child and close the pipes; returns the child's return code. Idempotent.

        The group is killed before the child is reaped, so its id cannot have
        been reused, and grandchildren the bundle left behind die too. A child
        that had already died keeps its own status.
        """
        self.kill()
        rc = self.proc.wait()
        for fd in (self.rfd, self.wfd):
            if fd >= 0:
                os.close(fd)
        self.rfd = self.wfd = -1
        return rc


def _describe_exit(rc: int) -> tuple[str, dict[str, Any]]:
    """``("died with exit code 3", {"exit_code": 3})`` or ``("was killed by signal SIGSEGV", {"signal": "SIGSEGV"})``."""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        return f"was killed by signal {name}", {"signal": name}
    return f"died with exit code {rc}", {"exit_code": rc}


class ProcessPool:
    """Warm child processes for bundle code, at most ``max_processes`` at a time. Thread-safe.

    * A task takes an idle child with its spec's key, else starts one while fewer
      than ``max_processes`` exist, else stops the least recently used idle child
      (of another key) to make room, else waits for a child to come free.
    * A child idle for ``idle_timeout`` seconds is stopped by a daemon reaper
      thread, started with the first idle child.
    * A child that dies, overruns its timeout or breaks the protocol is discarded;
      the pool, and the worker process that owns it, carry on.

    Every failure is a :class:`BundleRunError`. :meth:`close` stops all children.
    """

    def __init__(self, max_processes: int, *, idle_timeout: float = 300.0, start_timeout: float = 60.0) -> None:
        if max_processes < 1:
            raise ValueError(f"max_processes must be at least 1, got {max_processes}")
        self.max_processes = max_processes
        self.idle_timeout = idle_timeout
        self.start_timeout = start_timeout
        self._cond = threading.Condition()
        self._idle: list[_Child] = []      # oldest release first: index 0 is the LRU
        self._busy: set[_Child] = set()
        self._slots = 0                    # children existing, starting or being stopped
        self._spawned = 0
        self._closed = False
        self._reaper: threading.Thread | None = None

    # -- public ---------------------------------------------------------------------------------

    def run(self, spec: ChildSpec, entrypoint: str, params: dict[str, Any], seed: int, *,
            digest: str, timeout: float | None = None, fresh: bool = False) -> dict[str, Any]:
        """Call ``entrypoint(params, seed)`` in a child for ``spec`` and return its dict result.

        ``timeout`` (seconds, ``None`` for none) covers sending the request and
        waiting for the answer, not starting the child (``start_timeout``).
        ``fresh=True`` uses a new child for this task alone and stops it after.

        Raises :class:`BundleRunError` (``digest`` names the bundle in messages) when:
        the child cannot start (``python``, ``exit_code``/``signal``); the entry
        function cannot be loaded or raises (``remote_traceback``,
        ``exception_type``); the result is not a JSON-serializable dict; the child
        dies (``exit_code`` or ``signal``); the task overruns ``timeout``
        (``timeout``); or the pool is closed. After a failure the child is kept
        only if it is known to be healthy (the function raised or returned a bad
        result); otherwise it has been killed and reaped.
        """
        try:
            request = encode_frame({"entrypoint": entrypoint, "params": params, "seed": seed})
        except (TypeError, ValueError, FrameError) as exc:
            raise BundleRunError(f"params for entrypoint {entrypoint} of bundle {digest} cannot be sent: {exc}",
                                 stage="run", hint="params must be a JSON-serializable dict", digest=digest) from exc
        child = self._checkout(spec, digest, fresh)
        healthy = False
        try:
            response = self._exchange(child, request, digest, timeout)
            healthy = True
        finally:
            self._checkin(child, keep=healthy and not fresh)
        return self._result(response, entrypoint, digest)

    def close(self) -> None:
        """Stop every child: idle ones are killed and reaped; busy ones are killed, and their tasks fail.

        Idempotent. Later :meth:`run` calls raise :class:`BundleRunError`. Waits
        briefly for tasks whose children were killed to clean up.
        """
        with self._cond:
            idle, self._idle = self._idle, []
            busy = list(self._busy)
            self._closed = True
            self._cond.notify_all()
        for child in idle:
            child.stop()
        for child in busy:
            child.kill()  # its task's thread sees EOF, reaps it and releases the slot
        with self._cond:
            self._slots -= len(idle)
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._slots == 0, timeout=_CLOSE_GRACE):
                log.warning("process pool closed with %d child(ren) still being started or stopped", self._slots)
            reaper, self._reaper = self._reaper, None
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout=_CLOSE_GRACE)

    def stop_idle(self, digest: str) -> int:
        """Stop the idle children of bundle ``digest`` (its files are about to be released); return how many."""
        with self._cond:
            stopping = [c for c in self._idle if c.spec.key[0] == digest]
            self._idle = [c for c in self._idle if c not in stopping]
        for child in stopping:
            child.stop()
            self._free_slot()
        return len(stopping)

    def stats(self) -> dict[str, int]:
        """``processes`` (existing, starting or stopping), ``idle``, ``busy``, ``spawned`` (total ever started)."""
        with self._cond:
            return {"processes": self._slots, "idle": len(self._idle), "busy": len(self._busy),
                    "spawned": self._spawned}

    # -- checkout and checkin -------------------------------------------------------------------

    def _checkout(self, spec: ChildSpec, digest: str, fresh: bool) -> _Child:
        """A child for ``spec``, now busy: an idle one, or one just started in a reserved slot."""
        while True:
            victim: _Child | None = None
            with self._cond:
                while True:
                    if self._closed:
                        raise BundleRunError(f"the process pool is closed; bundle {digest} was not run",
                                             stage="run", digest=digest)
                    reused = None if fresh else self._take_idle(spec.key)
                    if reused is not None:
                        self._busy.add(reused)
                        break
                    if self._slots < self.max_processes:
                        self._slots += 1
                        break
                    if self._idle:
                        victim = self._idle.pop(0)  # its slot passes to the child started below
                        break
                    self._cond.wait()
            if reused is not None:
                if not reused.has_exited():
                    return reused
                rc = reused.stop()
                log.warning("idle child %d of bundle %s had died (%s); starting another",
                            reused.pid, spec.key[0], _describe_exit(rc)[0])
                self._free_slot(busy=reused)
                continue
            if victim is not None:
                log.info("stopping idle child %d of bundle %s to make room for bundle %s",
                         victim.pid, victim.spec.key[0], spec.key[0])
                victim.stop()
            try:
                child = self._spawn(spec, digest)
            except BaseException:
                self._free_slot()
                raise
            with self._cond:
                self._spawned += 1
                if not self._closed:
                    self._busy.add(child)
                    return child
            child.stop()
            self._free_slot()
            raise BundleRunError(f"the process pool was closed while starting a child for bundle {digest}",
                                 stage="run", digest=digest)

    def _take_idle(self, key: tuple[str, str]) -> _Child | None:
        for i in range(len(self._idle) - 1, -1, -1):  # most recently used first: it is the warmest
            if self._idle[i].spec.key == key:
                return self._idle.pop(i)
        return None

    def _checkin(self, child: _Child, *, keep: bool) -> None:
        with self._cond:
            if keep and not self._closed:
                self._busy.discard(child)
                child.last_used = time.monotonic()
                self._idle.append(child)
                self._ensure_reaper()
                self._cond.notify_all()
                return
        child.stop()
        self._free_slot(busy=child)

    def _free_slot(self, busy: _Child | None = None) -> None:
        with self._cond:
            if busy is not None:
                self._busy.discard(busy)
            self._slots -= 1
            self._cond.notify_all()

    # -- idle reaper ----------------------------------------------------------------------------

    def _ensure_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap_idle, name="modelops-pool-reaper", daemon=True)
            self._reaper.start()

    def _reap_idle(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    expired = [c for c in self._idle if now - c.last_used >= self.idle_timeout]
                    if expired:
                        self._idle = [c for c in self._idle if c not in expired]
                        break
                    oldest = min((c.last_used for c in self._idle), default=None)
                    self._cond.wait(None if oldest is None else oldest + self.idle_timeout - now)
            for child in expired:
                log.info("stopping child %d of bundle %s: idle for %.0f s", child.pid, child.spec.key[0],
                         self.idle_timeout)
                child.stop()
                self._free_slot()

    # -- one child ------------------------------------------------------------------------------

    def _spawn(self, spec: ChildSpec, digest: str) -> _Child:
        """Start a child and wait for its ready frame; raise :class:`BundleRunError` naming the interpreter."""
        script = str(Path(_child.__file__).resolve())
        to_parent_r, to_parent_w = os.pipe()
        to_child_r, to_child_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [spec.python, "-I", script, str(to_child_r), str(to_parent_w), str(spec.root)],
                cwd=spec.root, env=dict(spec.env), stdin=subprocess.DEVNULL, stdout=None, stderr=None,
                close_fds=True, pass_fds=(to_child_r, to_parent_w), start_new_session=True,
            )
        except OSError as exc:
            os.close(to_parent_r)
            os.close(to_child_w)
            raise BundleRunError(
                f"cannot start the interpreter {spec.python} for bundle {digest} in {spec.root}: {exc}",
                stage="run", hint="check the environment's bin/python exists and the bundle tree is extracted",
                python=spec.python, digest=digest,
            ) from exc
        finally:
            os.close(to_child_r)
            os.close(to_parent_w)
        child = _Child(spec, proc, to_parent_r, to_child_w)
        try:
            ready = child.receive(time.monotonic() + self.start_timeout)
            if ready.get("ready") is not True:
                raise _Broken(f"sent {sorted(ready)} instead of a ready frame")
        except _Gone:
            what, attrs = _describe_exit(child.stop())
            raise BundleRunError(
                f"the interpreter {spec.python} for bundle {digest} {what} before it was ready",
                stage="run", hint="its stderr is in the worker's log", python=spec.python, digest=digest, **attrs,
            ) from None
        except _Timeout:
            child.stop()
            raise BundleRunError(
                f"the interpreter {spec.python} for bundle {digest} was not ready within {self.start_timeout:g} s",
                stage="run", python=spec.python, digest=digest, timeout=self.start_timeout,
            ) from None
        except _Broken as exc:
            child.stop()
            raise BundleRunError(f"the interpreter {spec.python} for bundle {digest} broke the protocol: {exc}",
                                 stage="run", python=spec.python, digest=digest) from None
        log.info("started child %d for bundle %s (environment %r) with %s, Python %s", child.pid, spec.key[0],
                 spec.key[1], spec.python, str(ready.get("python", "?")).split()[0])
        return child

    def _exchange(self, child: _Child, request: bytes, digest: str, timeout: float | None) -> dict[str, Any]:
        """Send one request and read its answer. On any failure the child is stopped before raising."""
        deadline = None if timeout is None else time.monotonic() + timeout
        child.tasks += 1
        try:
            child.send(request)
            return child.receive(deadline)
        except _Timeout:
            child.stop()
            log.warning("killed child %d of bundle %s: task exceeded its timeout of %g s", child.pid, digest, timeout)
            raise BundleRunError(f"task of bundle {digest} exceeded its timeout of {timeout:g} s",
                                 stage="run", hint="raise the task's timeout, or make the simulation shorter",
                                 digest=digest, timeout=timeout) from None
        except _Gone:
            what, attrs = _describe_exit(child.stop())
            if self._closed:
                raise BundleRunError(f"the process pool was closed while bundle {digest} ran",
                                     stage="run", digest=digest, **attrs) from None
            log.warning("child %d of bundle %s %s", child.pid, digest, what)
            raise BundleRunError(
                f"the process running bundle {digest} {what}",
                stage="run", hint="a crash in native code, os._exit() or the out-of-memory killer; "
                     "its stderr is in the worker's log",
                digest=digest, **attrs,
            ) from None
        except _Broken as exc:
            child.stop()
            log.warning("child %d of bundle %s broke the protocol: %s", child.pid, digest, exc)
            raise BundleRunError(f"the process running bundle {digest} broke the protocol: {exc}",
                                 stage="run", digest=digest) from None

    @staticmethod
    def _result(response: dict[str, Any], entrypoint: str, digest: str) -> dict[str, Any]:
        if response.get("ok") is True and isinstance(response.get("result"), dict):
            result: dict[str, Any] = response["result"]
            return result
        stage = response.get("stage")
        kind = str(response.get("type", "Exception"))
        message = str(response.get("message", ""))
        tb = str(response.get("traceback", ""))
        if stage == "raise":
            raise BundleRunError(f"entrypoint {entrypoint} of bundle {digest} raised {kind}: {message}\n{tb}",
                                 stage="run", remote_traceback=tb, digest=digest, exception_type=kind)
        if stage == "load":
            text = f"loading entrypoint {entrypoint} of bundle {digest} failed: {kind}: {message}"
            raise BundleRunError(f"{text}\n{tb}" if tb else text, stage="run", remote_traceback=tb, digest=digest,
                                 exception_type=kind)
        if stage == "result":
            raise BundleRunError(f"entrypoint {entrypoint} of bundle {digest} {message}", stage="run", digest=digest)
        raise BundleRunError(f"the process running bundle {digest} sent an unexpected answer "
                             f"(keys {sorted(response)})", stage="run", digest=digest)
