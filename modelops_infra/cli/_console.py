"""Terminal output helpers: JSON, human sizes, rich tables and TTY-only progress bars.

Consoles are created per call, never at import time, so that ``CliRunner``'s
captured streams (and a redirected stdout) are honoured.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

__all__ = ["PROGRESS_MIN_BYTES", "echo_json", "human_size", "stdout_console", "stdout_is_tty", "transfer_progress"]

#: Transfers smaller than this never get a progress bar: they finish before it would be read.
PROGRESS_MIN_BYTES = 4 * 1024 * 1024


def stdout_is_tty() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def stdout_console() -> Console:
    """A console on the current ``sys.stdout``; no colour or wrapping surprises when it is not a terminal."""
    return Console(file=sys.stdout, soft_wrap=True, width=None if stdout_is_tty() else 200)


def echo_json(value: Any) -> None:
    """Print ``value`` as one JSON document on one line."""
    typer.echo(json.dumps(value, sort_keys=True, default=str))


def human_size(n: int | float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@contextmanager
def transfer_progress(description: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """Yield a ``progress(nbytes)`` callback drawing a rich bar on stderr, or ``None``.

    A bar is shown only when stdout is a terminal and the transfer is at least
    :data:`PROGRESS_MIN_BYTES`; the bar is removed when the transfer ends.
    """
    if total is None or total < PROGRESS_MIN_BYTES or not stdout_is_tty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
