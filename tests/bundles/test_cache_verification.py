"""The cache never serves what it did not verify: entries are read-only, checked on first use, and a
tampered or broken entry is evicted, logged and fetched again -- never run."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from modelops_infra.bundles import BundleCache, BundleSettings, RegistryClient, pack_bundle, pull_bundle, push_packed
from modelops_infra.worker._runtime import BundleRuntime
from tests.bundles.helpers import count, snapshot, staging_dirs

SIM = "def run(params, seed):\n    return {'seed': seed, 'who': 'original'}\n"
EVIL = "def run(params, seed):\n    return {'seed': seed, 'who': 'tampered!!'}\n"  # same length as SIM


@pytest.fixture
def bundle(make_bundle, fresh_registry):
    """A bundle with code, an executable script, a link and a large file, pushed to a registry of its own."""
    root = make_bundle("verified", {"sim.py": SIM, "pkg/util.py": "X = 1\n", "run.sh": "#!/bin/sh\n",
                                    "data/big.bin": os.urandom(600_000)})
    os.chmod(root / "run.sh", 0o755)
    os.symlink("util.py", root / "pkg/alias.py")
    packed = pack_bundle(root)
    with _client(fresh_registry) as client:
        push_packed(client, packed, "tests/verified")
    return root, packed


def _client(registry) -> RegistryClient:
    return RegistryClient(registry.address, environ={})


def fetch(cache: BundleCache, registry, digest: str):
    with _client(registry) as client:
        return cache.ensure("tests/verified", digest, client=client)


def manifest_gets(registry, digest: str) -> int:
    return count(registry, "GET", f"/manifests/{digest}")


def test_a_committed_entry_is_read_only(bundle, fresh_registry, tmp_path):
    _, packed = bundle
    local = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    entry = local.path.parent
    modes = {p.relative_to(entry).as_posix(): stat.S_IMODE(p.lstat().st_mode)
             for p in [entry, *entry.rglob("*")] if not p.is_symlink() and p.name != ".used"}
    assert modes["."] == 0o555 and modes["tree"] == 0o555 and modes["tree/pkg"] == 0o555, modes
    assert modes["tree/sim.py"] == 0o444 and modes["tree/data/big.bin"] == 0o444, modes
    assert modes["tree/run.sh"] == 0o555, "an executable stays executable, read-only"
    assert modes["meta.json"] == 0o444


def test_the_record_in_meta_json_lists_every_file_with_size_mtime_and_digest(bundle, fresh_registry, tmp_path):
    root, packed = bundle
    local = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    meta = json.loads((local.path.parent / "meta.json").read_text())
    expected = {f"tree/{rel}" for rel, kind in snapshot(root).items() if not kind.startswith("link:")}
    assert set(meta["files"]) == expected
    size, mtime_ns, digest = meta["files"]["tree/data/big.bin"]
    st_ = (local.path / "data/big.bin").stat()
    assert (size, mtime_ns) == (st_.st_size, st_.st_mtime_ns)
    assert digest == packed.layers[1].descriptor.digest
    assert meta["links"] == {"tree/pkg/alias.py": "util.py"}


TAMPERS = {
    "a file edited": lambda tree: _rewrite(tree / "sim.py", SIM.replace("original", "changed")),
    "a large file truncated": lambda tree: _rewrite(tree / "data/big.bin", b"short"),
    "a file deleted": lambda tree: _writable(tree / "pkg", lambda: (tree / "pkg/util.py").unlink()),
    "a file added": lambda tree: _writable(tree, lambda: (tree / "sitecustomize.py").write_text("import os\n")),
    "a link retargeted": lambda tree: _writable(tree / "pkg", lambda: (
        (tree / "pkg/alias.py").unlink(), os.symlink("../sim.py", tree / "pkg/alias.py"))),
    "a directory replaced by a file": lambda tree: _replace_dir(tree),
    "the tree replaced by a link to an edited copy": lambda tree: _swap_tree_for_link(tree),
}


def _swap_tree_for_link(tree: Path):
    """Move the tree out, edit it there keeping every size and mtime, and link it back in."""
    elsewhere = tree.parents[3].parent / "elsewhere"  # beside the cache root
    _writable(tree.parent, lambda: os.rename(tree, elsewhere))
    target = elsewhere / "sim.py"
    st_ = target.stat()
    _rewrite(target, EVIL)
    os.utime(target, ns=(st_.st_atime_ns, st_.st_mtime_ns))
    _writable(tree.parent, lambda: os.symlink(elsewhere, tree))


def _writable(folder: Path, action):
    os.chmod(folder, 0o755)
    try:
        action()
    finally:
        os.chmod(folder, 0o555)


def _rewrite(path: Path, data):
    os.chmod(path, 0o644)
    if data is None:
        return
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def _replace_dir(tree: Path):
    import shutil

    def swap():
        os.chmod(tree / "pkg", 0o755)
        shutil.rmtree(tree / "pkg")
        (tree / "pkg").write_text("not a directory")

    _writable(tree, swap)


@pytest.mark.parametrize("case", sorted(TAMPERS))
def test_a_tampered_entry_is_evicted_logged_and_fetched_again(case, bundle, fresh_registry, tmp_path, caplog):
    root, packed = bundle
    first = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    TAMPERS[case](first.path)
    before = manifest_gets(fresh_registry, packed.digest)

    with caplog.at_level(logging.WARNING, logger="modelops_infra.bundles._cache"):
        again = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)  # a new process's first use

    assert snapshot(again.path) == snapshot(root), "the entry served after tampering should be the original bundle"
    assert manifest_gets(fresh_registry, packed.digest) == before + 1, "the broken entry should be fetched again"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(first.path.parent) in w and "evicted" in w for w in warnings), warnings
    assert staging_dirs(BundleCache(tmp_path / "cache")) == []


def test_get_returns_none_for_a_tampered_entry_and_evicts_it(bundle, fresh_registry, tmp_path):
    _, packed = bundle
    first = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    _rewrite(first.path / "sim.py", EVIL + "# longer\n")
    cache = BundleCache(tmp_path / "cache")
    assert cache.get(packed.digest) is None, "a tampered entry must never be returned"
    assert cache.entries() == [] and not first.path.parent.exists(), "and it should be gone"


@pytest.mark.parametrize("damage", ["missing", "not JSON", "lacks files", "lacks size", "wrong digest", "a list"])
def test_a_broken_meta_json_is_evicted_and_fetched_again(damage, bundle, fresh_registry, tmp_path, caplog):
    root, packed = bundle
    first = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    meta_path = first.path.parent / "meta.json"
    meta = json.loads(meta_path.read_text())
    os.chmod(first.path.parent, 0o755)
    meta_path.unlink()
    if damage == "not JSON":
        meta_path.write_text("{\"digest\": ")
    elif damage == "lacks files":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "files"}))
    elif damage == "lacks size":
        meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "size"}))
    elif damage == "wrong digest":
        meta_path.write_text(json.dumps({**meta, "digest": "sha256:" + "0" * 64}))
    elif damage == "a list":
        meta_path.write_text("[]")

    with caplog.at_level(logging.WARNING, logger="modelops_infra.bundles._cache"):
        again = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)

    assert snapshot(again.path) == snapshot(root)
    assert any("meta.json" in r.getMessage() and "evicted" in r.getMessage() for r in caplog.records), \
        [r.getMessage() for r in caplog.records]


def test_a_directory_already_at_the_entry_path_never_blocks_the_bundle(bundle, fresh_registry, tmp_path):
    root, packed = bundle
    cache = BundleCache(tmp_path / "cache")
    planted = cache.entry_dir(packed.digest)
    (planted / "tree").mkdir(parents=True)  # as a hostile archive could once plant it
    (planted / "tree" / "sim.py").write_text(EVIL)
    local = fetch(cache, fresh_registry, packed.digest)
    assert snapshot(local.path) == snapshot(root)


def test_a_touched_but_unchanged_file_is_served_without_a_new_fetch(bundle, fresh_registry, tmp_path):
    _, packed = bundle
    first = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    os.utime(first.path / "data/big.bin", (1, 1))
    before = manifest_gets(fresh_registry, packed.digest)
    again = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    assert again.path == first.path
    assert manifest_gets(fresh_registry, packed.digest) == before, "a re-hash that matches should keep the entry"


def test_a_same_size_same_mtime_edit_is_caught_by_a_full_verify(bundle, fresh_registry, tmp_path):
    root, packed = bundle
    first = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    target = first.path / "sim.py"
    st_ = target.stat()
    _rewrite(target, EVIL)
    os.chmod(target, 0o444)
    os.utime(target, ns=(st_.st_atime_ns, st_.st_mtime_ns))

    cache = BundleCache(tmp_path / "cache")
    results = dict(cache.verify())
    assert "tree/sim.py was modified" in (results[packed.digest] or ""), results
    assert cache.entries() == [], "verify should evict what it found broken"
    again = fetch(cache, fresh_registry, packed.digest)
    assert snapshot(again.path) == snapshot(root)
    assert dict(cache.verify()) == {packed.digest: None}


def test_pull_with_verify_rehashes_the_cached_entry_and_fetches_it_again(bundle, fresh_registry, tmp_path):
    root, packed = bundle
    settings = BundleSettings(cache_dir=tmp_path / "cache")
    ref = f"{fresh_registry.address}/tests/verified@{packed.digest}"
    first = pull_bundle(ref, tmp_path / "one", settings=settings)
    target = first.path / "sim.py"
    st_ = target.stat()
    _rewrite(target, EVIL)
    os.utime(target, ns=(st_.st_atime_ns, st_.st_mtime_ns))

    pull_bundle(ref, tmp_path / "two", settings=settings, verify=True)
    assert snapshot(tmp_path / "two") == snapshot(root), "pull --verify must not copy a tampered file"
    assert os.access(tmp_path / "two" / "sim.py", os.W_OK) and \
        stat.S_IMODE((tmp_path / "two" / "sim.py").stat().st_mode) == 0o644, "the pulled copy is the user's: writable"


def test_a_tampered_bundle_is_never_run_by_a_worker(bundle, fresh_registry, tmp_path):
    _, packed = bundle
    settings = BundleSettings(registry=fresh_registry.address, cache_dir=tmp_path / "cache")
    first = fetch(BundleCache(tmp_path / "cache"), fresh_registry, packed.digest)
    _rewrite(first.path / "sim.py", EVIL + "\n")

    runtime = BundleRuntime(settings)
    try:
        result = runtime.run("tests/verified", packed.digest, None, {}, 7)
    finally:
        runtime.close()
    assert result == {"seed": 7, "who": "original"}, "the worker must run the verified bundle, not the edited one"


def test_pull_holds_a_lease_while_it_copies_so_eviction_cannot_remove_the_entry(make_bundle, fresh_registry, tmp_path):
    files: dict[str, str | bytes] = {"sim.py": SIM}
    files.update({f"data/f{i:04d}.txt": f"{i}\n" * 50 for i in range(1500)})  # a copy that takes a while
    root = make_bundle("leased", files)
    packed = pack_bundle(root)
    with _client(fresh_registry) as client:
        push_packed(client, packed, "tests/verified")
    settings = BundleSettings(cache_dir=tmp_path / "cache")
    evictor = BundleCache(tmp_path / "cache")
    stop = threading.Event()
    evicted: list[str] = []

    def evict_all_the_time() -> None:
        while not stop.is_set():
            evicted.extend(evictor.evict(max_bytes=0))

    thread = threading.Thread(target=evict_all_the_time)
    thread.start()
    try:
        pull_bundle(f"{fresh_registry.address}/tests/verified@{packed.digest}", tmp_path / "out", settings=settings)
    finally:
        stop.set()
        thread.join(30)
    assert snapshot(tmp_path / "out") == snapshot(root), "the copy should be complete though an evictor ran throughout"
    assert not any((tmp_path / "cache" / "leases").rglob("*.*")), "the lease should be released after the copy"
