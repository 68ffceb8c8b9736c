"""The pure parts of the worker image: manifests, platform selection, config, Python detection, layer packing."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from pathlib import Path

import pytest

from modelops_infra.bundles import Descriptor
from modelops_infra.infra.image import (
    ImageSettings,
    LayerCache,
    LayerEntry,
    PackedLayer,
    WorkerInstall,
    checkout_files,
    default_layer_cache_dir,
    dependencies_key,
    pack_layer,
)
from modelops_infra.infra.image._manifests import (
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    is_index,
    oci_layer,
    parse_image_manifest,
    platforms_of_index,
    python_from_env,
    python_from_path,
    select_platform,
    worker_config,
    worker_manifest,
)

D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


def _index(*platforms: str) -> dict:
    return {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": f"sha256:{str(i) * 64}", "size": 1,
         "platform": dict(zip(("os", "architecture"), p.split("/"), strict=True))} for i, p in enumerate(platforms)]}


def test_linux_amd64_is_selected_from_an_index_whatever_its_position() -> None:
    index = _index("linux/arm64", "unknown/unknown", "linux/amd64")
    assert is_index(DOCKER_MANIFEST_LIST, index)
    assert select_platform(index) == "sha256:" + "2" * 64


def test_an_index_without_linux_amd64_selects_nothing_and_lists_what_it_has() -> None:
    index = _index("linux/arm64", "windows/amd64")
    assert select_platform(index) is None
    assert platforms_of_index(index) == ["linux/arm64", "windows/amd64"]


def test_a_docker_schema2_manifest_parses_and_its_layers_carry_over_as_oci_layers() -> None:
    raw = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                      "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": D1,
                                 "size": 10},
                      "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": D2, "size": 20}]}).encode()
    manifest = parse_image_manifest(raw, DOCKER_MANIFEST)
    assert [oci_layer(layer) for layer in manifest.layers] == [Descriptor(OCI_LAYER_GZIP, D2, 20)]


def test_a_schema1_manifest_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="schema 1"):
        parse_image_manifest(b'{"schemaVersion": 1}', "application/vnd.docker.distribution.manifest.v1+json")


def test_python_is_found_by_interpreter_path_or_by_the_official_images_env() -> None:
    assert python_from_path("./usr/bin/python3.11").path == "/usr/bin/python3.11"
    assert python_from_path("usr/local/bin/python3.12").version == "3.12"
    assert python_from_path("usr/bin/python3") is None
    assert python_from_path("usr/bin/python3.11-config") is None
    assert python_from_env(["PATH=/x", "PYTHON_VERSION=3.11.9"]).path == "/usr/local/bin/python3.11"


def test_the_worker_config_keeps_the_base_layers_and_sets_env_user_workdir_and_cmd() -> None:
    base = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/bin:/bin", "LANG=C.UTF-8"], "Entrypoint": ["/init"], "Cmd": ["python3"]},
            "rootfs": {"type": "layers", "diff_ids": [D1]}, "history": [{"created_by": "base"}]}
    D3 = "sha256:" + "3" * 64
    config = json.loads(worker_config(base, layers=[(D2, "dependencies"), (D3, "worker")], settings=ImageSettings()))
    env = dict(e.split("=", 1) for e in config["config"]["Env"])
    assert env["PATH"] == "/opt/venv/bin:/usr/bin:/bin"
    assert env["MODELOPS_BUNDLE_CACHE_DIR"] == "/var/cache/modelops/bundles"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["LANG"] == "C.UTF-8"
    assert config["config"]["User"] == "1000:1000"
    assert config["config"]["WorkingDir"] == "/tmp"
    assert config["config"]["Cmd"] == ["dask", "worker", "--help"] and "Entrypoint" not in config["config"]
    assert config["rootfs"]["diff_ids"] == [D1, D2, D3]
    assert [h["created_by"] for h in config["history"]] == ["base", "dependencies", "worker"]
    assert config["created"] == "1970-01-01T00:00:00Z", "no wall-clock time may enter the config"


def test_the_worker_manifest_is_oci_and_canonical() -> None:
    raw = worker_manifest(Descriptor("x", D1, 1), [Descriptor(OCI_LAYER_GZIP, D2, 2)], {"a": "b"})
    data = json.loads(raw)
    assert data["mediaType"] == OCI_MANIFEST
    assert data["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert raw == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _tree(root: Path, mtime: int, umask_mode: int) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "pkg").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    (root / "bin" / "tool").chmod(0o700 | umask_mode)
    (root / "lib" / "pkg" / "a.py").write_text("A = 1\n")
    (root / "lib" / "pkg" / "a.py").chmod(0o600 | umask_mode)
    (root / "bin" / "python").symlink_to("/host/python3.11")
    for path in root.rglob("*"):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


def test_a_layer_is_byte_identical_whatever_the_mtimes_and_modes(tmp_path: Path) -> None:
    a = pack_layer(_tree(tmp_path / "a", 1_000, 0o044), "opt/venv", tmp_path / "a.tgz")
    b = pack_layer(_tree(tmp_path / "b", 2_000_000, 0o000), "opt/venv", tmp_path / "b.tgz")
    assert (a.digest, a.diff_id, a.size) == (b.digest, b.diff_id, b.size)
    assert a.digest == "sha256:" + hashlib.sha256((tmp_path / "a.tgz").read_bytes()).hexdigest()
    assert a.diff_id == "sha256:" + hashlib.sha256(gzip.decompress((tmp_path / "a.tgz").read_bytes())).hexdigest()


def test_a_layer_holds_sorted_root_owned_entries_with_retargeted_links_and_extra_dirs(tmp_path: Path) -> None:
    layer = pack_layer(_tree(tmp_path / "t", 5, 0), "opt/venv", tmp_path / "t.tgz",
                       extra=[LayerEntry("var"), LayerEntry("var/cache")], symlinks={"bin/python": "/usr/bin/python3.11"})
    with tarfile.open(layer.path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names[:4] == ["opt", "opt/venv", "var", "var/cache"]
    assert names[4:] == sorted(names[4:], key=lambda n: n.split("/"))
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
    by_name = {m.name: m for m in members}
    assert by_name["opt/venv/bin/python"].linkname == "/usr/bin/python3.11"
    assert by_name["opt/venv/bin/tool"].mode == 0o755 and by_name["opt/venv/lib/pkg/a.py"].mode == 0o644


def test_a_retarget_for_a_link_that_is_not_there_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bin/nope"):
        pack_layer(_tree(tmp_path / "t", 5, 0), "opt/venv", tmp_path / "t.tgz", symlinks={"bin/nope": "/x"})


def test_the_install_hash_follows_the_checkout_the_packages_and_the_python_version(tmp_path: Path) -> None:
    (tmp_path / "modelops_infra" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "modelops_infra" / "__init__.py").write_text("")
    (tmp_path / "modelops_infra" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    assert checkout_files(tmp_path) == ["modelops_infra/__init__.py", "pyproject.toml"]
    install = WorkerInstall(tmp_path)
    first = install.content_hash("3.11")
    assert first == WorkerInstall(tmp_path, index_url="https://u:p@index/simple").content_hash("3.11"), \
        "the index URL (and its credentials) must not change the hash"
    assert WorkerInstall(tmp_path, extra_packages=("six",)).content_hash("3.11") != first
    assert install.content_hash("3.12") != first
    (tmp_path / "modelops_infra" / "__pycache__" / "x.pyc").write_bytes(b"other junk")
    assert install.content_hash("3.11") == first, "byte code caches are not part of the install"
    (tmp_path / "modelops_infra" / "__init__.py").write_text("# changed\n")
    assert install.content_hash("3.11") != first


def _key(**over: object) -> str:
    args: dict = {"pins": ["b==2", "a==1"], "python_version": "3.11", "platform": "x86_64-manylinux_2_28",
                  "venv": "/opt/venv", "python_path": "/usr/bin/python3.11", "extra_packages": ["bokeh>=3.1"],
                  "tools": "uv 0.1 | 3.11.2", "compresslevel": 6}
    args.update(over)
    return dependencies_key(**args)


def test_the_dependencies_key_follows_what_makes_the_layer_and_not_the_order_of_the_pins() -> None:
    assert _key() == _key(pins=["a==1", "b==2"])
    for change in ({"pins": ["a==1", "b==3"]}, {"extra_packages": ["bokeh>=3.1", "six"]},
                   {"python_path": "/usr/local/bin/python3.11"}, {"python_version": "3.12"}, {"venv": "/venv"},
                   {"tools": "uv 0.2 | 3.11.2"}, {"compresslevel": 9}):
        assert _key(**change) != _key(), f"{change} must change the key"


def _layer(tmp_path: Path, name: str) -> PackedLayer:
    tree = tmp_path / f"tree-{name}"
    (tree / "lib").mkdir(parents=True)
    (tree / "lib" / f"{name}.py").write_text(f"NAME = {name!r}\n")
    return pack_layer(tree, "opt/venv", tmp_path / f"{name}.tgz")


def test_a_cached_layer_comes_back_with_its_digests_and_the_least_recently_used_go_first(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache", keep=2)
    assert cache.get("k1") is None
    layers = {k: _layer(tmp_path, k) for k in ("k1", "k2", "k3")}
    cache.put("k1", layers["k1"])
    got = cache.get("k1")
    assert got is not None and (got.digest, got.size, got.diff_id) == \
        (layers["k1"].digest, layers["k1"].size, layers["k1"].diff_id)
    assert got.path.read_bytes() == layers["k1"].path.read_bytes() and got.path.parent == tmp_path / "cache" / "k1"
    cache.put("k2", layers["k2"])
    os.utime(tmp_path / "cache" / "k1", (1, 1))
    os.utime(tmp_path / "cache" / "k2", (2, 2))
    assert cache.get("k1") is not None, "a hit marks the entry as recently used"
    cache.put("k3", layers["k3"])
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["k1", "k3"], "k2 was used least recently"


def test_a_broken_or_corrupt_cache_entry_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache")
    cache.put("short", _layer(tmp_path, "short"))
    blob = tmp_path / "cache" / "short" / "layer.tar.gz"
    blob.write_bytes(blob.read_bytes()[:-1])
    assert cache.get("short") is None and not (tmp_path / "cache" / "short").exists()
    cache.put("flipped", _layer(tmp_path, "flipped"))
    blob = tmp_path / "cache" / "flipped" / "layer.tar.gz"
    data = bytearray(blob.read_bytes())
    data[-20] ^= 0xFF
    blob.write_bytes(bytes(data))
    got = cache.get("flipped")
    assert got is not None, "the size matches: only a re-hash finds it"
    assert not cache.verify("flipped", got) and not (tmp_path / "cache" / "flipped").exists()


def test_the_layer_cache_lives_outside_the_repository_and_follows_the_environment() -> None:
    assert default_layer_cache_dir({"HOME": "/home/u"}) == Path("/home/u/.cache/modelops/image-layers")
    assert default_layer_cache_dir({"HOME": "/h", "MODELOPS_TOOLS_CACHE": "/tools"}) == Path("/tools/image-layers")
    assert default_layer_cache_dir({"MODELOPS_IMAGE_LAYER_CACHE": "/x", "MODELOPS_TOOLS_CACHE": "/t"}) == Path("/x")
