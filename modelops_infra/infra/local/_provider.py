"""A Pulumi dynamic provider for one detached local service (registry, scheduler, workers).

Subclasses say how to start the service and how to tell it is ready; this base
class gives every one of them the same lifecycle:

* ``create`` starts the processes and waits (bounded) until they are ready; on
  failure it stops what it started and raises with the log tail, so nothing
  half-created blocks the next ``pulumi up``;
* ``read`` (``pulumi refresh``) returns no id when a process has died, so
  Pulumi drops the resource and the next ``up`` recreates it;
* ``diff`` replaces on any input change, and also when a process has died;
* ``delete`` stops the processes and removes the service's data directory.

The provider object holds no processes, sockets or clients: it is pickled into
the state, and everything live is created inside the methods.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, ResourceProvider

from modelops_infra.infra.local._processes import ProcessHandle

__all__ = ["ServiceProvider"]

_STATE_KEYS = ("processes", "log_dir")


class ServiceProvider(ResourceProvider):
    """Base for local-service providers. Subclasses implement :meth:`start` and list :attr:`inputs`."""

    #: Input property names; any change replaces the service.
    inputs: tuple[str, ...] = ()
    kind = "service"

    def start(self, props: dict[str, Any]) -> tuple[list[ProcessHandle], dict[str, Any]]:
        """Start and wait for readiness; return the handles and extra outputs. Raise on failure."""
        raise NotImplementedError

    def validate(self, props: dict[str, Any]) -> list[CheckFailure]:
        return []

    # -- helpers ---------------------------------------------------------------------

    @staticmethod
    def handles(props: dict[str, Any]) -> list[ProcessHandle]:
        return [ProcessHandle(int(p["pid"]), int(p["start_time"])) for p in props.get("processes") or []]

    @staticmethod
    def encode(handles: list[ProcessHandle]) -> list[dict[str, int]]:
        return [{"pid": h.pid, "start_time": h.start_time} for h in handles]

    def _all_alive(self, props: dict[str, Any]) -> bool:
        handles = self.handles(props)
        return bool(handles) and all(h.alive() for h in handles)

    # -- Pulumi hooks ----------------------------------------------------------------

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, self.validate(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = [k for k in self.inputs if olds.get(k) != news.get(k)]
        if not self._all_alive(olds):
            changed.append("processes")
        return DiffResult(changes=bool(changed), replaces=changed, stables=[], delete_before_replace=True)

    def create(self, props: dict[str, Any]) -> CreateResult:
        handles, outs = self.start(props)
        return CreateResult(f"{self.kind}-{handles[0].pid}", {**props, **outs, "processes": self.encode(handles)})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if not self._all_alive(props):
            # A dead process means the resource is gone: refresh drops it, up recreates it.
            for handle in self.handles(props):
                handle.stop()
            return ReadResult(None, {})
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        for handle in reversed(self.handles(props)):
            handle.stop()
        data = props.get("data_dir")
        if data:
            shutil.rmtree(Path(data), ignore_errors=True)
