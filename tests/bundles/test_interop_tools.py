"""Bundles are plain OCI artifacts: the oras CLI and skopeo list, fetch and pull them.

``make test`` installs both (scripts/interop-tools.sh). A missing tool fails the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from modelops_infra.bundles import RegistryClient, push_bundle

REPO = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    found = shutil.which(name) or (str(REPO / ".modelops/bin" / name) if (REPO / ".modelops/bin" / name).exists() else None)
    if found is None:
        raise RuntimeError(f"{name} is not installed; run `make test` (scripts/interop-tools.sh installs it)")
    return found


def run(*argv: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def pushed(registry, tmp_path_factory):
    root = tmp_path_factory.mktemp("interop") / "bundle"
    (root / "data").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"name": "interop", "version": "2.1.0", "entrypoint": "sim:run"}))
    (root / "sim.py").write_text("def run(params, seed):\n    return {}\n")
    (root / "data" / "big.bin").write_bytes(os.urandom(3 << 20))
    result = push_bundle(root, registry.address, "interop/bundle", tag="v2")
    return root, result


def test_oras_cli_lists_fetches_and_pulls_a_bundle(registry, pushed, tmp_path):
    root, result = pushed
    oras = tool("oras")
    ref = f"{registry.address}/interop/bundle:v2"
    assert "v2" in run(oras, "repo", "tags", "--plain-http", f"{registry.address}/interop/bundle").split()
    fetched = run(oras, "manifest", "fetch", "--plain-http", ref).encode()
    assert "sha256:" + hashlib.sha256(fetched).hexdigest() == result.digest
    run(oras, "pull", "--plain-http", ref, cwd=tmp_path)
    assert (tmp_path / "data" / "big.bin").read_bytes() == (root / "data" / "big.bin").read_bytes()
    with tarfile.open(tmp_path / "bundle-code.tar") as tar:
        assert sorted(tar.getnames()) == ["manifest.json", "sim.py"]


def test_skopeo_inspects_lists_and_copies_a_bundle(registry, pushed, tmp_path):
    _, result = pushed
    skopeo = tool("skopeo")
    ref = f"docker://{registry.address}/interop/bundle:v2"
    raw = run(skopeo, "inspect", "--raw", "--tls-verify=false", ref).encode()
    with RegistryClient(registry.address) as client:
        ours, _ = client.get_manifest("interop/bundle", result.digest)
    assert raw == ours, "skopeo must see byte-for-byte the manifest we pushed"
    tags = json.loads(run(skopeo, "list-tags", "--tls-verify=false", f"docker://{registry.address}/interop/bundle"))
    assert "v2" in tags["Tags"]
    run(skopeo, "copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'layout'}:v2")
    blobs = {p.name for p in (tmp_path / "layout" / "blobs" / "sha256").iterdir()}
    assert result.digest.split(":")[1] in blobs
