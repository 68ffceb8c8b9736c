"""The dynamic providers' error edge: what the Pulumi engine prints for a failed create or update.

The engine formats a provider's exception itself (``<class>: <str>`` under a
traceback), so a provider cannot print the stage the way the ``mops`` CLI's
error boundary does. Instead its ``create``/``update`` run inside
:func:`engine_errors`, which re-raises a :class:`~modelops_infra.errors.ModelOpsError`
as a copy of the same class whose message is ``stage: message (hint: ...)``:
the deploy shows the stage once, as the CLI does. :class:`EdgeProvider` is the
base of such providers: it runs their ``create`` and ``update`` that way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pulumi.dynamic import CreateResult, ResourceProvider, UpdateResult

from modelops_infra.errors import ModelOpsError

__all__ = ["EdgeProvider", "engine_errors"]


@contextmanager
def engine_errors() -> Iterator[None]:
    """Re-raise a :class:`ModelOpsError` as :meth:`~ModelOpsError.rendered`; let anything else through.

    The original is dropped (``from None``): its message is in the copy, and
    the engine would print both otherwise. Other exceptions are bugs and keep
    their traceback.
    """
    try:
        yield
    except ModelOpsError as exc:
        raise exc.rendered() from None


class EdgeProvider(ResourceProvider):
    """A dynamic provider whose ``create`` and ``update`` compute outputs inside :func:`engine_errors`.

    Subclasses implement :meth:`outputs` (the work; ``olds`` is ``None`` on create) and
    :meth:`resource_id` (the id of a created resource, from its outputs).
    """

    def outputs(self, props: dict[str, Any], olds: dict[str, Any] | None) -> dict[str, Any]:
        raise NotImplementedError

    def resource_id(self, outs: dict[str, Any]) -> str:
        raise NotImplementedError

    def create(self, props: dict[str, Any]) -> CreateResult:
        with engine_errors():
            outs = self.outputs(props, None)
        return CreateResult(self.resource_id(outs), outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        with engine_errors():
            return UpdateResult(self.outputs(news, olds))
