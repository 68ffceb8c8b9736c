"""Packing never silently drops or adds files, and ``validate`` and ``push`` apply the same rules (one walk)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelops_infra.bundles import (
    BundleCache,
    BundleSettings,
    list_bundle_files,
    pack_bundle,
    pull_bundle,
    push_bundle,
    validate_bundle,
)
from modelops_infra.errors import BundleValidationError

REPO_ROOT = Path(__file__).resolve().parents[2]
SIM = "def run(params, seed):\n    return {}\n"


def as_unprivileged(code: str) -> dict:
    """Run ``code`` in a child that cannot read past file modes: root without CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH (what a non-root user is anyway). ``code`` sets ``out``; returns it."""
    drop = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    script = "import json\n" + textwrap.dedent(code) + "\nprint(json.dumps(out))\n"
    proc = subprocess.run([*drop, sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("what", ["directory", "small file", "large file"])
def test_an_unreadable_path_inside_a_bundle_is_an_error_naming_it_for_validate_and_push(what, make_bundle):
    root = make_bundle("unreadable", {"sim.py": SIM, "secret/a.txt": "a", "notes.txt": "n",
                                      "data/big.bin": os.urandom(600_000)})
    target = {"directory": root / "secret", "small file": root / "notes.txt", "large file": root / "data/big.bin"}[what]
    os.chmod(target, 0)
    try:
        out = as_unprivileged(f"""
            from modelops_infra.bundles import pack_bundle, validate_bundle
            from modelops_infra.errors import BundleValidationError
            out = {{"validate": validate_bundle({str(root)!r}, exclude=()).problems}}
            try:
                pack_bundle({str(root)!r}, exclude=())
                out["pack"] = "packed"
            except BundleValidationError as exc:
                out["pack"] = exc.problems
        """)
    finally:
        os.chmod(target, 0o755)
    assert len(out["validate"]) == 1 and str(target) in out["validate"][0], out
    assert "cannot be read" in out["validate"][0], out
    assert out["pack"] == out["validate"], "push must refuse exactly what validate reports, not pack without it"


def test_validate_and_push_report_the_same_problems(make_bundle, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sim.py").write_text(SIM)
    root = make_bundle("same-rules", {"pkg/util.py": "X = 1\n"})
    os.symlink(outside / "sim.py", root / "sim.py")  # the entry module lives outside the bundle
    os.mkfifo(root / "pkg" / "pipe")
    problems = validate_bundle(root).problems
    assert any("sim.py" in p and "leaves the bundle" in p for p in problems), problems
    assert any("pipe" in p and "not a regular file" in p for p in problems), problems
    with pytest.raises(BundleValidationError) as info:
        pack_bundle(root)
    assert info.value.problems == problems


def test_an_entry_module_left_out_by_bundleignore_is_a_validation_problem(make_bundle):
    root = make_bundle("ignored-entry", {"sim.py": SIM, ".bundleignore": "sim.py\n"})
    problems = validate_bundle(root).problems
    assert any("sim.py" in p and "not packed" in p for p in problems), problems


def test_the_bundle_cache_and_digest_memo_inside_a_bundle_are_never_packed(make_bundle, registry, tmp_path):
    root = make_bundle("self-cached", {"sim.py": SIM, "data/big.bin": os.urandom(600_000)})
    settings = BundleSettings(cache_dir=root / ".cache" / "bundles")  # memo: root/.cache/pack-digests
    first = push_bundle(root, registry.address, "tests/self-cached", settings=settings)
    pull_bundle(str(first.reference), tmp_path / "pulled", settings=settings)
    assert (settings.cache_dir / "entries").is_dir() and any(settings.memo_dir.iterdir()), "setup: both written"

    again = push_bundle(root, registry.address, "tests/self-cached", settings=settings)
    assert again.digest == first.digest, "the cache and memo written inside the bundle must not change its digest"
    assert validate_bundle(root, exclude=(settings.cache_dir, settings.memo_dir)).ok


def test_any_bundle_cache_and_tool_directories_inside_a_bundle_are_never_packed(make_bundle):
    root = make_bundle("tools", {"sim.py": SIM, ".pytest_cache/v/x": "1", ".mypy_cache/x.json": "{}",
                                 ".modelops/state": "s", ".ruff_cache/x": "", ".hypothesis/examples/x": "",
                                 "pkg/.ipynb_checkpoints/x.ipynb": "{}"})
    BundleCache(root / "scratch" / "cache")  # a cache of another configuration: found by its layout
    (root / "scratch" / "cache" / "entries" / "sha256" / "x").mkdir()
    (root / "scratch" / "notes.txt").write_text("kept")
    assert list_bundle_files(root) == ["manifest.json", "scratch/notes.txt", "sim.py"]
