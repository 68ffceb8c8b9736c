"""The exit-code table and the one error boundary: one stderr line, a traceback only with --debug."""

from __future__ import annotations

import pytest

from modelops_infra.cli import ExitCode, exit_code_for
from modelops_infra.errors import (
    BundleRunError,
    BundleValidationError,
    CacheError,
    ConfigurationError,
    IntegrityError,
    ModelOpsError,
    ReferenceError_,
    RegistryAuthError,
    RegistryError,
    RegistryNotFoundError,
    RegistryUnavailableError,
    RequirementsError,
    SmokeTestError,
    UnsafeArchiveError,
)


@pytest.mark.parametrize(("exc", "code"), [
    (BundleValidationError("x"), ExitCode.FAILURE),
    (SmokeTestError("boom", stage="run"), ExitCode.FAILURE),
    (ReferenceError_("x"), ExitCode.USAGE),
    (ConfigurationError("x"), ExitCode.CONFIG),
    (RegistryError("x"), ExitCode.REGISTRY),
    (RegistryUnavailableError("x"), ExitCode.REGISTRY),
    (RegistryAuthError("x"), ExitCode.AUTH),
    (RegistryNotFoundError("x"), ExitCode.NOT_FOUND),
    (IntegrityError("x"), ExitCode.INTEGRITY),
    (UnsafeArchiveError("x"), ExitCode.INTEGRITY),
    (CacheError("x"), ExitCode.CACHE),
    (RequirementsError("x"), ExitCode.RUN),
    (BundleRunError("x"), ExitCode.RUN),
    (ModelOpsError("x"), ExitCode.FAILURE),
    (ValueError("x"), ExitCode.INTERNAL),
])
def test_every_error_in_the_tree_maps_to_a_named_exit_code(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_for(exc) is code, f"{type(exc).__name__} should exit {code.name}"


def test_a_subclass_outside_the_table_takes_its_nearest_ancestors_code() -> None:
    class MirrorDown(RegistryUnavailableError):
        pass

    assert exit_code_for(MirrorDown("x")) is ExitCode.REGISTRY


def test_exit_codes_are_distinct_so_scripts_can_tell_failures_apart() -> None:
    values = [c.value for c in ExitCode]
    assert len(values) == len(set(values))
    assert ExitCode.SUCCESS == 0 and ExitCode.FAILURE == 1 and ExitCode.USAGE == 2


def test_a_library_error_prints_one_stderr_line_and_no_traceback(mops) -> None:
    result = mops("bundle", "inspect", "127.0.0.1:1/Not A Repo")
    assert result.exit_code == ExitCode.USAGE, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one stderr line, got: {result.stderr!r}"
    assert lines[0].startswith("mops: error: malformed bundle reference")
    assert "Traceback" not in result.output


def test_debug_adds_the_traceback_and_keeps_the_exit_code(mops) -> None:
    result = mops("--debug", "bundle", "inspect", "127.0.0.1:1/Not A Repo")
    assert result.exit_code == ExitCode.USAGE
    assert "Traceback (most recent call last)" in result.stderr
    assert "ReferenceError_" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("mops: error: malformed bundle reference")


def test_usage_errors_keep_clicks_exit_code_2(mops) -> None:
    result = mops("bundle", "push")
    assert result.exit_code == ExitCode.USAGE
    assert "Missing argument" in result.output


def test_console_script_entry_point_exports_main_and_app() -> None:
    import modelops_infra.cli as cli

    assert callable(cli.main)
    assert cli.app is not None


def test_the_boundary_shows_the_stage_once_the_first_line_and_the_hint(capsys) -> None:
    from modelops_infra.cli._app import report_error

    exc = BundleRunError("entrypoint sim:run raised ValueError: no\nTraceback (most recent call last):\n  File x",
                         stage="run", hint="fix the bundle")
    assert report_error(exc, debug=False) is ExitCode.RUN
    assert capsys.readouterr().err == ("mops: error: run: entrypoint sim:run raised ValueError: no"
                                       " (+2 more lines; re-run with --debug) (hint: fix the bundle)\n")


def test_the_boundary_shows_an_error_without_a_stage_as_its_message(capsys) -> None:
    from modelops_infra.cli._app import report_error

    assert report_error(ConfigurationError("MODELOPS_X is unset", hint="set it"), debug=False) is ExitCode.CONFIG
    assert capsys.readouterr().err == "mops: error: MODELOPS_X is unset (hint: set it)\n"
