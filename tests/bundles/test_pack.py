"""Packing: a reproducible OCI artifact whose digest depends on content alone, in the documented layout."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from modelops_infra.bundles import (
    ARTIFACT_TYPE,
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    DEFAULT_FILE_THRESHOLD,
    FILE_LAYER_MEDIA_TYPE,
    digest_bytes,
    pack_bundle,
)
from modelops_infra.errors import BundleValidationError

BIG = random.Random(7).randbytes(DEFAULT_FILE_THRESHOLD + 4096)
FILES: dict[str, bytes] = {
    "manifest.json": json.dumps({"name": "repro", "version": "2.1.0", "entrypoint": "pkg.model:run",
                                 "description": "reproducibility"}).encode(),
    "pkg/__init__.py": b"",
    "pkg/model.py": b"def run(params, seed):\n    return {'seed': seed}\n",
    "pkg/util.py": b"X = 1\n",
    "scripts/run.sh": b"#!/bin/sh\necho hi\n",
    "data/small.csv": b"a,b\n1,2\n",
    "data/big.bin": BIG,
    "README.md": b"# repro\n",
}
EXECUTABLE = {"scripts/run.sh"}


def write_tree(root: Path, *, order: list[str], umask: int, base_mode: int, mtime: float) -> Path:
    """Write FILES under ``root`` in ``order`` with a given umask, non-exec mode bits and mtimes."""
    old = os.umask(umask)
    try:
        for i, rel in enumerate(order):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(FILES[rel])
            os.chmod(path, (base_mode | 0o111) & ~umask if rel in EXECUTABLE else base_mode & ~umask)
            os.utime(path, (mtime + i * 37, mtime + i * 37))
    finally:
        os.umask(old)
    return root


@pytest.fixture
def original(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "a" / "repro", order=sorted(FILES), umask=0o022, base_mode=0o644, mtime=1_000_000)


def test_packing_the_same_directory_twice_gives_the_same_digest(original):
    first, second = pack_bundle(original), pack_bundle(original)
    assert first.digest == second.digest
    assert first.manifest_bytes == second.manifest_bytes


def test_digest_ignores_mtimes_umask_mode_bits_file_order_owner_and_location(original, tmp_path):
    copy = write_tree(tmp_path / "elsewhere" / "deeper" / "other-name", order=sorted(FILES, reverse=True),
                      umask=0o077, base_mode=0o664, mtime=1_700_000_000)
    assert os.stat(copy / "pkg/model.py").st_mode & 0o777 == 0o600, "setup: the copy should have different mode bits"
    if os.geteuid() == 0:  # only root can give files away; the tar header check below holds either way
        for dirpath, dirnames, filenames in os.walk(copy):
            for name in dirnames + filenames:
                os.chown(os.path.join(dirpath, name), 4242, 4343)
        assert (copy / "pkg/model.py").stat().st_uid == 4242, "setup: the copy should belong to another user"
    a, b = pack_bundle(original), pack_bundle(copy)
    assert a.digest == b.digest, "same content must give the same manifest digest whatever the file metadata"
    assert a.layers[0].data == b.layers[0].data, "the code layer tar should be byte-identical"
    with tarfile.open(fileobj=io.BytesIO(b.layers[0].data)) as tar:
        for info in tar.getmembers():
            assert (info.uid, info.gid, info.uname, info.gname, info.mtime) == (0, 0, "", "", 0), (
                f"{info.name}: owner and mtime should be normalized, got uid={info.uid} gid={info.gid}"
                f" uname={info.uname!r} gname={info.gname!r} mtime={info.mtime}"
            )


@pytest.mark.parametrize(("rel", "old", "new"), [("pkg/model.py", b"'seed'", b"'sEed'"),
                                                 ("manifest.json", b"2.1.0", b"2.1.1"),
                                                 ("data/big.bin", BIG[:1], bytes([BIG[0] ^ 1]))])
def test_changing_one_byte_changes_the_digest(original, rel, old, new):
    before = pack_bundle(original).digest
    path = original / rel
    path.write_bytes(path.read_bytes().replace(old, new, 1))
    assert pack_bundle(original).digest != before, f"changing one byte of {rel} should change the digest"


def test_the_executable_bit_is_content_and_changes_the_digest(original):
    before = pack_bundle(original).digest
    os.chmod(original / "pkg/util.py", 0o755)
    assert pack_bundle(original).digest != before, "making a file executable should change the digest"


def test_ignored_files_do_not_change_the_digest(original):
    before = pack_bundle(original).digest
    (original / ".git").mkdir()
    (original / ".git/HEAD").write_text("ref: refs/heads/main\n")
    (original / "pkg/__pycache__").mkdir()
    (original / "pkg/__pycache__/model.cpython-311.pyc").write_bytes(b"\0" * 10)
    assert pack_bundle(original).digest == before, "files under .git and __pycache__ must not be packed"


def test_a_changed_source_file_leaves_the_large_file_layer_unchanged(original):
    before = pack_bundle(original)
    (original / "pkg/util.py").write_text("X = 2\n")
    after = pack_bundle(original)
    assert before.layers[0].descriptor.digest != after.layers[0].descriptor.digest
    assert before.layers[1].descriptor == after.layers[1].descriptor, "the data file's blob should not change"


# -- OCI layout ----------------------------------------------------------------------------------


def test_manifest_uses_the_bundle_artifact_and_config_media_types(original):
    packed = pack_bundle(original)
    doc = json.loads(packed.manifest_bytes)
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert doc["artifactType"] == ARTIFACT_TYPE == "application/vnd.modelops.bundle.v1"
    assert doc["config"]["mediaType"] == CONFIG_MEDIA_TYPE
    assert CONFIG_MEDIA_TYPE.startswith("application/vnd.modelops.bundle.")
    assert set(doc) == {"schemaVersion", "mediaType", "artifactType", "config", "layers", "annotations"}, (
        f"only standard OCI manifest fields are allowed, got {sorted(doc)}"
    )
    assert packed.digest == digest_bytes(packed.manifest_bytes)


def test_manifest_annotations_carry_title_and_version_and_no_created_timestamp(original):
    packed = pack_bundle(original)
    doc = json.loads(packed.manifest_bytes)
    assert doc["annotations"]["org.opencontainers.image.title"] == "repro"
    assert doc["annotations"]["org.opencontainers.image.version"] == "2.1.0"
    assert b"org.opencontainers.image.created" not in packed.manifest_bytes, "a wall-clock timestamp breaks reproducibility"


def test_manifest_json_is_canonical(original):
    packed = pack_bundle(original)
    doc = json.loads(packed.manifest_bytes)
    assert packed.manifest_bytes == json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_config_blob_holds_the_bundle_manifest_fields(original):
    packed = pack_bundle(original)
    assert json.loads(packed.config.data) == json.loads(FILES["manifest.json"])


def test_small_files_go_into_one_sorted_normalized_code_tar(original):
    packed = pack_bundle(original)
    code = packed.layers[0]
    assert code.descriptor.media_type == CODE_LAYER_MEDIA_TYPE
    assert code.descriptor.annotations["org.opencontainers.image.title"] == "bundle-code.tar"
    with tarfile.open(fileobj=io.BytesIO(code.data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(FILES.keys() - {"data/big.bin"}), f"expected every small file, sorted; got {names}"
        modes = {m.name: m.mode for m in members}
        assert modes["scripts/run.sh"] == 0o755 and modes["pkg/model.py"] == 0o644
        assert tar.extractfile("pkg/model.py").read() == FILES["pkg/model.py"]


def test_large_files_are_their_own_layers_titled_with_their_path(original):
    packed = pack_bundle(original)
    files = [layer.descriptor for layer in packed.layers[1:]]
    assert [(d.media_type, d.title, d.size) for d in files] == [(FILE_LAYER_MEDIA_TYPE, "data/big.bin", len(BIG))]
    assert files[0].digest == digest_bytes(BIG)
    assert files[0].annotations["io.modelops.bundle.file.mode"] == "0644"


def test_the_file_threshold_is_inclusive(original):
    exact = len(FILES["data/small.csv"])
    packed = pack_bundle(original, file_threshold=exact)
    titles = {layer.descriptor.title for layer in packed.layers[1:]}
    assert "data/small.csv" in titles, f"a file of exactly the threshold size should be its own layer; got {titles}"


def test_symlinks_inside_the_bundle_are_packed_as_links(original):
    os.symlink("model.py", original / "pkg/alias.py")
    with tarfile.open(fileobj=io.BytesIO(pack_bundle(original).layers[0].data)) as tar:
        info = tar.getmember("pkg/alias.py")
        assert info.issym() and info.linkname == "model.py"


def test_a_symlink_to_a_directory_inside_the_bundle_is_packed_as_a_link(original):
    os.symlink("pkg", original / "pkg-alias")
    with tarfile.open(fileobj=io.BytesIO(pack_bundle(original).layers[0].data)) as tar:
        names = tar.getnames()
        assert "pkg-alias" in names, f"a directory symlink must not be dropped silently; packed {names}"
        info = tar.getmember("pkg-alias")
        assert info.issym() and info.linkname == "pkg"
        assert "pkg-alias/model.py" not in names, "the link should not be followed and packed twice"


def test_packing_refuses_a_directory_symlink_that_leaves_the_bundle(original, tmp_path):
    os.symlink(tmp_path, original / "escape-dir")
    with pytest.raises(BundleValidationError) as info:
        pack_bundle(original)
    assert "escape-dir" in str(info.value)


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside.txt"])
def test_packing_refuses_a_symlink_that_leaves_the_bundle(original, target):
    os.symlink(target, original / "pkg/escape")
    with pytest.raises(BundleValidationError) as info:
        pack_bundle(original)
    assert "pkg/escape" in str(info.value) and target in str(info.value)


def test_packing_refuses_special_files(original):
    os.mkfifo(original / "pipe")
    with pytest.raises(BundleValidationError) as info:
        pack_bundle(original)
    assert "pipe" in str(info.value) and "not a regular file" in str(info.value)


def test_packing_an_invalid_bundle_lists_its_problems_before_anything_else(original):
    shutil.move(original / "pkg/model.py", original / "pkg/renamed.py")
    with pytest.raises(BundleValidationError) as info:
        pack_bundle(original)
    assert any("pkg.model" in p for p in info.value.problems), info.value.problems
