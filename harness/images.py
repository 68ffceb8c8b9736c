"""Real services for the worker-image tests: base images in the test registry, and a Docker daemon of their own.

No public container registry is reachable from the test machines, so the base
image is the bookworm + python3 root file system ``make test`` builds once with
mmdebstrap (scripts/container-tools.sh), pushed here as a one-layer Docker
schema-2 image (what ``docker push`` writes). Tiny images for the error paths
are written the same way.

The Docker daemon is started as this machine allows (``--iptables=false
--bridge=none``: containers use the host network), with its data root, exec
root, pid file and socket in a directory of its own, and stopped after.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.services import REPO_ROOT
from modelops_infra.bundles import BlobSource, Descriptor, RegistryClient, digest_bytes
from modelops_infra.bundles._oci import canonical_json
from modelops_infra.infra.image._manifests import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)

BASE_ROOTFS_FILE = REPO_ROOT / ".modelops" / "base-rootfs"
DEBIAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_rootfs_tar() -> Path:
    """The root file system tarball ``make test`` built (``MODELOPS_TEST_BASE_ROOTFS`` overrides).

    Raises RuntimeError when it is missing: these tests never skip for want of it.
    """
    env = os.environ.get("MODELOPS_TEST_BASE_ROOTFS")
    if env:
        path, source = Path(env), "MODELOPS_TEST_BASE_ROOTFS"
    elif BASE_ROOTFS_FILE.is_file():
        path, source = Path(BASE_ROOTFS_FILE.read_text().strip()), str(BASE_ROOTFS_FILE)
    else:
        raise RuntimeError(f"no base root file system: {BASE_ROOTFS_FILE} is missing; run `make test` "
                           "(its container-tools step builds it with mmdebstrap)")
    if not path.is_file():
        raise RuntimeError(f"{path} (named by {source}) does not exist; run `make test`")
    return path


@dataclass(frozen=True)
class PushedImage:
    repository: str
    digest: str
    layers: tuple[Descriptor, ...]


def _gzip_file(src: Path, dest: Path) -> tuple[Descriptor, str]:
    """Gzip ``src`` (mtime 0, level 1: fast) into ``dest``; return the blob descriptor and the tar's diff_id."""
    diff = hashlib.sha256()
    with open(src, "rb") as fin, open(dest, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=1, mtime=0) as gz:
        while chunk := fin.read(1 << 20):
            diff.update(chunk)
            gz.write(chunk)
    blob = hashlib.sha256(dest.read_bytes()).hexdigest()
    return Descriptor(DOCKER_LAYER_GZIP, f"sha256:{blob}", dest.stat().st_size), f"sha256:{diff.hexdigest()}"


def _push_image(client: RegistryClient, repository: str, tag: str, layers: list[BlobSource], diff_ids: list[str],
                *, env: list[str], architecture: str = "amd64", docker: bool = True) -> PushedImage:
    config_raw = canonical_json({
        "architecture": architecture, "os": "linux", "config": {"Env": env, "Cmd": ["python3"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "mmdebstrap (tests)"} for _ in diff_ids],
    })
    config = Descriptor(DOCKER_CONFIG if docker else OCI_CONFIG, digest_bytes(config_raw), len(config_raw))
    for blob in (*layers, BlobSource(config, data=config_raw)):
        client.upload_blob(repository, blob)
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    descs = [Descriptor(layer_type, b.descriptor.digest, b.descriptor.size) for b in layers]
    manifest = canonical_json({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
                               "config": config.to_dict(), "layers": [d.to_dict() for d in descs]})
    digest = client.put_manifest(repository, tag, manifest, DOCKER_MANIFEST if docker else OCI_MANIFEST)
    return PushedImage(repository, digest, tuple(descs))


def push_rootfs_image(client: RegistryClient, repository: str, tag: str, rootfs: Path) -> PushedImage:
    """Push a root file system tarball as a one-layer Docker schema-2 image, as ``docker push`` would."""
    with tempfile.TemporaryDirectory(prefix="modelops-base-") as tmp:
        blob = Path(tmp) / "layer.tar.gz"
        desc, diff_id = _gzip_file(rootfs, blob)
        return _push_image(client, repository, tag, [BlobSource(desc, path=blob)], [diff_id], env=[DEBIAN_PATH])


def push_tiny_image(client: RegistryClient, repository: str, tag: str, *, files: dict[str, bytes],
                    env: list[str] | None = None, architecture: str = "amd64") -> PushedImage:
    """A one-layer OCI image holding ``files`` (for error paths: wrong Python, wrong platform)."""
    raw_tar = io.BytesIO()
    with tarfile.open(fileobj=raw_tar, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    diff_id = digest_bytes(raw_tar.getvalue())
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0) as out:
        out.write(raw_tar.getvalue())
    data = gz.getvalue()
    layer = BlobSource(Descriptor(OCI_LAYER_GZIP, digest_bytes(data), len(data)), data=data)
    return _push_image(client, repository, tag, [layer], [diff_id], env=env or [DEBIAN_PATH],
                       architecture=architecture, docker=False)


def push_index(client: RegistryClient, repository: str, tag: str, entries: list[tuple[PushedImage, str]]) -> str:
    """An OCI index of ``(image, "os/arch")`` entries (the images must be in ``repository``)."""
    manifests = []
    for image, platform in entries:
        raw, media_type = client.get_image_manifest(image.repository, image.digest)
        os_, arch = platform.split("/")
        manifests.append({"mediaType": media_type, "digest": image.digest, "size": len(raw),
                          "platform": {"os": os_, "architecture": arch}})
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    return client.put_manifest(repository, tag, index, OCI_INDEX)


# --- the Docker daemon ------------------------------------------------------------------


class DockerError(RuntimeError):
    pass


@dataclass
class Dockerd:
    """A running dockerd of our own. ``docker(...)`` runs the client against it."""

    root: Path
    proc: subprocess.Popen
    socket: Path
    log: Path

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCKER_HOST": self.host, "DOCKER_CONFIG": str(self.root / "client")}
        proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, env=env)
        if check and proc.returncode != 0:
            raise DockerError(f"docker {' '.join(args[:3])} ... failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        # Overlay mounts are gone once the daemon stopped cleanly; anything left is unmounted lazily.
        subprocess.run(["sh", "-c", f"grep -o ' {self.root}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l"],
                       check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def start_dockerd(timeout: float = 60) -> Dockerd:
    """Start ``dockerd --iptables=false --bridge=none`` with everything under a new /tmp directory.

    The directory's path is short because unix socket paths are limited to 107 bytes.
    """
    if not shutil.which("dockerd"):
        raise RuntimeError("no dockerd on PATH; run `make test` (its container-tools step installs docker.io)")
    root = Path(tempfile.mkdtemp(prefix="mops-dkr-", dir="/tmp"))  # noqa: S108
    sock, log = root / "docker.sock", root / "dockerd.log"
    argv = ["dockerd", "--iptables=false", "--ip-masq=false", "--bridge=none", "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"), "--pidfile", str(root / "docker.pid"), "--host", f"unix://{sock}",
            "--log-level", "warn"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    daemon = Dockerd(root, proc, sock, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            text = log.read_text()[-3000:]
            daemon.stop()
            raise RuntimeError(f"dockerd exited with {proc.returncode}:\n{text}")
        if sock.exists() and daemon.docker("version", check=False, timeout=10).returncode == 0:
            return daemon
        time.sleep(0.2)
    daemon.stop()
    raise RuntimeError(f"dockerd not ready within {timeout} s:\n{log.read_text()[-3000:]}")


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - polling a service that is still starting
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready within {timeout} s")


def image_json(client: RegistryClient, repository: str, digest: str) -> tuple[dict, dict]:
    """(manifest, config) of an image in the registry, both verified."""
    raw, _ = client.get_image_manifest(repository, digest)
    manifest = json.loads(raw)
    out = io.BytesIO()
    client.download_blob(repository, manifest["config"]["digest"], manifest["config"]["size"], out)
    return manifest, json.loads(out.getvalue())
