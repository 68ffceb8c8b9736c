"""Push and pull against a real registry: round trip, tag resolution, inspect, and other OCI tools."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import oras.client
import pytest
import requests

from modelops_infra.bundles import (
    ARTIFACT_TYPE,
    BundleSettings,
    Reference,
    inspect_bundle,
    pack_bundle,
    pull_bundle,
    push_bundle,
    resolve_reference,
)
from modelops_infra.errors import ConfigurationError
from tests.bundles.helpers import snapshot

DATA = os.urandom(700_000)


@pytest.fixture
def bundle(make_bundle):
    root = make_bundle("roundtrip", {
        "sim.py": "from pkg.helpers import double\n\ndef run(params, seed):\n    return {'x': double(seed)}\n",
        "pkg/__init__.py": "",
        "pkg/helpers.py": "def double(x):\n    return 2 * x\n",
        "tools/run.sh": "#!/bin/sh\nexit 0\n",
        "data/weights.bin": DATA,
    })
    os.chmod(root / "tools/run.sh", 0o755)
    os.symlink("helpers.py", root / "pkg/alias.py")
    os.symlink("pkg", root / "pkg-link")
    return root


@pytest.fixture
def settings(tmp_path: Path) -> BundleSettings:
    return BundleSettings(cache_dir=tmp_path / "cache")


def test_push_then_pull_by_tag_gives_back_the_same_tree(bundle, registry, settings, tmp_path):
    pushed = push_bundle(bundle, registry.address, "tests/roundtrip", tag="v1", settings=settings)
    assert pushed.digest == pack_bundle(bundle).digest, "the pushed digest should be the packed digest"
    assert str(pushed.reference) == f"{registry.address}/tests/roundtrip@{pushed.digest}", (
        "a push should return a pinned registry/repository@digest reference"
    )
    local = pull_bundle(f"{registry.address}/tests/roundtrip:v1", tmp_path / "out", settings=settings)
    assert local.digest == pushed.digest
    assert local.manifest.name == "roundtrip" and local.manifest.entrypoint == "sim:run"
    assert snapshot(tmp_path / "out") == snapshot(bundle), "pulled tree should match the source (content, +x, links)"


def test_pull_by_pinned_digest_needs_no_tag(bundle, registry, settings, tmp_path):
    pushed = push_bundle(bundle, registry.address, "tests/roundtrip-pinned", settings=settings)
    pull_bundle(str(pushed.reference), tmp_path / "out", settings=settings)
    assert snapshot(tmp_path / "out") == snapshot(bundle)


def test_pull_refuses_a_destination_that_is_not_empty(bundle, registry, settings, tmp_path):
    pushed = push_bundle(bundle, registry.address, "tests/roundtrip-dest", settings=settings)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigurationError) as info:
        pull_bundle(str(pushed.reference), tmp_path / "out", settings=settings)
    assert str(tmp_path / "out") in str(info.value)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine", "a refused pull must not touch the destination"


def test_a_tag_resolves_to_the_digest_of_its_latest_push(make_bundle, registry, settings):
    v1 = push_bundle(make_bundle("tagged", version="1.0.0"), registry.address, "tests/tagged", tag="stable",
                     settings=settings)
    ref = resolve_reference(f"{registry.address}/tests/tagged:stable", settings=settings)
    assert ref.digest == v1.digest and ref.tag == "stable"
    v2 = push_bundle(make_bundle("tagged", version="2.0.0"), registry.address, "tests/tagged", tag="stable",
                     settings=settings)
    assert v2.digest != v1.digest
    assert resolve_reference(f"{registry.address}/tests/tagged:stable", settings=settings).digest == v2.digest, (
        "re-tagging should move the tag to the new digest"
    )


def test_a_reference_without_a_tag_resolves_latest(make_bundle, registry, settings):
    pushed = push_bundle(make_bundle("latest"), registry.address, "tests/latest", tag="latest", settings=settings)
    assert resolve_reference(f"{registry.address}/tests/latest", settings=settings).digest == pushed.digest


def test_a_pinned_reference_resolves_without_asking_the_registry():
    ref = Reference.parse("nowhere.invalid:1/a/b@sha256:" + "0" * 64)
    assert resolve_reference(ref, settings=BundleSettings()) is ref


def test_a_reference_naming_no_registry_is_a_configuration_error():
    with pytest.raises(ConfigurationError) as info:
        resolve_reference("tests/roundtrip:v1", settings=BundleSettings(registry=None))
    assert "tests/roundtrip:v1" in str(info.value) and "MODELOPS_BUNDLE_REGISTRY" in str(info.value)


def test_the_default_registry_comes_from_settings(bundle, registry, settings):
    pushed = push_bundle(bundle, registry.address, "tests/default-reg", tag="v1", settings=settings)
    ref = resolve_reference("tests/default-reg:v1", settings=BundleSettings(registry=registry.address))
    assert (ref.registry, ref.digest) == (registry.address, pushed.digest)


def test_inspect_shows_manifest_files_and_sizes_without_pulling_layers(bundle, registry, settings):
    pushed = push_bundle(bundle, registry.address, "tests/inspect", tag="v3", settings=settings)
    info = inspect_bundle(f"{registry.address}/tests/inspect:v3", settings=settings)
    assert info["reference"] == f"{registry.address}/tests/inspect:v3@{pushed.digest}"
    assert info["artifactType"] == ARTIFACT_TYPE
    assert info["annotations"]["org.opencontainers.image.title"] == "roundtrip"
    assert info["bundle"] == json.loads((bundle / "manifest.json").read_text())
    titles = {layer["title"]: layer["size"] for layer in info["layers"]}
    assert titles.get("data/weights.bin") == len(DATA) and "bundle-code.tar" in titles, titles
    assert info["total_bytes"] == pushed.total_bytes - len(pack_bundle(bundle).manifest_bytes)
    files = {f["path"]: f for f in info["files"]}
    assert files["data/weights.bin"]["size"] == len(DATA) and files["data/weights.bin"]["layer"].startswith("sha256:")
    assert files["manifest.json"]["layer"] == "code"
    assert files["manifest.json"]["size"] == (bundle / "manifest.json").stat().st_size


def test_registry_serves_exactly_the_packed_manifest(bundle, registry, settings):
    pushed = push_bundle(bundle, registry.address, "tests/served", settings=settings)
    resp = requests.get(f"http://{registry.address}/v2/tests/served/manifests/{pushed.digest}",
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
    assert resp.status_code == 200
    assert resp.content == pack_bundle(bundle).manifest_bytes
    assert resp.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"


# -- other OCI tools ---------------------------------------------------------------------------


def test_a_pushed_bundle_is_listed_by_the_registry_tags_api(bundle, registry, settings):
    push_bundle(bundle, registry.address, "tests/listed", tag="v1", settings=settings)
    push_bundle(bundle, registry.address, "tests/listed", tag="v2", settings=settings)
    resp = requests.get(f"http://{registry.address}/v2/tests/listed/tags/list", timeout=10)
    assert resp.status_code == 200 and sorted(resp.json()["tags"]) == ["v1", "v2"], resp.text


def test_a_pushed_bundle_can_be_pulled_by_oras(bundle, registry, settings, tmp_path):
    push_bundle(bundle, registry.address, "tests/interop", tag="v1", settings=settings)
    out = tmp_path / "oras-out"
    client = oras.client.OrasClient(hostname=registry.address, insecure=True)
    client.pull(target=f"{registry.address}/tests/interop:v1", outdir=str(out))
    assert (out / "data/weights.bin").read_bytes() == DATA, "oras should write the large file at its title path"
    with tarfile.open(out / "bundle-code.tar") as tar:
        names = set(tar.getnames())
        assert {"manifest.json", "sim.py", "pkg/helpers.py", "tools/run.sh"} <= names, names
        assert tar.extractfile("pkg/helpers.py").read() == (bundle / "pkg/helpers.py").read_bytes()
