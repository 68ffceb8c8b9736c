"""``SimTask``: one simulation run, and its deterministic Dask key (pure)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from modelops_infra.bundles import parse_entrypoint
from modelops_infra.errors import ConfigurationError

__all__ = ["SimTask", "task_key"]


@dataclass(frozen=True)
class SimTask:
    """Run ``fn_ref`` (default: the manifest's entrypoint) of ``bundle_ref`` with ``params`` and ``seed``.

    ``bundle_ref`` is ``[registry/]repository[:tag|@sha256:...]``; tags are
    resolved to digests on the client before submission. ``timeout`` (seconds)
    kills the task's process when it runs longer (it overrides the manifest's
    ``timeout``; a task with a timeout always runs in a child process).
    """

    bundle_ref: str
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    fn_ref: str | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.params, dict):
            raise ConfigurationError(f"SimTask.params must be a dict, got {type(self.params).__name__}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ConfigurationError(f"SimTask.seed must be an int, got {self.seed!r}")
        if self.timeout is not None and (isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float))
                                         or not 0 < self.timeout < float("inf")):
            raise ConfigurationError(f"SimTask.timeout must be a positive number of seconds, got {self.timeout!r}")
        if self.fn_ref is not None and parse_entrypoint(self.fn_ref) is None:
            raise ConfigurationError(f"SimTask.fn_ref {self.fn_ref!r} is not 'module:function'")


def task_key(digest: str, fn_ref: str | None, params: dict[str, Any], seed: int) -> str:
    """Deterministic key: a hash of digest, fn_ref, params and seed. Same inputs, same key."""
    try:
        payload = json.dumps([digest, fn_ref or "", params, seed], sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"SimTask.params must be JSON-serializable ({exc})") from exc
    return "modelops-sim-" + hashlib.sha256(payload.encode()).hexdigest()[:40]
