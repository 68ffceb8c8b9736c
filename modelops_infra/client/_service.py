"""``DaskSimulationService``: submit :class:`SimTask` s to Dask workers that run bundles."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from distributed import Client, Future

from modelops_infra.bundles import BundleSettings, Reference, resolve_reference
from modelops_infra.client._discovery import get_registry_url
from modelops_infra.client._task import SimTask, task_key
from modelops_infra.worker import run_sim_task

__all__ = ["DaskSimulationService", "ServiceConfig"]


@dataclass(frozen=True)
class ServiceConfig:
    """Client-side settings. ``registry`` is only used to resolve *tags*; workers use their own."""

    registry: str | None = None
    env: str = "dev"


class DaskSimulationService:
    """Submit simulations; futures resolve to the entry function's dict result.

    A worker-side failure is re-raised by ``future.result()`` / :meth:`gather`
    as the worker's :class:`~modelops_infra.errors.ModelOpsError`, its ``stage``
    saying where: ``"fetch"`` (``RegistryError``, ``IntegrityError``,
    ``UnsafeArchiveError``, ``CacheError``, or a ``ConfigurationError`` of the
    worker) or ``"run"`` (``RequirementsError``, ``BundleRunError``).
    """

    def __init__(self, client: Client, config: ServiceConfig | None = None) -> None:
        self.client = client
        self.config = config or ServiceConfig()
        self._pinned: dict[str, Reference] = {}
        self._lock = threading.Lock()

    def pin(self, bundle_ref: str) -> Reference:
        """Resolve ``bundle_ref`` to a digest (tags resolved once, then remembered)."""
        found = self._pinned.get(bundle_ref)
        if found is not None:
            return found
        parsed = Reference.parse(bundle_ref)
        if not parsed.pinned:
            registry = parsed.registry or self.config.registry or get_registry_url(self.config.env)
            parsed = resolve_reference(Reference(registry, parsed.repository, parsed.tag),
                                       settings=BundleSettings.from_env())
        with self._lock:
            self._pinned[bundle_ref] = parsed
        return parsed

    def _args(self, task: SimTask) -> tuple[str, str, str | None, dict[str, Any], int, float | None, str]:
        ref = self.pin(task.bundle_ref)
        assert ref.digest is not None
        return ref.repository, ref.digest, task.fn_ref, task.params, task.seed, task.timeout, task_key(
            ref.digest, task.fn_ref, task.params, task.seed)

    # pure=False with explicit keys: the key already names the work (digest, function, params, seed),
    # and pure=False stops Dask from hashing the arguments a second time.
    def submit(self, task: SimTask) -> Future[dict[str, Any]]:
        *args, key = self._args(task)
        return self.client.submit(run_sim_task, *args, key=key, pure=False)

    def submit_batch(self, tasks: Iterable[SimTask]) -> list[Future[dict[str, Any]]]:
        rows = [self._args(t) for t in tasks]
        if not rows:
            return []
        cols = list(zip(*rows, strict=True))
        return self.client.map(run_sim_task, *cols[:6], key=list(cols[6]), pure=False)

    def gather(self, futures: Sequence[Future[dict[str, Any]]]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.client.gather(list(futures))
        return results
