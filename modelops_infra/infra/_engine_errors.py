"""The dynamic providers' error edge: what the Pulumi engine prints for a failed create or update.

The engine formats a provider's exception itself (``<class>: <str>`` under a
traceback), so a provider cannot print the stage the way the ``mops`` CLI's
error boundary does. Instead its ``create``/``update`` run inside
:func:`engine_errors`, which re-raises a :class:`~modelops_infra.errors.ModelOpsError`
as a copy of the same class whose message is ``stage: message (hint: ...)``:
the deploy shows the stage once, as the CLI does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from modelops_infra.errors import ModelOpsError

__all__ = ["engine_errors"]


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
