"""Fixtures for the ``mops`` CLI tests: a runner, an isolated HOME and bundle cache."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from modelops_infra.cli import app


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every CLI test gets its own HOME and bundle cache, and no ambient registry or scheduler."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MODELOPS_BUNDLE_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("MODELOPS_BUNDLE_REGISTRY", "MODELOPS_BUNDLE_REPOSITORY", "DASK_SCHEDULER", "MOPS_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def mops() -> Iterator[Callable[..., Result]]:
    """``mops("bundle", "push", ...)`` runs the CLI in-process and returns click's Result."""
    runner = CliRunner()

    def _run(*args: str, **kw) -> Result:
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False, **kw)

    yield _run
