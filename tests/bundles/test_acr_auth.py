"""The Azure Container Registry token flow, against a local stand-in for ACR's token service.

Azure AD and ACR cannot run here, so two things are replaced, and only those:
``DefaultAzureCredential`` (returns a fixed AAD token) and the network path to
``test.azurecr.io`` (a requests transport adapter sends it to a local HTTP server
that speaks ACR's ``/oauth2/exchange`` and ``/oauth2/token`` protocol). Everything
else -- challenge parsing, the exchange, token caching, error messages -- is the
real client code.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from requests.adapters import HTTPAdapter

from modelops_infra.bundles import RegistryClient
from modelops_infra.errors import ConfigurationError, RegistryAuthError

HOST = "test.azurecr.io"
AAD, REFRESH, ACCESS = "aad-token-1", "acr-refresh-1", "acr-access-1"
DIGEST = "sha256:" + "ab" * 32


class FakeAcr(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict[str, str]]] = []
    accept_aad = True

    def log_message(self, *args: object) -> None:
        return None

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

    def _reply(self, code: int, body: dict | None = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body or {}).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802
        form = self._form()
        self.seen.append(("POST", self.path, form))
        if self.path == "/oauth2/exchange":
            ok = form.get("grant_type") == "access_token" and form.get("access_token") == AAD and self.accept_aad
            return self._reply(200, {"refresh_token": REFRESH}) if ok else self._reply(401, {"errors": []})
        if self.path == "/oauth2/token":
            ok = form.get("grant_type") == "refresh_token" and form.get("refresh_token") == REFRESH
            return self._reply(200, {"access_token": ACCESS}) if ok else self._reply(401)
        self._reply(404)

    def do_HEAD(self) -> None:  # noqa: N802
        self.seen.append(("HEAD", self.path, {"auth": self.headers.get("Authorization", "")}))
        if self.headers.get("Authorization") != f"Bearer {ACCESS}":
            repo = self.path.split("/manifests/")[0].removeprefix("/v2/")
            challenge = (f'Bearer realm="https://{HOST}/oauth2/token",service="{HOST}",'
                         f'scope="repository:{repo}:pull"')
            return self._reply(401, headers={"WWW-Authenticate": challenge})
        self._reply(200, headers={"Docker-Content-Digest": DIGEST})


class ToLocal(HTTPAdapter):
    """Transport adapter: https://test.azurecr.io/... -> http://127.0.0.1:<port>/..."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def]
        request.url = request.url.replace(f"https://{HOST}", f"http://127.0.0.1:{self.port}", 1)
        return super().send(request, **kwargs)


@pytest.fixture
def acr() -> Iterator[int]:
    FakeAcr.seen = []
    FakeAcr.accept_aad = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAcr)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


class FixedCredential:
    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def get_token(self, *scopes: str):  # type: ignore[no-untyped-def]
        assert scopes == ("https://management.azure.com/.default",)
        return type("Token", (), {"token": AAD})()


def _client(port: int) -> RegistryClient:
    session = requests.Session()  # the transport seam: the only thing replaced is where test.azurecr.io goes
    session.mount(f"https://{HOST}", ToLocal(port))
    return RegistryClient(HOST, environ={"HOME": "/nonexistent"}, attempts=1, session=session)


def test_aad_token_is_exchanged_for_an_acr_access_token(acr, monkeypatch):
    monkeypatch.setattr("azure.identity.DefaultAzureCredential", FixedCredential)
    with _client(acr) as client:
        assert client.resolve("modelops/bundles", "v1") == DIGEST
        assert client.resolve("modelops/bundles", "v2") == DIGEST  # token cached per scope
    posts = [(path, form) for method, path, form in FakeAcr.seen if method == "POST"]
    assert posts[0] == ("/oauth2/exchange", {"grant_type": "access_token", "service": HOST, "access_token": AAD})
    assert posts[1][0] == "/oauth2/token"
    assert posts[1][1]["scope"] == "repository:modelops/bundles:pull"
    assert len(posts) == 2, "one exchange and one token for the scope, then the cached token is reused"


def test_a_refused_exchange_names_the_registry_and_the_fix(acr, monkeypatch):
    monkeypatch.setattr("azure.identity.DefaultAzureCredential", FixedCredential)
    FakeAcr.accept_aad = False
    with _client(acr) as client, pytest.raises(RegistryAuthError) as info:
        client.resolve("modelops/bundles", "v1")
    assert f"registry {HOST}: /oauth2/exchange refused the Azure AD token (HTTP 401)" in str(info.value)
    assert "AcrPull" in str(info.value)
    assert AAD not in str(info.value)


def test_missing_azure_identity_says_to_install_the_azure_extra(acr, monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.identity", None)
    with _client(acr) as client, pytest.raises(ConfigurationError, match=r"azure-identity is not installed") as info:
        client.resolve("modelops/bundles", "v1")
    assert "modelops-infra[azure]" in str(info.value)


def test_insecure_mode_is_refused_for_azure_registries():
    with pytest.raises(ConfigurationError, match="refusing plain HTTP"):
        RegistryClient(HOST, insecure=True)

