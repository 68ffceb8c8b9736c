"""``mops cache verify`` and ``mops bundle pull --verify``: a tampered cache entry is found, evicted and
fetched again, and the exit code says so."""

from __future__ import annotations

import json
import os
from pathlib import Path

from modelops_infra.bundles import BundleCache
from modelops_infra.cli import ExitCode

SIM = "def run(params, seed):\n    return {'who': 'original'}\n"
EVIL = "def run(params, seed):\n    return {'who': 'tampered'}\n"  # same length as SIM


def pushed_and_pulled(mops, make_bundle, registry, tmp_path: Path) -> tuple[str, str]:
    """Push a bundle, pull it once (so it is cached); returns (reference, digest)."""
    ref = mops("bundle", "push", make_bundle("cached", {"sim.py": SIM}), "-r", registry.address
               ).stdout.strip().splitlines()[-1]
    assert mops("bundle", "pull", ref, "--dest", tmp_path / "first").exit_code == ExitCode.SUCCESS
    return ref, ref.rsplit("@", 1)[1]


def tamper_keeping_size_and_mtime(path: Path, text: str) -> None:
    st = path.stat()
    os.chmod(path, 0o644)
    path.write_text(text)
    os.chmod(path, 0o444)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_cache_verify_reports_every_sound_entry_and_exits_0(mops, make_bundle, registry, tmp_path) -> None:
    _, digest = pushed_and_pulled(mops, make_bundle, registry, tmp_path)
    result = mops("cache", "verify")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert f"{digest}  ok" in result.stdout
    assert "1 cached bundle(s) and 0 environment(s)" in result.stdout and "0 broken" in result.stdout


def test_cache_verify_evicts_a_tampered_entry_names_it_and_exits_cache(mops, make_bundle, registry, tmp_path) -> None:
    _, digest = pushed_and_pulled(mops, make_bundle, registry, tmp_path)
    cache = BundleCache(tmp_path / "cache")
    tamper_keeping_size_and_mtime(cache.entry_dir(digest) / "tree" / "sim.py", EVIL)
    result = mops("cache", "verify", "--json")
    assert result.exit_code == ExitCode.CACHE, result.output
    report = json.loads(result.stdout)
    assert report["entries"] == [{"digest": digest, "ok": False, "problem": report["entries"][0]["problem"]}]
    assert "tree/sim.py was modified" in report["entries"][0]["problem"]
    assert result.stderr.startswith("mops: error: 1 broken bundle(s) evicted from the cache"), result.stderr
    assert cache.entries() == [], "the broken entry should be gone"


def test_pull_with_verify_never_copies_a_tampered_file(mops, make_bundle, registry, tmp_path) -> None:
    ref, digest = pushed_and_pulled(mops, make_bundle, registry, tmp_path)
    tamper_keeping_size_and_mtime(BundleCache(tmp_path / "cache").entry_dir(digest) / "tree" / "sim.py", EVIL)
    result = mops("bundle", "pull", ref, "--dest", tmp_path / "second", "--verify")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert (tmp_path / "second" / "sim.py").read_text() == SIM
    assert digest in result.stdout


def test_cache_verify_counts_environments_and_evicts_one_a_crash_left_with_an_empty_file(mops, tmp_path) -> None:
    def build(venv: Path, work: Path) -> None:
        (venv / "lib").mkdir(parents=True)
        (venv / "lib" / "mod.py").write_text("X = 1\n" * 10)
        (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")

    cache = BundleCache(tmp_path / "cache")
    sound, broken = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    for key in (sound, broken):
        cache.ensure_environment(key, build)[1].release()
    (cache.environment_dir(broken) / "venv" / "lib" / "mod.py").write_text("")
    result = mops("cache", "verify", "--json")
    assert result.exit_code == ExitCode.CACHE, result.output
    report = json.loads(result.stdout)
    assert [(e["key"], e["ok"]) for e in report["environments"]] == [(sound, True), (broken, False)]
    assert "2 files and 16 bytes, built with 2 files and 76 bytes" in report["environments"][1]["problem"]
    assert result.stderr.startswith("mops: error: 1 broken environment(s) evicted from the cache"), result.stderr
    assert not cache.environment_dir(broken).exists() and cache.environment_dir(sound).is_dir()
    again = mops("cache", "verify")
    assert again.exit_code == ExitCode.SUCCESS and f"env {sound}  ok" in again.stdout
