"""Helpers shared by the bundle tests: tree snapshots, registry log settling, raw OCI pushes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

from harness.services import Registry
from modelops_infra.bundles import (
    ARTIFACT_TYPE,
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    BlobSource,
    BundleCache,
    Descriptor,
    RegistryClient,
    digest_bytes,
)

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


def snapshot(root: Path) -> dict[str, str]:
    """``rel path -> sha256`` of every file (``-> link:<target>`` for symlinks, ``+x`` marks executables)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if full.is_symlink():
                out[rel] = "link:" + os.readlink(full)
            else:
                mark = "+x" if os.stat(full).st_mode & 0o111 else ""
                out[rel] = hashlib.sha256(full.read_bytes()).hexdigest() + mark
    return out


def settle(registry: Registry, quiet: float = 0.15, timeout: float = 5.0) -> None:
    """Wait until the registry's log has stopped growing (access-log lines land just after a response)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        size = registry.log.stat().st_size
        if size == last:
            return
        last = size
        time.sleep(quiet)


def count(registry: Registry, method: str, fragment: str) -> int:
    settle(registry)
    return registry.requests_matching(method, fragment)


def blob_upload_requests(registry: Registry) -> int:
    """Every request that starts or carries a blob upload (POST/PUT/PATCH on ``/blobs/uploads/``)."""
    settle(registry)
    return sum(registry.requests_matching(m, "/blobs/uploads/") for m in ("POST", "PUT", "PATCH"))


def staging_dirs(cache: BundleCache) -> list[str]:
    return sorted(p.name for p in (cache.root / "staging").iterdir())


# -- hand-crafted OCI artifacts -----------------------------------------------------------


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, *, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, mode
    return info


def regular(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return member(name, mode=mode), data


SIM = b"def run(params, seed):\n    return {'seed': seed}\n"


def code_tar(*extra: tuple[tarfile.TarInfo, bytes | None], name: str = "hostile") -> bytes:
    """A code layer with a valid manifest.json and sim.py, followed by ``extra`` members."""
    manifest = json.dumps({"name": name, "version": "1.0.0", "entrypoint": "sim:run"}).encode()
    return tar_of(regular("manifest.json", manifest), regular("sim.py", SIM), *extra)


def push_raw(client: RegistryClient, repository: str, layers: list[tuple[Descriptor, bytes]], *,
             name: str = "hostile", tag: str | None = None) -> str:
    """Push a hand-made bundle manifest (valid config, the given layers); returns its digest."""
    config = json.dumps({"entrypoint": "sim:run", "name": name, "version": "1.0.0"}, sort_keys=True,
                        separators=(",", ":")).encode()
    config_desc = Descriptor(CONFIG_MEDIA_TYPE, digest_bytes(config), len(config))
    client.upload_blob(repository, BlobSource(config_desc, data=config))
    for desc, data in layers:
        client.upload_blob(repository, BlobSource(desc, data=data))
    raw = json.dumps({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": ARTIFACT_TYPE,
        "config": config_desc.to_dict(),
        "layers": [desc.to_dict() for desc, _ in layers],
        "annotations": {"org.opencontainers.image.title": name, "org.opencontainers.image.version": "1.0.0"},
    }, sort_keys=True, separators=(",", ":")).encode()
    return client.put_manifest(repository, tag or digest_bytes(raw), raw)


def code_layer(data: bytes) -> tuple[Descriptor, bytes]:
    return Descriptor(CODE_LAYER_MEDIA_TYPE, digest_bytes(data), len(data),
                      {"org.opencontainers.image.title": "bundle-code.tar"}), data
