"""Incremental push: blobs the registry has are skipped (HEAD first), so a re-push sends no blob bytes."""

from __future__ import annotations

import os

from modelops_infra.bundles import BundleSettings, pack_bundle, push_bundle
from tests.bundles.helpers import blob_upload_requests, count

DATA_SIZE = 5 * 1024 * 1024


def test_pushing_an_unchanged_bundle_again_uploads_no_blob_bytes(make_bundle, fresh_registry, tmp_path):
    root = make_bundle("incremental", {"sim.py": "def run(params, seed):\n    return {}\n",
                                       "data/big.bin": os.urandom(DATA_SIZE)})
    settings = BundleSettings(cache_dir=tmp_path / "cache")
    first = push_bundle(root, fresh_registry.address, "tests/incremental", tag="v1", settings=settings)
    assert first.bytes_uploaded >= DATA_SIZE and first.blobs_uploaded == 3, first
    uploads_before = blob_upload_requests(fresh_registry)

    again = push_bundle(root, fresh_registry.address, "tests/incremental", tag="v1", settings=settings)

    assert again.digest == first.digest
    assert (again.bytes_uploaded, again.blobs_uploaded, again.blobs_skipped) == (0, 0, 3), (
        f"a re-push should skip config, code and data blobs; got {again}"
    )
    assert blob_upload_requests(fresh_registry) == uploads_before, (
        "the registry should see no POST/PUT/PATCH on /blobs/uploads/ during a re-push"
    )


def test_changing_one_source_file_uploads_under_a_megabyte_and_not_the_data_blob(make_bundle, fresh_registry, tmp_path):
    root = make_bundle("incremental", {"sim.py": "def run(params, seed):\n    return {'v': 1}\n",
                                       "data/big.bin": os.urandom(DATA_SIZE)})
    settings = BundleSettings(cache_dir=tmp_path / "cache")
    push_bundle(root, fresh_registry.address, "tests/incremental", tag="v1", settings=settings)
    data_digest = pack_bundle(root).layers[1].descriptor.digest
    heads = count(fresh_registry, "HEAD", f"/blobs/{data_digest}")
    puts = count(fresh_registry, "PUT", f"digest={data_digest}")
    assert puts == 1, f"setup: the first push should upload the data blob once, saw {puts} PUTs"

    (root / "sim.py").write_text("def run(params, seed):\n    return {'v': 2}\n")
    second = push_bundle(root, fresh_registry.address, "tests/incremental", tag="v2", settings=settings)

    assert 0 < second.bytes_uploaded < 1024 * 1024, f"only the code layer should go up; sent {second.bytes_uploaded} bytes"
    assert second.blobs_uploaded == 1 and second.blobs_skipped == 2, second
    assert count(fresh_registry, "HEAD", f"/blobs/{data_digest}") == heads + 1, "the data blob should be checked with HEAD once"
    assert count(fresh_registry, "PUT", f"digest={data_digest}") == puts, "the data blob must not be uploaded again"

