"""BundleLayout.from_manifest: the one reader of a pushed bundle's manifest, for the cache, inspect and pull."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelops_infra.bundles import (
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    BundleLayout,
    digest_bytes,
    pack_bundle,
)
from modelops_infra.bundles._layout import CodeLayer, FileLayer, WheelLayer
from modelops_infra.bundles._oci import ARTIFACT_TYPE, WHEEL_LAYER_MEDIA_TYPE
from modelops_infra.errors import IntegrityError, UnsafeArchiveError

D = [digest_bytes(bytes([i])) for i in range(8)]
TITLE = "org.opencontainers.image.title"


def manifest(*layers: dict, config: dict | None = None, **top) -> bytes:
    return json.dumps({"schemaVersion": 2, "artifactType": ARTIFACT_TYPE,
                       "config": config or {"mediaType": CONFIG_MEDIA_TYPE, "digest": D[0], "size": 10},
                       "layers": list(layers), **top}).encode()


def layer(media_type: str, digest: str, size: int = 5, **annotations: str) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size, "annotations": annotations}


def test_a_packed_bundle_reads_back_as_its_code_file_and_wheel_layers(make_bundle, tmp_path):
    root = make_bundle("layout", {"sim.py": "def run(p, s):\n    return {}\n", "data/big.bin": b"x" * 600_000})
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    packed = pack_bundle(root, wheels=[wheel])
    layout = BundleLayout.from_manifest(packed.manifest_bytes)
    assert [type(entry) for entry in layout.layers] == [CodeLayer, FileLayer, WheelLayer]
    assert layout.code is not None and layout.code.descriptor == packed.layers[0].descriptor
    assert [(f.path, f.mode) for f in layout.files] == [("data/big.bin", 0o644)]
    assert [w.filename for w in layout.wheels] == ["demo-1.0-py3-none-any.whl"]
    assert layout.total_size == packed.total_size - len(packed.manifest_bytes)


@pytest.mark.parametrize(("raw", "expected"), [
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[]", "schemaVersion 2"),
    (json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}).encode(),
     "is an image index"),
    (manifest(config={"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D[0], "size": 2}),
     "is not a modelops bundle"),
    (manifest(layer(CODE_LAYER_MEDIA_TYPE, "sha512:" + "a" * 128)), "sha256:<64 lowercase hex digits>"),
    (manifest(layer(CODE_LAYER_MEDIA_TYPE, D[1].upper())), "sha256:<64 lowercase hex digits>"),
    (manifest(layer(CODE_LAYER_MEDIA_TYPE, D[1][:20])), "sha256:<64 lowercase hex digits>"),
    (manifest(layer(CODE_LAYER_MEDIA_TYPE, D[1], size=-1)), "non-negative size"),
    (manifest(layer(CODE_LAYER_MEDIA_TYPE, D[1]), layer(CODE_LAYER_MEDIA_TYPE, D[2])), "more than one code layer"),
    (manifest(layers="nope"), "not a list"),
])
def test_a_manifest_that_is_not_a_bundle_is_an_integrity_error_naming_the_source(raw, expected):
    with pytest.raises(IntegrityError) as info:
        BundleLayout.from_manifest(raw, source="tests/x@sha256:abc")
    assert expected in str(info.value) and "tests/x@sha256:abc" in str(info.value), str(info.value)


@pytest.mark.parametrize(("bad", "entry"), [
    (layer(FILE_LAYER_MEDIA_TYPE, D[1]), D[1]),
    (layer(FILE_LAYER_MEDIA_TYPE, D[1], **{TITLE: "../x"}), "../x"),
    (layer(FILE_LAYER_MEDIA_TYPE, D[1], **{TITLE: "x.bin", "io.modelops.bundle.file.mode": "rwx"}), "x.bin"),
    (layer(WHEEL_LAYER_MEDIA_TYPE, D[1], **{TITLE: "../evil.whl"}), "../evil.whl"),
    (layer("application/x-sh", D[1], **{TITLE: "x.sh"}), D[1]),
])
def test_a_layer_that_must_not_be_placed_is_refused_naming_it(bad, entry):
    with pytest.raises(UnsafeArchiveError) as info:
        BundleLayout.from_manifest(manifest(layer(CODE_LAYER_MEDIA_TYPE, D[2]), bad))
    assert entry in str(info.value)


def test_two_file_layers_at_one_path_are_refused():
    a = layer(FILE_LAYER_MEDIA_TYPE, D[1], **{TITLE: "data/x.bin"})
    b = layer(FILE_LAYER_MEDIA_TYPE, D[2], **{TITLE: "data/./x.bin"})
    with pytest.raises(UnsafeArchiveError, match="duplicate path"):
        BundleLayout.from_manifest(manifest(a, b))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                    max_leaves=20)
FIELD_VALUES = st.one_of(JSON, st.sampled_from([*D, CODE_LAYER_MEDIA_TYPE, FILE_LAYER_MEDIA_TYPE, WHEEL_LAYER_MEDIA_TYPE,
                                                CONFIG_MEDIA_TYPE, ARTIFACT_TYPE, "../x", "a.whl", "0755", 2]))
DESCRIPTOR = st.fixed_dictionaries({}, optional={
    "mediaType": FIELD_VALUES, "digest": FIELD_VALUES, "size": st.one_of(st.integers(-2, 10), FIELD_VALUES),
    "annotations": st.one_of(st.dictionaries(st.sampled_from([TITLE, "io.modelops.bundle.file.mode", "x"]), FIELD_VALUES),
                             FIELD_VALUES)})
MANIFEST = st.fixed_dictionaries({}, optional={
    "schemaVersion": st.one_of(st.just(2), FIELD_VALUES), "artifactType": FIELD_VALUES,
    "config": st.one_of(DESCRIPTOR, FIELD_VALUES), "layers": st.one_of(st.lists(DESCRIPTOR, max_size=5), FIELD_VALUES),
    "annotations": st.one_of(st.dictionaries(st.text(max_size=5), FIELD_VALUES), FIELD_VALUES)})


@settings(max_examples=500, deadline=None)
@given(st.one_of(MANIFEST.map(lambda m: json.dumps(m).encode()), st.binary(max_size=200)))
def test_any_bytes_give_a_layout_or_an_integrity_or_archive_error_never_anything_else(raw):
    try:
        layout = BundleLayout.from_manifest(raw, source="fuzz")
    except (IntegrityError, UnsafeArchiveError):
        return
    for entry in layout.layers:
        assert entry.descriptor.digest.startswith("sha256:") and entry.descriptor.size >= 0
        if isinstance(entry, FileLayer):
            assert not entry.path.startswith("/") and ".." not in entry.path.split("/")
