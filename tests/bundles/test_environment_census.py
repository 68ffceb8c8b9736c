"""An environment whose files did not all reach the disk is built again, not used.

Environments are published by one rename without an fsync per file, so after a
crash the rename may have reached the disk and some file data not: files left
empty or missing. The first use in each ``BundleCache`` object counts files and
bytes against ``meta.json``. The build here writes a small tree of real files
(the cache's contract does not depend on uv; the uv builds are tested in
``tests/worker/test_environments.py``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from modelops_infra.bundles import BundleCache

KEY = "sha256:" + "e" * 64


class Builds:
    """A build that lays out a venv-like tree and counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, venv: Path, work: Path) -> None:
        self.count += 1
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to("/usr/bin/python3")
        pkg = venv / "lib" / "python3.11" / "site-packages" / "pkg"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("VALUE = 1\n" * 100)
        (pkg / "core.py").write_text("def f():\n    return 2\n" * 50)
        (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")


def _built(root: Path) -> tuple[Builds, Path]:
    builds = Builds()
    env, lease = BundleCache(root).ensure_environment(KEY, builds)
    lease.release()
    return builds, env.path


def test_a_file_left_empty_by_a_crash_is_found_and_the_environment_built_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    builds, venv = _built(tmp_path)
    core = venv / "lib/python3.11/site-packages/pkg/core.py"
    core.write_text("")  # what a lost writeback leaves: the name, not the data
    again = Builds()
    with caplog.at_level(logging.WARNING, logger="modelops_infra.bundles._cache"):
        env, lease = BundleCache(tmp_path).ensure_environment(KEY, again)
    lease.release()
    assert again.count == 1, "the broken environment must be built again"
    assert core.read_text().startswith("def f()"), "and replaced whole"
    assert any("is broken" in r.getMessage() and str(KEY.split(":")[1]) in r.getMessage() for r in caplog.records)
    assert [p.name for p in (tmp_path / "staging").iterdir()] == [], "the broken one is not left in staging"


def test_a_missing_file_is_found_too(tmp_path: Path) -> None:
    _, venv = _built(tmp_path)
    (venv / "pyvenv.cfg").unlink()
    again = Builds()
    BundleCache(tmp_path).ensure_environment(KEY, again)[1].release()
    assert again.count == 1 and (venv / "pyvenv.cfg").exists()


def test_bytecode_the_interpreter_writes_and_a_sound_environment_are_used_as_they_are(tmp_path: Path) -> None:
    _, venv = _built(tmp_path)
    cache_dir = venv / "lib/python3.11/site-packages/pkg/__pycache__"
    cache_dir.mkdir()
    (cache_dir / "core.cpython-311.pyc").write_bytes(b"\0" * 500)
    again = Builds()
    env, lease = BundleCache(tmp_path).ensure_environment(KEY, again)
    lease.release()
    assert again.count == 0, "__pycache__ is the interpreter's, not a sign of a broken environment"
    assert env.path == venv


def test_an_environment_built_before_file_counts_is_checked_by_its_bytes(tmp_path: Path) -> None:
    _, venv = _built(tmp_path)
    meta_path = venv.parent / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert isinstance(meta["files"], int) and meta["files"] == 4
    del meta["files"]
    meta_path.write_text(json.dumps(meta))
    sound = Builds()
    BundleCache(tmp_path).ensure_environment(KEY, sound)[1].release()
    assert sound.count == 0
    (venv / "lib/python3.11/site-packages/pkg/__init__.py").write_text("")
    broken = Builds()
    BundleCache(tmp_path).ensure_environment(KEY, broken)[1].release()
    assert broken.count == 1
