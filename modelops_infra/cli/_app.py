"""The ``mops`` root command and its one error boundary.

Every command runs inside :meth:`_ErrorBoundary.invoke`, the only place that
turns an exception into an exit code (see :mod:`modelops_infra.cli._exit`):
one line on stderr, ``mops: error: <stage>: <message> (hint: <hint>)`` (the
stage and hint when the error has them; the stage is printed nowhere else), and
the traceback only with ``--debug``. Commands never catch :class:`~modelops_infra.errors.ModelOpsError`
to print it themselves.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from modelops_infra.cli._bundle import bundle_app
from modelops_infra.cli._cache import cache_app
from modelops_infra.cli._dev import dev_app
from modelops_infra.cli._env import env_app
from modelops_infra.cli._exit import ExitCode, exit_code_for
from modelops_infra.errors import ModelOpsError

__all__ = ["app", "main"]


def _one_line(text: str, *, debug: bool) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    return lines[0] if debug else f"{lines[0]} (+{len(lines) - 1} more lines; re-run with --debug)"


def report_error(exc: BaseException, *, debug: bool) -> ExitCode:
    """Print ``exc`` to stderr (one line, or the traceback with ``debug``); return its exit code."""
    code = exit_code_for(exc)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
        remote = getattr(exc, "remote_traceback", None)
        if remote:
            typer.echo(f"--- traceback inside the bundle ---\n{remote}", err=True)
    if code is ExitCode.INTERNAL:
        message = f"internal error: {type(exc).__name__}: {exc}"
        if not debug:
            message += " (a bug in mops; re-run with --debug for the traceback)"
        line = _one_line(message, debug=debug)
    elif isinstance(exc, ModelOpsError):
        # Cut the message, not the hint: a run failure's message ends with the bundle's traceback.
        line = exc.render(_one_line(exc.message, debug=debug))
    else:
        line = _one_line(str(exc), debug=debug)
    typer.echo(f"mops: error: {line}", err=True)
    return code


class _ErrorBoundary(TyperGroup):
    """The root group: maps exceptions from any subcommand to named exit codes."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # typer.Context is click's
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # typer's own exits and usage errors keep their codes and messages
        except ModelOpsError as exc:
            raise typer.Exit(report_error(exc, debug=debug)) from exc
        except KeyboardInterrupt as exc:
            typer.echo("mops: interrupted", err=True)
            raise typer.Exit(ExitCode.INTERRUPTED) from exc
        except Exception as exc:  # the boundary: anything else is a bug, reported not swallowed
            raise typer.Exit(report_error(exc, debug=debug)) from exc


app = typer.Typer(
    cls=_ErrorBoundary,
    name="mops",
    help="Pack, push and run simulation bundles on Dask; check a deployed ModelOps stack.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(bundle_app, name="bundle")
app.add_typer(cache_app, name="cache")
app.add_typer(dev_app, name="dev")
app.add_typer(env_app, name="env")


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", envvar="MOPS_DEBUG",
                               help="Show full tracebacks for errors (also MOPS_DEBUG=1)."),
) -> None:
    """Pack, push and run simulation bundles on Dask; check a deployed ModelOps stack."""
    import logging

    if debug:
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def main() -> None:
    """Console-script entry point (``mops``)."""
    app(prog_name="mops")
