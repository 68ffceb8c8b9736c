"""The ``mops`` command line: ``mops bundle ...``, ``mops dev ...``, ``mops env ...``.

``main`` is the console-script entry point; ``app`` is the typer application
(use it with ``typer.testing.CliRunner``). Exit codes are documented in
:mod:`modelops_infra.cli._exit` and re-exported as :class:`ExitCode`.
"""

from modelops_infra.cli._app import app, main
from modelops_infra.cli._exit import ExitCode, exit_code_for

__all__ = ["ExitCode", "app", "exit_code_for", "main"]
