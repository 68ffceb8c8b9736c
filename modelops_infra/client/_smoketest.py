"""The end-to-end smoke test, stage by stage: shared by ``mops dev smoke-test`` and ``BundleSmokeTest``.

Stages, in order (errors and timings use these names)::

    pack     validate and pack the bundle (pure, reproducible)
    push     push it to the registry (blobs the registry has are skipped)
    connect  connect a Dask client to the scheduler
    workers  wait for at least ``min_workers`` workers
    fetch    a worker fetches and verifies the bundle (a fetch-only task)
    run      one SimTask through DaskSimulationService runs the entrypoint; the
             worker checks that it returns a JSON-serializable dict

There is no stage after ``run``: the worker already refuses a result that is not
a JSON-serializable dict, as a ``run`` failure.

:func:`run_smoke_test` never raises for a stage failure: it returns a
:class:`SmokeTestReport` whose ``stage`` names the failed stage and whose
``error`` is the message without it (``stage="workers"``,
``error="no worker within 30 s (scheduler ... has 0)"``). Call
:meth:`SmokeTestReport.raise_for_failure` to turn a failure into a
:class:`~modelops_infra.errors.SmokeTestError` carrying ``stage`` and ``hint``,
which the edges (the ``mops`` CLI, the ``BundleSmokeTest`` provider) render
once as ``stage: error (hint: ...)``.

Every wait on the Dask side (connect, workers, fetch, run) is bounded by one
deadline, ``timeout`` seconds after ``connect`` starts. ``pack`` reads the local
disk only, and ``push`` is bounded by the registry client's own per-request
timeout and bounded retries (``MODELOPS_BUNDLE_TIMEOUT``).

Nothing is left behind on the client: the Dask client is closed on every path.
The pushed bundle stays in the registry (pushes are idempotent).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelops_infra.bundles import (
    BasicCredentials,
    BundleSettings,
    RegistryClient,
    builtin_bundle_path,
    pack_bundle,
    packed_bundle,
    push_packed,
)
from modelops_infra.errors import ModelOpsError, SmokeTestError

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["DEFAULT_SMOKE_PARAMS", "DEFAULT_SMOKE_SEED", "STAGES", "ClusterProbe", "SmokeTestReport",
           "probe_scheduler", "run_smoke_test"]

log = logging.getLogger(__name__)

#: Every stage a smoke test can fail at, in order: the values of ``SmokeTestReport.stage`` and ``SmokeTestError.stage``.
STAGES: tuple[str, ...] = ("pack", "push", "connect", "workers", "fetch", "run")
DEFAULT_SMOKE_PARAMS: Mapping[str, Any] = {"test": "smoke"}
DEFAULT_SMOKE_SEED = 12345


@dataclass
class SmokeTestReport:
    """Outcome of one smoke test. ``stage``, ``error`` and ``hint`` are ``None`` on a pass.

    On a failure ``stage`` is one of :data:`STAGES`, ``error`` the message
    *without* the stage (it may span lines: a ``run`` failure ends with the
    bundle's traceback) and ``hint`` how to fix it, if known. ``timings`` maps
    each stage that ran (including a failed one) to seconds.
    """

    passed: bool = False
    bundle_ref: str | None = None
    result: Any = None
    worker: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    stage: str | None = None
    hint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``passed``, ``bundle_ref``, ``result``, ``worker``, ``timings``, ``stage``, ``error``
        (without the stage) and ``hint``."""
        return {
            "passed": self.passed, "bundle_ref": self.bundle_ref, "result": self.result, "worker": self.worker,
            "timings": {k: round(v, 6) for k, v in self.timings.items()}, "error": self.error, "stage": self.stage,
            "hint": self.hint,
        }

    def raise_for_failure(self) -> None:
        """Raise :class:`SmokeTestError` (with ``stage`` and ``hint``) if the test failed; return otherwise."""
        if not self.passed:
            raise SmokeTestError(self.error or "failed", stage=self.stage, hint=self.hint,
                                 bundle_ref=self.bundle_ref)


class _StageFailed(Exception):
    """Internal: unwinds the stage sequence once a stage has recorded its failure."""


class _Stages:
    """Runs stages in order, timing each, and records the first failure on the report.

    A :class:`ModelOpsError` that names a smoke-test stage itself is recorded at
    that stage: a worker's fetch error that surfaces while the ``run`` task
    waits (it landed on a worker that had not fetched the bundle yet) is a
    ``fetch`` failure. Anything else fails the stage that is running.
    """

    def __init__(self, report: SmokeTestReport) -> None:
        self.report = report

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except _StageFailed:
            raise
        except ModelOpsError as exc:
            self.fail(exc.stage if exc.stage in STAGES else name, exc.message, exc, hint=exc.hint)
        except Exception as exc:  # translated at the seam: dask, tornado, sockets
            self.fail(name, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, exc)
        finally:
            self.report.timings[name] = time.perf_counter() - start
        log.info("smoke test stage %s ok in %.3f s", name, self.report.timings[name])

    def fail(self, name: str, message: str, cause: BaseException | None = None, *, hint: str | None = None) -> None:
        self.report.stage = name
        self.report.error = message
        self.report.hint = hint
        # Not a warning: the caller decides how to present a failure; the cause is kept for --debug logs.
        log.info("smoke test failed at %s: %s", name, message.splitlines()[0] if message else "")
        log.debug("smoke test stage %s failed", name, exc_info=cause)
        raise _StageFailed(name)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(self._end - time.monotonic(), 0.0)


def _connect(scheduler: str, timeout: float) -> Client:
    from distributed import Client

    from modelops_infra.client._discovery import scheduler_problem

    # A malformed address is refused before a Client exists: distributed would otherwise spend the
    # timeout failing, then print a Client.__del__ traceback while closing the half-made client.
    problem = scheduler_problem(scheduler)
    if problem:
        raise ValueError(f"{scheduler!r} is not a Dask scheduler address: {problem}")
    # Dask retries a refused connect, but a connection that opens and then never answers its handshake
    # (a port-forward through the Kubernetes API occasionally gives one) blocks Client() past its own
    # timeout, for good. So each attempt runs in a thread bounded by part of the timeout; a stuck one is
    # left behind (it ends when its socket closes) and the next attempt opens a new connection.
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        attempt = max(min(left, _CONNECT_ATTEMPT), 0.5)
        outcome: list[Any] = []

        def make(seconds: float = attempt, out: list[Any] = outcome) -> None:
            try:
                out.append(Client(scheduler, timeout=seconds, set_as_default=False))
            except BaseException as exc:  # handed to the caller below
                out.append(exc)

        thread = threading.Thread(target=make, name="modelops-dask-connect", daemon=True)
        thread.start()
        thread.join(attempt + 1.0)
        if outcome and not isinstance(outcome[0], BaseException):
            client: Client = outcome[0]
            return client
        error = outcome[0] if outcome else TimeoutError(f"no answer from {scheduler} within {attempt:g} s")
        if not isinstance(error, (TimeoutError, OSError)) or end - time.monotonic() < 1.0:
            raise error
        log.info("connecting to %s failed (%s); trying again (%.0f s left)", scheduler, error,
                 end - time.monotonic())


def _close(client: Client | None) -> None:
    if client is None:
        return
    try:
        client.close(timeout=5)
    except Exception as exc:  # closing is best effort; the result is already decided
        log.debug("closing dask client: %s", exc)


def _innermost(frames: list[Any]) -> str:
    return " ".join(str(frames[-1]).split()) if frames else "no stack"


#: How long each question to the cluster about a timed-out task may take: the answer is only context.
_WHEREABOUTS_TIMEOUT = 5.0
#: Seconds of one connect attempt. A connect through a working port-forward takes 0.2-0.4 s on the local
#: cluster; about one forwarded connection in ten is never relayed (measured there), and an attempt over
#: it is given up after this long, not after a quarter of the timeout (30 s of a 120 s deploy).
_CONNECT_ATTEMPT = 10.0


def _whereabouts(client: Client, key: str) -> str:
    """Where a task that timed out is, from the scheduler's and the workers' public views (best effort).

    ``"; it was running on worker tcp://…, in: File "sim.py", line 3, in run time.sleep(600)"`` (for a
    bundle run in a child process, the frame is the worker waiting on that process);
    ``"; it was waiting on worker tcp://…, whose threads ran 1 other task(s), e.g. <key> in: …"`` (a
    cancelled task runs on in its thread until it returns); ``"; no worker had taken it: …"``; or
    ``""`` if the cluster does not answer within a few seconds. Tells a hung simulation from a busy cluster.
    """
    scheduler = client.scheduler
    if scheduler is None:  # the client is closed
        return ""
    try:
        processing = client.sync(scheduler.processing, workers=None, callback_timeout=_WHEREABOUTS_TIMEOUT)
        on = [worker for worker, keys in processing.items() if key in keys]
        if not on:
            busy = sum(len(keys) for keys in processing.values())
            return f"; no worker had taken it: {len(processing)} worker(s) were busy with {busy} task(s)"
        worker = on[0]
        # every worker's running tasks (a cancelled task is no longer the scheduler's, but still runs)
        stacks = (client.sync(scheduler.call_stack, keys=None, callback_timeout=_WHEREABOUTS_TIMEOUT)
                  .get(worker) or {})
        if key in stacks:
            return f"; it was running on worker {worker}, in: {_innermost(stacks[key])}"
        others = [(k, frames) for k, frames in stacks.items() if k != key]
        if others:
            other, frames = others[0]
            return (f"; it was waiting on worker {worker}, whose threads ran {len(others)} other task(s),"
                    f" e.g. {other} in: {_innermost(frames)}")
        return f"; it was waiting on worker {worker} behind {len(processing[worker]) - 1} other task(s)"
    except Exception as exc:  # the timeout is the error; this only adds context to it
        log.debug("cannot tell where task %s is: %s", key, exc)
        return ""


def _wait_result(client: Client, future: Future[Any], deadline: _Deadline, stage: str, stages: _Stages,
                 subject: str) -> Any:
    try:
        return future.result(timeout=deadline.remaining())
    except TimeoutError:
        where = _whereabouts(client, str(future.key))
        future.cancel()
        stages.fail(stage, f"{subject} did not finish within {deadline.seconds:g} s (timeout){where}")


def run_smoke_test(*, bundle: Path | str | None, registry: str, scheduler: str, timeout: float,
                   repository: str = "modelops/bundles", params: Mapping[str, Any] | None = None,
                   seed: int = DEFAULT_SMOKE_SEED, min_workers: int = 1,
                   settings: BundleSettings | None = None,
                   on_stage: Callable[[str, float], None] | None = None,
                   credentials: BasicCredentials | None = None,
                   expected_digest: str | None = None) -> SmokeTestReport:
    """Push ``bundle`` (default: the built-in test bundle) and run it once on the cluster.

    Returns a :class:`SmokeTestReport`; raises nothing for a stage failure
    (only ``ValueError`` for a non-positive ``timeout`` or ``min_workers``).
    ``on_stage(name, seconds)`` is called after each stage that passes.
    ``credentials`` overrides the registry credential lookup. ``expected_digest``
    (computed at preview by ``BundleSmokeTest``) fails ``pack`` if the bundle
    changed since. A bundle whose manifest says ``"wheels": true`` is pushed
    with its environment's wheels, as ``mops bundle push`` pushes it, so the
    deploy proves that workers install from the registry; ``expected_digest``
    is then the digest of its sources alone (what preview can compute without
    resolving anything).

    >>> report = run_smoke_test(bundle=None, registry="127.0.0.1:5000",
    ...                         scheduler="tcp://127.0.0.1:8786", timeout=30)  # doctest: +SKIP
    >>> report.raise_for_failure()                                              # doctest: +SKIP
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if min_workers < 1:
        raise ValueError(f"min_workers must be at least 1, got {min_workers!r}")
    report = SmokeTestReport()
    stages = _Stages(report)
    settings = settings or BundleSettings.from_env()
    client: Client | None = None
    scope = ExitStack()  # holds a bundle's downloaded wheels until they are pushed

    def done(name: str) -> None:
        if on_stage is not None:
            on_stage(name, report.timings[name])

    try:
        with stages.stage("pack"):
            path = Path(bundle) if bundle is not None else builtin_bundle_path()
            packed = pack_bundle(path)
            if expected_digest is not None and packed.digest != expected_digest:
                stages.fail("pack", f"the bundle now packs to {packed.digest}, not {expected_digest} as at preview; "
                                    "it changed during the deploy, run pulumi up again")
            if packed.manifest.wheels:
                packed = scope.enter_context(packed_bundle(path, settings=settings))
        done("pack")

        with stages.stage("push"):
            with RegistryClient.from_settings(settings, registry, credentials=credentials) as reg:
                pushed = push_packed(reg, packed, repository)
            report.bundle_ref = str(pushed.reference)
        done("push")

        deadline = _Deadline(timeout)
        with stages.stage("connect"):
            try:
                client = _connect(scheduler, deadline.remaining())
            except (OSError, TimeoutError, ValueError) as exc:
                stages.fail("connect", f"cannot reach scheduler {scheduler} within {timeout:g} s ({exc})", exc)
        done("connect")
        assert client is not None

        with stages.stage("workers"):
            try:
                client.wait_for_workers(min_workers, timeout=deadline.remaining())
            except TimeoutError as exc:
                have = len(client.scheduler_info(n_workers=-1).get("workers", {}))
                noun = "worker" if min_workers == 1 else f"{min_workers} workers"
                stages.fail("workers", f"no {noun} within {timeout:g} s (scheduler {scheduler} has {have})", exc)
        done("workers")

        from modelops_infra.client._service import DaskSimulationService
        from modelops_infra.client._task import SimTask
        from modelops_infra.worker import fetch_bundle_task

        with stages.stage("fetch"):
            fut = client.submit(fetch_bundle_task, pushed.reference.repository, pushed.digest,
                                key=f"modelops-smoke-fetch-{uuid.uuid4().hex}", pure=False)
            fetched = _wait_result(client, fut, deadline, "fetch", stages, f"fetching {pushed.digest} on a worker")
            report.worker = fetched.get("worker") if isinstance(fetched, dict) else None
        done("fetch")

        with stages.stage("run"):
            service = DaskSimulationService(client)
            task = SimTask(report.bundle_ref, dict(params if params is not None else DEFAULT_SMOKE_PARAMS), seed)
            fut = service.submit(task)
            report.result = _wait_result(client, fut, deadline, "run", stages, "the simulation task")
            holders = client.who_has([fut]).get(fut.key) or ()
            report.worker = next(iter(holders), report.worker)
        done("run")
        report.passed = True
    except _StageFailed:
        report.passed = False
    finally:
        scope.close()
        _close(client)
    return report


@dataclass(frozen=True)
class ClusterProbe:
    """What :func:`probe_scheduler` saw. ``error`` is set when unreachable: a ``connect`` failure, without the stage."""

    scheduler: str
    reachable: bool
    workers: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None

    @property
    def n_workers(self) -> int:
        return len(self.workers)


def probe_scheduler(scheduler: str, *, timeout: float = 10.0) -> ClusterProbe:
    """Connect to ``scheduler`` within ``timeout`` seconds and list its workers. Never raises for I/O failures."""
    start = time.perf_counter()
    client: Client | None = None
    try:
        client = _connect(scheduler, timeout)
        workers = tuple(sorted(client.scheduler_info(n_workers=-1).get("workers", {})))
        return ClusterProbe(scheduler, True, workers, time.perf_counter() - start)
    except (OSError, TimeoutError, ValueError) as exc:
        # ValueError: distributed rejects a malformed address before any I/O
        return ClusterProbe(scheduler, False, (), time.perf_counter() - start,
                            f"cannot reach scheduler {scheduler} within {timeout:g} s ({exc})")
    finally:
        _close(client)
