"""Verification: a blob altered inside the registry's storage is caught before anything is extracted."""

from __future__ import annotations

import os

import pytest

from modelops_infra.bundles import BundleCache, RegistryClient, pack_bundle, push_packed
from modelops_infra.errors import IntegrityError
from tests.bundles.helpers import staging_dirs


@pytest.mark.parametrize("target", ["manifest", "config", "code layer", "data file"])
def test_a_tampered_blob_fails_the_pull_with_an_integrity_error_and_caches_nothing(
        make_bundle, fresh_registry, tmp_path, target):
    root = make_bundle("tampered", {"sim.py": "def run(params, seed):\n    return {}\n",
                                    "data/big.bin": os.urandom(600_000)})
    packed = pack_bundle(root)
    digests = {"manifest": packed.digest, "config": packed.config.descriptor.digest,
               "code layer": packed.layers[0].descriptor.digest, "data file": packed.layers[1].descriptor.digest}
    with RegistryClient(fresh_registry.address, environ={}) as client:
        push_packed(client, packed, "tests/tampered")
    blob = fresh_registry.blob_data_path(digests[target])
    original = blob.read_bytes()
    if target == "manifest":  # the registry parses manifests it serves: keep it valid JSON
        forged = original.replace(b'"1.0.0"', b'"9.0.0"')
    else:
        forged = bytes(b ^ 0x5A for b in original)
    blob.write_bytes(forged)
    assert len(forged) == len(original) and forged != original

    cache = BundleCache(tmp_path / "cache")
    with RegistryClient(fresh_registry.address, environ={}) as client, pytest.raises(IntegrityError) as info:
        cache.ensure("tests/tampered", packed.digest, client=client)

    assert digests[target] in str(info.value), f"the error should name the {target} digest; got: {info.value}"
    assert cache.entries() == [], "a bundle that failed verification must not be cached"
    assert staging_dirs(cache) == [], "the half-fetched staging directory should be removed"
    assert not cache.entry_dir(packed.digest).exists()
    extracted = [p for p in cache.root.rglob("*") if p.name in ("sim.py", "big.bin", "manifest.json")]
    assert extracted == [], f"no file of a tampered bundle may be left on disk; found {extracted}"


def test_a_failed_verification_does_not_touch_bundles_already_cached(make_bundle, fresh_registry, tmp_path):
    good_root = make_bundle("good")
    bad_root = make_bundle("bad")
    good, bad = pack_bundle(good_root), pack_bundle(bad_root)
    with RegistryClient(fresh_registry.address, environ={}) as client:
        push_packed(client, good, "tests/mixed")
        push_packed(client, bad, "tests/mixed")
        cache = BundleCache(tmp_path / "cache")
        cache.ensure("tests/mixed", good.digest, client=client)
        blob = fresh_registry.blob_data_path(bad.layers[0].descriptor.digest)
        blob.write_bytes(b"\0" * blob.stat().st_size)
        with pytest.raises(IntegrityError):
            cache.ensure("tests/mixed", bad.digest, client=client)
    assert cache.entries() == [good.digest], "the good bundle should still be cached, and only it"
    assert (cache.get(good.digest).path / "sim.py").is_file()
