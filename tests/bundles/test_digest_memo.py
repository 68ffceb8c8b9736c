"""The pack-time digest memo: skips re-hashing unchanged large files, never trusts a racy entry."""

from __future__ import annotations

import os
import time

from modelops_infra.bundles import _memo, pack_bundle
from modelops_infra.bundles._memo import DigestMemo


def _count_hashes(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = _memo.digest_file

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(_memo, "digest_file", counting)
    return calls


def _age(path, seconds=60):
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_unchanged_large_file_is_not_hashed_again(tmp_path, make_bundle, monkeypatch):
    bundle = make_bundle("memo", {"sim.py": "def run(p, s):\n    return {}\n", "data.bin": os.urandom(2 << 20)})
    _age(bundle / "data.bin")
    calls = _count_hashes(monkeypatch)
    first = pack_bundle(bundle, memo_dir=tmp_path / "memo")
    second = pack_bundle(bundle, memo_dir=tmp_path / "memo")
    assert first.digest == second.digest
    assert calls == [str(bundle.resolve() / "data.bin")], "the data file is hashed once, then remembered"


def test_a_changed_file_is_hashed_again_and_changes_the_digest(tmp_path, make_bundle, monkeypatch):
    bundle = make_bundle("memo2", {"sim.py": "def run(p, s):\n    return {}\n", "data.bin": os.urandom(2 << 20)})
    _age(bundle / "data.bin", 120)
    before = pack_bundle(bundle, memo_dir=tmp_path / "memo")
    (bundle / "data.bin").write_bytes(os.urandom(2 << 20))  # same size, new mtime
    after = pack_bundle(bundle, memo_dir=tmp_path / "memo")
    assert after.digest != before.digest
    assert after.digest == pack_bundle(bundle).digest, "memo and no-memo packing must agree"


def test_an_entry_recorded_right_after_a_write_is_not_trusted(tmp_path, monkeypatch):
    data = tmp_path / "f.bin"
    data.write_bytes(b"x" * 1024)
    calls = _count_hashes(monkeypatch)
    memo = DigestMemo(tmp_path / "memo", tmp_path)
    memo.digest(data)
    memo.digest(data)
    assert len(calls) == 2, "a file modified within 100 ms of recording may still change unseen: re-hash"


def test_a_corrupt_memo_file_costs_a_rehash_not_an_error(tmp_path, make_bundle):
    bundle = make_bundle("memo3", {"sim.py": "def run(p, s):\n    return {}\n", "data.bin": os.urandom(1 << 20)})
    memo_dir = tmp_path / "memo"
    pack_bundle(bundle, memo_dir=memo_dir)
    for f in memo_dir.iterdir():
        f.write_text("{not json")
    assert pack_bundle(bundle, memo_dir=memo_dir).digest == pack_bundle(bundle).digest
