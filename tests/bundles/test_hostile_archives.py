"""Safe extraction: hostile layers are refused, naming the entry, and nothing reaches the cache or outside it."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from modelops_infra.bundles import FILE_LAYER_MEDIA_TYPE, BundleCache, Descriptor, digest_bytes
from modelops_infra.bundles._extract import ExtractBudget, extract_code_tar, place_file
from modelops_infra.errors import UnsafeArchiveError
from tests.bundles.helpers import code_layer, code_tar, member, push_raw, regular, staging_dirs

ESCAPE = "../../../../../../../../../../tmp/modelops-escape"  # from any tree dir, lands outside it

HOSTILE_CODE_MEMBERS = {
    "absolute path": ([regular("/tmp/modelops-abs.py", b"x")], "/tmp/modelops-abs.py"),
    "dot-dot path": ([regular("../evil.py", b"x")], "../evil.py"),
    "dot-dot inside a path": ([regular("pkg/../../evil.py", b"x")], "pkg/../../evil.py"),
    "symlink to an absolute path": ([(member("etc-link", tarfile.SYMTYPE, linkname="/etc/passwd"), None)], "etc-link"),
    "symlink climbing out": ([(member("pkg/up", tarfile.SYMTYPE, linkname="../../outside"), None)], "pkg/up"),
    "symlink chain climbing out": ([(member("d", tarfile.DIRTYPE, mode=0o755), None),
                                    (member("d/l", tarfile.SYMTYPE, linkname=".."), None),
                                    (member("l2", tarfile.SYMTYPE, linkname="d/l/.."), None)], "l2"),
    "symlink chain planted in reverse order": ([(member("l2", tarfile.SYMTYPE, linkname="d/l/.."), None),
                                               (member("d", tarfile.DIRTYPE, mode=0o755), None),
                                               (member("d/l", tarfile.SYMTYPE, linkname=".."), None)], "l2"),
    "hardlink to an absolute path": ([(member("hl", tarfile.LNKTYPE, linkname="/etc/passwd"), None)], "hl"),
    "hardlink climbing out": ([(member("hl", tarfile.LNKTYPE, linkname=ESCAPE), None)], "hl"),
    "character device": ([(member("dev/zero", tarfile.CHRTYPE), None)], "dev/zero"),
    "block device": ([(member("dev/sda", tarfile.BLKTYPE), None)], "dev/sda"),
    "FIFO": ([(member("pipe", tarfile.FIFOTYPE), None)], "pipe"),
    "duplicate path": ([regular("sim.py", b"def run(p, s): return {'evil': 1}\n")], "sim.py"),
    "directory through a chain of links that each climb one level": (
        [(member("a", tarfile.DIRTYPE, mode=0o755), None), (member("a/l", tarfile.SYMTYPE, linkname=".."), None),
         (member("l2", tarfile.SYMTYPE, linkname="a/l/.."), None), (member("l3", tarfile.SYMTYPE, linkname="l2/.."), None),
         (member("l4", tarfile.SYMTYPE, linkname="l3/.."), None), (member("l5", tarfile.SYMTYPE, linkname="l4/.."), None),
         regular("l5/outside/planted/x.py", b"x")], "l5/outside/planted/x.py"),
    "file through an in-tree symlink to a directory": ([(member("pkg", tarfile.DIRTYPE, mode=0o755), None),
                                                       (member("alias", tarfile.SYMTYPE, linkname="pkg"), None),
                                                       regular("alias/x.py", b"x")], "alias/x.py"),
    "file and then a directory of the same name": ([regular("f", b"x"), regular("f/g", b"y")], "f/g"),
    "directory over a file": ([regular("f", b"x"), (member("f", tarfile.DIRTYPE, mode=0o755), None)], "f"),
    "hardlink to a directory": ([(member("d", tarfile.DIRTYPE, mode=0o755), None),
                                 (member("hd", tarfile.LNKTYPE, linkname="d"), None)], "hd"),
    "overlong name": ([regular("n" * 300 + ".py", b"x")], "n" * 300 + ".py"),
    "overlong directory name": ([regular("d" * 300 + "/x.py", b"x")], "d" * 300 + "/x.py"),
    "file over a symlink": ([(member("alias", tarfile.SYMTYPE, linkname="sim.py"), None), regular("alias", b"x")],
                            "alias"),
}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the cache; hostile entries must never write here."""
    path = tmp_path / "outside"
    path.mkdir()
    return path


def assert_refused_and_nothing_kept(cache: BundleCache, exc: UnsafeArchiveError, entry: str, outside: Path) -> None:
    assert repr(entry) in str(exc) or entry in str(exc), f"the error should name entry {entry!r}; got: {exc}"
    assert cache.entries() == [], "a refused bundle must not be cached"
    assert staging_dirs(cache) == [], "the staging directory of a refused bundle should be removed"
    assert list(outside.iterdir()) == [], f"nothing may be written outside the cache; found {list(outside.iterdir())}"
    assert not Path("/tmp/modelops-abs.py").exists() and not Path("/tmp/modelops-escape").exists()


@pytest.mark.parametrize("case", sorted(HOSTILE_CODE_MEMBERS))
def test_a_hostile_code_layer_is_refused_naming_the_entry(case, client, registry, tmp_path, outside):
    extra, entry = HOSTILE_CODE_MEMBERS[case]
    digest = push_raw(client, "tests/hostile", [code_layer(code_tar(*extra, name=f"hostile-{len(case)}"))])
    cache = BundleCache(tmp_path / "cache")
    with pytest.raises(UnsafeArchiveError) as info:
        cache.ensure("tests/hostile", digest, client=client)
    assert_refused_and_nothing_kept(cache, info.value, entry, outside)


def file_layer(title: str, data: bytes) -> tuple[Descriptor, bytes]:
    return Descriptor(FILE_LAYER_MEDIA_TYPE, digest_bytes(data), len(data),
                      {"org.opencontainers.image.title": title, "io.modelops.bundle.file.mode": "0644"}), data


def test_a_code_layer_over_the_extraction_limit_is_refused(client, tmp_path, outside):
    digest = push_raw(client, "tests/hostile", [code_layer(code_tar(regular("data/huge.csv", b"1," * 40_000)))])
    cache = BundleCache(tmp_path / "cache", max_extract_bytes=64 * 1024)
    with pytest.raises(UnsafeArchiveError) as info:
        cache.ensure("tests/hostile", digest, client=client)
    assert "extraction limit of 65536 bytes" in str(info.value)
    assert_refused_and_nothing_kept(cache, info.value, "bundle-code.tar", outside)


def test_a_hardlink_bomb_over_the_extraction_limit_is_refused(client, tmp_path, outside):
    # A small tar can expand past the limit by hardlinking one file many times: each copy counts.
    links = [(member(f"copy{i}", tarfile.LNKTYPE, linkname="blob.bin"), None) for i in range(5)]
    layer = code_layer(code_tar(regular("blob.bin", os.urandom(20_000)), *links, name="bomb"))
    assert layer[0].size < 64 * 1024, "setup: the layer itself should be under the limit"
    digest = push_raw(client, "tests/hostile", [layer])
    cache = BundleCache(tmp_path / "cache", max_extract_bytes=64 * 1024)
    with pytest.raises(UnsafeArchiveError) as info:
        cache.ensure("tests/hostile", digest, client=client)
    assert_refused_and_nothing_kept(cache, info.value, "copy2", outside)


def test_the_extraction_limit_covers_all_layers_together(client, tmp_path, outside):
    layers = [code_layer(code_tar(regular("a.bin", os.urandom(40_000)), name="summed")),
              file_layer("data/b.bin", os.urandom(40_000))]
    digest = push_raw(client, "tests/hostile", layers)
    cache = BundleCache(tmp_path / "cache", max_extract_bytes=64 * 1024)
    with pytest.raises(UnsafeArchiveError) as info:
        cache.ensure("tests/hostile", digest, client=client)
    assert_refused_and_nothing_kept(cache, info.value, "data/b.bin", outside)


@pytest.mark.parametrize("title", ["../x", "data/../../x", "/tmp/modelops-abs.py", "sim.py"])
def test_a_file_layer_whose_title_escapes_or_collides_is_refused(title, client, tmp_path, outside):
    layers = [code_layer(code_tar()), file_layer(title, os.urandom(1000))]
    digest = push_raw(client, "tests/hostile", layers)
    cache = BundleCache(tmp_path / "cache")
    with pytest.raises(UnsafeArchiveError) as info:
        cache.ensure("tests/hostile", digest, client=client)
    assert_refused_and_nothing_kept(cache, info.value, title, outside)


def test_a_file_layer_over_the_extraction_limit_is_refused_before_download(client, registry, tmp_path, outside):
    data = os.urandom(200_000)
    digest = push_raw(client, "tests/hostile", [code_layer(code_tar()), file_layer("data/big.bin", data)])
    cache = BundleCache(tmp_path / "cache", max_extract_bytes=100_000)
    with pytest.raises(UnsafeArchiveError) as info:
        cache.ensure("tests/hostile", digest, client=client)
    assert_refused_and_nothing_kept(cache, info.value, "data/big.bin", outside)
    assert registry.requests_matching("GET", digest_bytes(data)) == 0, "an oversized layer should not be downloaded"


def test_a_layer_of_unknown_media_type_is_refused(client, tmp_path, outside):
    data = b"#!/bin/sh\n"
    odd = Descriptor("application/x-sh", digest_bytes(data), len(data), {"org.opencontainers.image.title": "x.sh"})
    digest = push_raw(client, "tests/hostile", [code_layer(code_tar()), (odd, data)])
    cache = BundleCache(tmp_path / "cache")
    with pytest.raises(UnsafeArchiveError) as info:
        cache.ensure("tests/hostile", digest, client=client)
    assert "application/x-sh" in str(info.value)
    assert_refused_and_nothing_kept(cache, info.value, digest_bytes(data), outside)


def test_a_safe_hand_made_bundle_with_inside_links_is_accepted(client, tmp_path):
    extra = [(member("pkg", tarfile.DIRTYPE, mode=0o755), None), regular("pkg/mod.py", b"A = 1\n"),
             (member("pkg/alias.py", tarfile.SYMTYPE, linkname="mod.py"), None),
             (member("copy.py", tarfile.LNKTYPE, linkname="pkg/mod.py"), None)]
    digest = push_raw(client, "tests/hostile", [code_layer(code_tar(*extra, name="benign"))])
    cache = BundleCache(tmp_path / "cache")
    local = cache.ensure("tests/hostile", digest, client=client)
    assert (local.path / "pkg/alias.py").read_text() == "A = 1\n"
    assert (local.path / "copy.py").read_text() == "A = 1\n"
    assert cache.entries() == [digest]


# -- extract_code_tar on its own ------------------------------------------------------------------


def tar_stream(*members) -> io.BytesIO:
    from tests.bundles.helpers import tar_of

    return io.BytesIO(tar_of(*members))


def test_extract_writes_files_with_normalized_modes_and_returns_their_paths(tmp_path):
    src = tar_stream(regular("./a//b.py", b"b", mode=0o600), regular("run.sh", b"#!", mode=0o700),
                     (member("link", tarfile.SYMTYPE, linkname="a/b.py"), None))
    written = extract_code_tar(src, tmp_path, ExtractBudget(1000))
    assert written == ["a/b.py", "run.sh", "link"]
    assert (tmp_path / "a/b.py").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "run.sh").stat().st_mode & 0o777 == 0o755
    assert os.readlink(tmp_path / "link") == "a/b.py"


@pytest.mark.parametrize("case", sorted(set(HOSTILE_CODE_MEMBERS) - {"duplicate path"}))
def test_extract_refuses_each_hostile_member_naming_it(case, tmp_path):
    extra, entry = HOSTILE_CODE_MEMBERS[case]
    dest = tmp_path / "tree"
    dest.mkdir()
    with pytest.raises(UnsafeArchiveError) as info:
        extract_code_tar(tar_stream(regular("ok.py", b""), *extra), dest, ExtractBudget(10_000))
    assert entry in str(info.value), f"expected the error to name {entry!r}; got: {info.value}"


def test_extract_refuses_a_symlink_loop_naming_it(tmp_path):
    members = [(member("a", tarfile.SYMTYPE, linkname="b"), None), (member("b", tarfile.SYMTYPE, linkname="a"), None)]
    with pytest.raises(UnsafeArchiveError) as info:
        extract_code_tar(tar_stream(*members), tmp_path, ExtractBudget(1000))
    assert "'a'" in str(info.value) and "cannot be resolved" in str(info.value)


def test_extract_counts_every_file_against_one_budget(tmp_path):
    budget = ExtractBudget(100)
    with pytest.raises(UnsafeArchiveError) as info:
        extract_code_tar(tar_stream(regular("a", b"x" * 60), regular("b", b"x" * 60)), tmp_path, budget)
    assert "'b'" in str(info.value) and "100 bytes" in str(info.value)


def test_extract_counts_hardlinked_copies_against_the_budget(tmp_path):
    members = [regular("a", b"x" * 60), (member("b", tarfile.LNKTYPE, linkname="a"), None)]
    with pytest.raises(UnsafeArchiveError) as info:
        extract_code_tar(tar_stream(*members), tmp_path, ExtractBudget(100))
    assert "'b'" in str(info.value)


def test_extract_refuses_something_that_is_not_a_tar(tmp_path):
    with pytest.raises(UnsafeArchiveError) as info:
        extract_code_tar(io.BytesIO(b"PK\x03\x04 this is a zip"), tmp_path, ExtractBudget(1000))
    assert "not a tar archive" in str(info.value)


def test_extract_does_not_write_through_a_symlinked_directory_leading_out(tmp_path):
    dest, outside = tmp_path / "tree", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "sneaky")  # as if an earlier layer had planted it
    with pytest.raises(UnsafeArchiveError) as info:
        extract_code_tar(tar_stream(regular("sneaky/x.py", b"x")), dest, ExtractBudget(1000))
    assert "sneaky/x.py" in str(info.value)
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("title", ["../x", "/abs", "a/../../x", ""])
def test_place_file_refuses_titles_that_leave_the_tree(title, tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"data")
    (tmp_path / "tree").mkdir()
    with pytest.raises(UnsafeArchiveError):
        place_file(blob, tmp_path / "tree", title, 0o644, ExtractBudget(1000))
    assert blob.exists(), "a refused blob should be left for the caller to clean up"


def test_place_file_moves_the_blob_to_its_title_with_a_normalized_mode(tmp_path):
    blob = tmp_path / "blob"
    blob.write_bytes(b"data")
    (tmp_path / "tree").mkdir()
    assert place_file(blob, tmp_path / "tree", "data/./w.bin", 0o700, ExtractBudget(1000)) == "data/w.bin"
    assert (tmp_path / "tree/data/w.bin").read_bytes() == b"data"
    assert (tmp_path / "tree/data/w.bin").stat().st_mode & 0o777 == 0o755


def test_extract_refuses_a_truncated_tar_naming_the_last_entry_it_read(tmp_path):
    from tests.bundles.helpers import tar_of

    data = tar_of(regular("a.py", b"a" * 100), regular("b.py", b"b" * 5000))
    with pytest.raises(UnsafeArchiveError) as info:
        extract_code_tar(io.BytesIO(data[:2048]), tmp_path, ExtractBudget(100_000))
    assert "damaged tar archive" in str(info.value) and "'a.py'" in str(info.value), str(info.value)
