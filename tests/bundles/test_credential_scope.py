"""Credentials and tokens stay with their registry: the registry's origin gets them, nothing else does.

The real registry (htpasswd basic auth) shows the normal path; hostile fake
registries on loopback show what only a fake can do: send the upload to another
port, redirect a blob to a server that answers 401, name a plain-HTTP token
realm while being reached over TLS.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator

import pytest
import requests
from requests.adapters import HTTPAdapter

from harness.services import Registry, start_registry, write_htpasswd
from modelops_infra.bundles import (
    CONFIG_MEDIA_TYPE,
    BasicCredentials,
    BlobSource,
    Descriptor,
    RegistryClient,
    digest_bytes,
)
from modelops_infra.errors import IntegrityError, RegistryAuthError, RegistryError
from tests.bundles.hostile import FakeServer, Handler, fake_server, session_resolving

USER, PASSWORD = "carol", "scoped-password-never-leaves-1"
CREDS = BasicCredentials(USER, PASSWORD)
BASIC = CREDS.header()
DATA = b'{"name":"scoped"}'
DIGEST = digest_bytes(DATA)
BLOB = BlobSource(Descriptor(CONFIG_MEDIA_TYPE, DIGEST, len(DATA)), data=DATA)


def basic_protected(h: Handler) -> bool:
    """Answer 401 unless the request carries our basic credentials; True when it does."""
    if h.headers.get("Authorization") == BASIC:
        return True
    h.body()
    h.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', {"WWW-Authenticate": 'Basic realm="fake"'})
    return False


@pytest.fixture
def storage() -> Iterator[FakeServer]:
    """Stands in for blob storage on another port: accepts uploads, serves the blob, records who called."""

    def respond(h: Handler) -> None:
        h.body()
        if h.path.startswith("/deny"):
            return h.reply(401, b"", {"WWW-Authenticate": 'Basic realm="storage"'})
        if h.command == "PUT":
            return h.reply(201, b"", {"Docker-Content-Digest": DIGEST})
        h.reply(200, DATA)

    with fake_server(respond) as server:
        yield server


def test_an_upload_location_on_another_port_gets_the_blob_but_never_the_credentials(storage):
    def respond(h: Handler) -> None:
        if not basic_protected(h):
            return
        if h.command == "HEAD":
            return h.reply(404)
        h.reply(202, b"", {"Location": storage.url("/upload/1?_state=x")})

    with fake_server(respond) as registry, RegistryClient(registry.address, credentials=CREDS) as client:
        assert client.upload_blob("team/sims", BLOB) is True
    puts = storage.requests_to("/upload/1")
    assert [s.method for s in puts] == ["PUT"], f"the blob should be PUT to the upload location; saw {storage.seen}"
    assert all(s.authorization is None for s in storage.seen), (
        f"no Authorization header may reach another host:port; saw {[s.headers for s in storage.seen]}")
    assert any(s.authorization == BASIC for s in registry.seen), "the registry itself should get the credentials"


def test_a_redirect_target_never_gets_the_credentials(storage):
    def respond(h: Handler) -> None:
        if basic_protected(h):
            h.reply(307, b"", {"Location": storage.url(f"/blob/{DIGEST}")})

    with fake_server(respond) as registry, RegistryClient(registry.address, credentials=CREDS) as client:
        out = io.BytesIO()
        client.download_blob("team/sims", DIGEST, len(DATA), out)
    assert out.getvalue() == DATA, "the redirected blob should be downloaded and verified"
    assert storage.seen and all(s.authorization is None for s in storage.seen), (
        f"the redirect target must not see the registry's credentials; saw {[s.headers for s in storage.seen]}")


def test_a_401_from_a_redirect_target_is_not_answered_with_the_registrys_credentials(storage):
    def respond(h: Handler) -> None:
        if basic_protected(h):
            h.reply(302, b"", {"Location": storage.url(f"/deny/{DIGEST}")})

    with fake_server(respond) as registry, RegistryClient(registry.address, credentials=CREDS) as client:
        with pytest.raises(RegistryAuthError) as info:
            client.download_blob("team/sims", DIGEST, len(DATA), io.BytesIO())
    assert len(storage.seen) == 1 and storage.seen[0].authorization is None, (
        f"the storage's 401 must not be answered (one request, no credentials); saw {storage.seen}")
    assert "redirect target" in str(info.value) and storage.address in str(info.value), str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_plain_http_token_realm_on_a_tls_registry_is_refused_before_any_credential_is_sent():
    realm_hits: list[str] = []

    def respond(h: Handler) -> None:
        if h.path.startswith("/token"):
            realm_hits.append(h.headers.get("Authorization") or "")
            return h.reply(200, json.dumps({"token": "t"}).encode())
        realm = f"http://127.0.0.1:{h.server.server_address[1]}/token"
        h.reply(401, b"", {"WWW-Authenticate": f'Bearer realm="{realm}",service="reg.example"'})

    with fake_server(respond) as server:
        session = session_resolving("reg.example", server.port)
        with RegistryClient("reg.example", credentials=CREDS, session=session, attempts=1) as client:
            assert client.scheme == "https", "a remote registry is reached over TLS"
            with pytest.raises(RegistryAuthError) as info:
                client.resolve("team/sims", "v1")
    assert realm_hits == [], "the plain-HTTP realm must never be called"
    assert "plain-HTTP token realm" in str(info.value) and "127.0.0.1" in str(info.value), str(info.value)


def test_a_plain_http_upload_location_on_a_tls_registry_is_refused():
    def respond(h: Handler) -> None:
        h.body()
        if h.command == "HEAD":
            return h.reply(404)
        h.reply(202, b"", {"Location": "http://127.0.0.1:9/upload"})

    with fake_server(respond) as server:
        session = session_resolving("reg.example", server.port)
        with RegistryClient("reg.example", session=session, environ={}, attempts=1) as client:
            with pytest.raises(RegistryError) as info:
                client.upload_blob("team/sims", BLOB)
    assert "plain-HTTP upload location" in str(info.value) and "reg.example" in str(info.value), str(info.value)
    assert not [s for s in server.seen if s.method == "PUT"], "nothing may be sent to the refused location"


class RecordingAdapter(HTTPAdapter):
    """A real transport adapter that records the timeout of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[object] = []

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        self.timeouts.append(kwargs.get("timeout"))
        return super().send(request, **kwargs)


def recording_session() -> tuple[requests.Session, RecordingAdapter]:
    session, adapter = requests.Session(), RecordingAdapter()
    session.mount("http://", adapter)
    return session, adapter


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("scope-registry")
    reg = start_registry(root, htpasswd=write_htpasswd(root / "htpasswd", {USER: PASSWORD}))
    yield reg
    reg.stop()


def test_every_request_including_the_authenticated_resend_uses_the_connect_timeout(auth_registry):
    session, adapter = recording_session()
    with RegistryClient(auth_registry.address, credentials=CREDS, session=session, timeout=30) as client:
        client.upload_blob("tests/scoped", BLOB)
    assert len(adapter.timeouts) >= 4, "HEAD (401, resent), POST, PUT at least"
    assert set(adapter.timeouts) == {(5.0, 30)}, (
        f"every request, the re-sent one included, should use (connect 5 s, read 30 s); got {adapter.timeouts}")


def test_an_injected_session_is_used_and_left_open_for_its_owner(auth_registry):
    session, adapter = recording_session()
    with RegistryClient(auth_registry.address, credentials=CREDS, session=session) as client:
        client.ping()
    assert adapter.timeouts, "the client should send through the injected session"
    # the session still works after the client closed: it is the caller's to close
    assert session.get(f"http://{auth_registry.address}/v2/", timeout=5).status_code == 401


def test_every_request_and_retry_is_logged_at_debug_without_secrets(auth_registry, caplog):
    caplog.set_level(logging.DEBUG, logger="modelops_infra.bundles")
    with RegistryClient(auth_registry.address, credentials=CREDS) as client:
        client.upload_blob("tests/logged", BLOB)
    text = caplog.text
    assert "HEAD http://" in text and "HTTP 401" in text and "(with credentials)" in text, text
    assert "answered a basic challenge" in text, text
    assert PASSWORD not in text and BASIC not in text, "credentials must never be logged"
    caplog.clear()
    with RegistryClient("127.0.0.1:9", environ={}, attempts=2, max_backoff=0.01) as client, \
            pytest.raises(RegistryError):
        client.ping()
    assert "retrying GET http://127.0.0.1:9/v2/ after attempt 1" in caplog.text, caplog.text


def test_the_blob_digest_check_survives_a_redirect(storage):
    """A redirect target is not trusted either: its bytes are verified against the digest."""

    def respond(h: Handler) -> None:
        h.reply(307, b"", {"Location": storage.url("/blob/other")})

    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    with fake_server(respond) as registry, RegistryClient(registry.address, environ={}) as client:
        with pytest.raises(IntegrityError) as info:
            client.download_blob("team/sims", wrong, len(DATA), io.BytesIO())
    assert "integrity error" in str(info.value), str(info.value)


def test_a_redirect_from_tls_to_plain_http_is_refused():
    def respond(h: Handler) -> None:
        h.reply(307, b"", {"Location": "http://127.0.0.1:9/blob"})

    with fake_server(respond) as server:
        session = session_resolving("reg.example", server.port)
        with RegistryClient("reg.example", session=session, environ={}, attempts=1) as client:
            with pytest.raises(RegistryError) as info:
                client.download_blob("team/sims", DIGEST, len(DATA), io.BytesIO())
    assert "which is not https; refusing to follow" in str(info.value), str(info.value)
