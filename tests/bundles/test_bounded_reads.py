"""Every read and every wait is bounded: capped bodies, a layer cap, and a deadline on blob downloads.

A hostile fake registry does what the real one never does: bodies that never
end, a blob trickled one byte at a time, a manifest with too many layers.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable

import pytest
from filelock import FileLock

from modelops_infra.bundles import (
    ARTIFACT_TYPE,
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    BundleCache,
    RegistryClient,
    digest_bytes,
    parse_oci_manifest,
)
from modelops_infra.bundles._oci import MAX_LAYERS
from modelops_infra.errors import IntegrityError, RegistryAuthError, RegistryError, RegistryUnavailableError
from tests.bundles.helpers import code_tar, staging_dirs
from tests.bundles.hostile import Handler, fake_server

CONFIG = json.dumps({"entrypoint": "sim:run", "name": "slow", "version": "1.0.0"}, sort_keys=True,
                    separators=(",", ":")).encode()
CODE = code_tar(name="slow")


def endless(h: Handler, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
    """Answer with a body that never ends (until the client hangs up)."""
    h.send_response(status)
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.send_header("Connection", "close")
    h.end_headers()
    block = b"x" * 65536
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        h.wfile.write(block)


def manifest_for(layers: list[dict[str, object]], config: bytes = CONFIG) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": ARTIFACT_TYPE,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest_bytes(config), "size": len(config)},
        "layers": layers,
    }).encode()


def code_layer_desc() -> dict[str, object]:
    return {"mediaType": CODE_LAYER_MEDIA_TYPE, "digest": digest_bytes(CODE), "size": len(CODE)}


def bundle_registry(manifest: bytes, blob: Callable[[Handler, bytes], None] | None = None) -> Callable[[Handler], None]:
    """A fake registry serving one manifest, the config and the code layer (``blob`` may serve the latter)."""
    blobs = {digest_bytes(CONFIG): CONFIG, digest_bytes(CODE): CODE}

    def respond(h: Handler) -> None:
        if "/manifests/" in h.path:
            return h.reply(200, manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        digest = h.path.rsplit("/", 1)[-1]
        data = blobs.get(digest)
        if data is None:
            return h.reply(404)
        if blob is not None and data is CODE:
            return blob(h, data)
        h.reply(200, data)

    return respond


def trickle(h: Handler, data: bytes) -> None:
    """Send one byte every 0.2 s: each read finishes well inside any timeout, the whole never does."""
    h.send_response(200)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    for i in range(len(data)):
        h.wfile.write(data[i:i + 1])
        h.wfile.flush()
        time.sleep(0.2)


@pytest.mark.parametrize(("what", "respond", "call", "error"), [
    ("the /v2/ ping body", lambda h: endless(h), lambda c: c.ping(), RegistryError),
    ("an upload reply body", lambda h: h.reply(404) if h.command == "HEAD" else endless(h, status=202),
     lambda c: c.request("POST", "/v2/a/blobs/uploads/", repository="a", subject="upload", ok=(202,)), RegistryError),
])
def test_an_endless_body_fails_fast_naming_the_url(what, respond, call, error):
    with fake_server(respond) as server, RegistryClient(server.address, environ={}) as client:
        started = time.monotonic()
        with pytest.raises(error) as info:
            call(client)
        elapsed = time.monotonic() - started
    assert elapsed < 10, f"{what}: an endless body should be refused within seconds, took {elapsed:.1f} s"
    assert server.address in str(info.value) and "larger than" in str(info.value), str(info.value)


def test_an_endless_error_body_is_cut_off_and_the_error_still_names_the_object():
    with fake_server(lambda h: endless(h, status=404)) as server, RegistryClient(server.address, environ={}) as c:
        started = time.monotonic()
        with pytest.raises(RegistryError) as info:
            c.get_manifest("team/sims", "v1")
    assert time.monotonic() - started < 10
    assert "team/sims:v1" in str(info.value) and "error body over" in str(info.value), str(info.value)


def test_an_endless_token_response_is_refused_naming_the_token_endpoint():
    def respond(h: Handler) -> None:
        if h.path.startswith("/token"):
            return endless(h)
        realm = f"http://127.0.0.1:{h.server.server_address[1]}/token"
        h.reply(401, b"", {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'})

    with fake_server(respond) as server, RegistryClient(server.address, environ={}) as client:
        with pytest.raises(RegistryAuthError) as info:
            client.resolve("team/sims", "v1")
    assert f"{server.address}/token" in str(info.value) and "larger than" in str(info.value), str(info.value)


def test_an_endless_redirect_body_is_never_read():
    def respond(h: Handler) -> None:
        if h.path.startswith("/elsewhere"):
            return h.reply(200, b"{}")
        endless(h, status=302, headers={"Location": "/elsewhere"})

    with fake_server(respond) as server, RegistryClient(server.address, environ={}) as client:
        started = time.monotonic()
        client.ping()
    assert time.monotonic() - started < 10, "a redirect's body should be dropped, not read"


def test_a_manifest_with_more_layers_than_the_cap_is_an_integrity_error_and_nothing_is_fetched(tmp_path):
    layer = code_layer_desc()
    manifest = manifest_for([layer] * (MAX_LAYERS + 1))
    with fake_server(bundle_registry(manifest)) as server, RegistryClient(server.address, environ={}) as client:
        cache = BundleCache(tmp_path / "cache")
        with pytest.raises(IntegrityError) as info:
            cache.ensure("team/sims", digest_bytes(manifest), client=client)
    assert f"more than the limit of {MAX_LAYERS}" in str(info.value), str(info.value)
    assert not server.requests_to("/blobs/"), "no blob should be fetched for a refused manifest"
    assert cache.entries() == []


@pytest.mark.parametrize("digest", ["sha512:" + "a" * 128, "sha256:" + "A" * 64, "sha256:abc"])
def test_a_malformed_digest_inside_a_manifest_is_an_integrity_error(digest, tmp_path):
    layer = {**code_layer_desc(), "digest": digest}
    manifest = manifest_for([layer])
    with pytest.raises(ValueError, match="is not sha256"):
        parse_oci_manifest(manifest)
    with fake_server(bundle_registry(manifest)) as server, RegistryClient(server.address, environ={}) as client:
        with pytest.raises(IntegrityError) as info:
            BundleCache(tmp_path / "cache").ensure("team/sims", digest_bytes(manifest), client=client)
        with pytest.raises(IntegrityError):
            client.download_blob("team/sims", digest, 10, io.BytesIO())
    assert repr(digest) in str(info.value), str(info.value)


def test_a_trickled_blob_fails_within_its_deadline_releases_the_lock_and_caches_nothing(tmp_path):
    manifest = manifest_for([code_layer_desc()])
    digest = digest_bytes(manifest)
    cache = BundleCache(tmp_path / "cache")
    with fake_server(bundle_registry(manifest, trickle)) as server, \
            RegistryClient(server.address, environ={}, timeout=1.0, attempts=1) as client:
        deadline = client.download_deadline(len(CODE))
        started = time.monotonic()
        with pytest.raises(RegistryUnavailableError) as info:
            cache.ensure("team/sims", digest, client=client)
        elapsed = time.monotonic() - started
    assert deadline < 1.5, f"a {len(CODE)}-byte blob at 1 s timeout should get about 1 s, got {deadline:.2f}"
    assert elapsed < deadline + 3, f"the download should be cut off near its {deadline:.1f} s deadline, took {elapsed:.1f}"
    assert "did not finish within" in str(info.value) and server.address in str(info.value), str(info.value)
    lock = FileLock(str(cache.root / "locks" / f"{digest.split(':')[1]}.lock"))
    lock.acquire(timeout=0)  # raises if the failed download still held the per-digest lock
    lock.release()
    assert cache.entries() == [] and staging_dirs(cache) == [], "a cut-off download must leave nothing in the cache"


def test_a_blob_at_a_healthy_rate_is_not_cut_off(tmp_path):
    manifest = manifest_for([code_layer_desc()])
    with fake_server(bundle_registry(manifest)) as server, \
            RegistryClient(server.address, environ={}, timeout=1.0) as client:
        local = BundleCache(tmp_path / "cache").ensure("team/sims", digest_bytes(manifest), client=client)
    assert (local.path / "sim.py").is_file()
