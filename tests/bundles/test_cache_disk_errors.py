"""A cache on a disk that refuses writes -- a read-only mount, an unwritable ``locks/``, a full disk -- fails
with a CacheError naming the path and the cause, never a raw OSError, and leaves nothing half-written.

The mounts are real: a read-only bind mount and a small tmpfs, so these tests need root (``chmod`` would not
stop root, and would not give EROFS or ENOSPC).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops_infra.bundles import BundleCache, RegistryClient, pack_bundle, push_packed
from modelops_infra.errors import CacheError
from tests.bundles.helpers import staging_dirs

ROOT = os.geteuid() == 0


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` as a read-only bind mount of itself (needs root, as the whole suite has)."""
    assert ROOT, "a read-only cache is simulated with a read-only bind mount, which needs root"
    subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(path), str(path)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (needs root, as the whole suite has)."""
    assert ROOT, "a full disk is simulated with a small tmpfs mount, which needs root"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def pushed(make_bundle, registry) -> str:
    root = make_bundle("disk", {"sim.py": "def run(p, s):\n    return {}\n", "data/big.bin": os.urandom(2_000_000)})
    packed = pack_bundle(root)
    with RegistryClient(registry.address, environ={}) as client:
        push_packed(client, packed, "tests/disk")
    return packed.digest


def fetch(cache: BundleCache, registry, digest: str):
    with RegistryClient(registry.address, environ={}) as client:
        return cache.ensure("tests/disk", digest, client=client)


def test_fetching_into_a_read_only_cache_is_a_cache_error_naming_the_path(pushed, registry, tmp_path):
    cache = BundleCache(tmp_path / "cache")
    with read_only(cache.root), pytest.raises(CacheError) as info:
        fetch(cache, registry, pushed)
    message = str(info.value)
    assert str(cache.root / "locks") in message, f"the error should name the path at fault: {message}"
    assert "Read-only file system" in message, message


def test_using_a_cached_bundle_from_a_read_only_cache_is_a_cache_error_naming_the_path(pushed, registry, tmp_path):
    fetch(BundleCache(tmp_path / "cache"), registry, pushed)
    cache = BundleCache(tmp_path / "cache")
    with read_only(cache.root), pytest.raises(CacheError) as info:
        fetch(cache, registry, pushed)
    message = str(info.value)
    assert f"{cache.entry_dir(pushed)}/.used" in message, f"the error should name the path at fault: {message}"
    assert "Read-only file system" in message, message


def test_an_unwritable_locks_directory_is_a_cache_error_naming_it(pushed, registry, tmp_path):
    cache = BundleCache(tmp_path / "cache")
    with read_only(cache.root / "locks"), pytest.raises(CacheError) as info:
        fetch(cache, registry, pushed)
    assert f"{cache.root / 'locks'}/" in str(info.value), str(info.value)
    assert cache.entries() == []


def test_a_full_disk_is_a_cache_error_naming_the_path_and_leaves_no_staging(pushed, registry, tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        cache = BundleCache(disk / "cache")
        with pytest.raises(CacheError) as info:
            fetch(cache, registry, pushed)
        message = str(info.value)
        assert "No space left on device" in message and str(disk / "cache") in message, message
        assert cache.entries() == [] and staging_dirs(cache) == [], "a failed fetch must leave nothing behind"
