"""Registry credentials and challenge answering.

Credentials are looked up, in order:

1. explicit :class:`BasicCredentials` passed by the caller;
2. ``REGISTRY_USERNAME`` / ``REGISTRY_PASSWORD``;
3. ``~/.docker/config.json`` (or ``$DOCKER_CONFIG``) ``auths`` for the host;
4. for ``*.azurecr.io`` only: an Azure AD token from azure-identity's
   ``DefaultAzureCredential`` (covers workload identity in AKS pods), exchanged
   at ``/oauth2/exchange`` for an ACR refresh token, then for an access token;
5. anonymous.

Passwords and tokens never appear in ``repr``, logs or error messages: errors
say *which* credentials were tried (their source and user name), never the secret.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from oras.auth.utils import parse_auth_header

from modelops_infra.errors import ConfigurationError, RegistryAuthError, RegistryUnavailableError

__all__ = ["Authenticator", "BasicCredentials", "resolve_basic_credentials"]

log = logging.getLogger(__name__)
_ACR_SUFFIX = ".azurecr.io"
_AAD_SCOPE = "https://management.azure.com/.default"


@dataclass(frozen=True)
class BasicCredentials:
    username: str
    password: str = field(repr=False)
    source: str = "explicit"

    def describe(self) -> str:
        return f"basic auth for user {self.username!r} from {self.source}"

    def header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


def _docker_config_path(env: Mapping[str, str]) -> str:
    base = env.get("DOCKER_CONFIG") or os.path.join(env.get("HOME", os.path.expanduser("~")), ".docker")
    return os.path.join(base, "config.json")


def resolve_basic_credentials(registry: str, environ: Mapping[str, str] | None = None) -> BasicCredentials | None:
    """Basic credentials for ``registry`` from the environment or the Docker config, if any."""
    env = os.environ if environ is None else environ
    user, password = env.get("REGISTRY_USERNAME"), env.get("REGISTRY_PASSWORD")
    if user and password is not None:
        return BasicCredentials(user, password, "REGISTRY_USERNAME/REGISTRY_PASSWORD")
    path = _docker_config_path(env)
    if not os.path.isfile(path):
        return None
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: cannot be read as JSON ({exc})") from exc
    auths = config.get("auths") or {}
    for key in (registry, f"https://{registry}", f"http://{registry}"):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ConfigurationError(f"{path}: auths[{key!r}].auth is not base64 'user:password'") from exc
            return BasicCredentials(user, password, path)
        if entry.get("username") and entry.get("password") is not None:
            return BasicCredentials(entry["username"], entry["password"], path)
    return None


class Authenticator:
    """Answers ``WWW-Authenticate`` challenges for one registry; caches bearer tokens by scope.

    Holds credentials in memory only. Not thread-safe across token refreshes,
    which is harmless: a race costs one extra token request.
    """

    def __init__(
        self,
        registry: str,
        session: requests.Session,
        *,
        basic: BasicCredentials | None,
        timeout: float,
        scheme: str = "https",
    ) -> None:
        self.registry = registry
        self._session = session
        self._basic = basic
        self._timeout = timeout
        self._scheme = scheme
        self._tokens: dict[str, str] = {}
        self._acr_refresh: str | None = None
        self._use_azure = basic is None and registry.lower().endswith(_ACR_SUFFIX)

    def describe(self) -> str:
        if self._basic is not None:
            return self._basic.describe()
        if self._use_azure:
            return "an Azure AD token from DefaultAzureCredential exchanged for an ACR token"
        return "anonymous access (no REGISTRY_USERNAME/REGISTRY_PASSWORD and no ~/.docker/config.json entry)"

    def cached_header(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic is not None and self._tokens.get("__basic__"):
            return {"Authorization": self._basic.header()}
        return {}

    def answer(self, challenge: str, scope: str) -> dict[str, str] | None:
        """Headers that answer ``challenge``, or ``None`` when we have nothing to offer."""
        kind = challenge.split(" ", 1)[0].lower()
        if kind == "basic":
            if self._basic is None:
                return None
            self._tokens["__basic__"] = "1"
            return {"Authorization": self._basic.header()}
        if kind != "bearer":
            return None
        params = parse_auth_header(challenge)
        if not params.realm:
            return None
        service = params.service or self.registry
        token = self._acr_token(params.realm, service, scope) if self._use_azure else self._bearer(params.realm, service, scope)
        if token is None:
            return None
        self._tokens[scope] = token
        return {"Authorization": f"Bearer {token}"}

    def _post_or_get(self, method: str, url: str, **kw: Any) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self._timeout, **kw)
        except requests.RequestException as exc:
            raise RegistryUnavailableError(
                f"registry {self.registry}: token endpoint {url} unreachable ({type(exc).__name__})",
                registry=self.registry,
            ) from exc

    def _bearer(self, realm: str, service: str, scope: str) -> str | None:
        headers = {"Authorization": self._basic.header()} if self._basic else {}
        resp = self._post_or_get("GET", realm, params={"service": service, "scope": scope}, headers=headers)
        if resp.status_code != 200:
            return None
        body = resp.json()
        return body.get("token") or body.get("access_token")

    def _acr_token(self, realm: str, service: str, scope: str) -> str | None:
        if self._acr_refresh is None:
            self._acr_refresh = self._acr_exchange(service)
        resp = self._post_or_get(
            "POST",
            realm,
            data={"grant_type": "refresh_token", "service": service, "scope": scope, "refresh_token": self._acr_refresh},
        )
        if resp.status_code != 200:
            return None
        return resp.json().get("access_token")

    def _acr_exchange(self, service: str) -> str:
        try:
            from azure.core.exceptions import ClientAuthenticationError
            from azure.identity import DefaultAzureCredential
        except ImportError as exc:
            raise ConfigurationError(
                f"registry {self.registry} is an Azure Container Registry, but azure-identity is not installed",
                hint="pip install 'modelops-infra[azure]', or set REGISTRY_USERNAME/REGISTRY_PASSWORD",
            ) from exc
        try:
            aad = DefaultAzureCredential().get_token(_AAD_SCOPE).token
        except ClientAuthenticationError as exc:
            raise RegistryAuthError(
                f"registry {self.registry}: DefaultAzureCredential found no usable Azure identity",
                hint="run 'az login', or use workload identity (AZURE_CLIENT_ID) in the pod",
                registry=self.registry,
            ) from exc
        resp = self._post_or_get(
            "POST",
            f"{self._scheme}://{self.registry}/oauth2/exchange",
            data={"grant_type": "access_token", "service": service, "access_token": aad},
        )
        if resp.status_code != 200:
            raise RegistryAuthError(
                f"registry {self.registry}: /oauth2/exchange refused the Azure AD token (HTTP {resp.status_code})",
                hint="grant the identity AcrPull (or AcrPush to push) on the registry",
                registry=self.registry,
            )
        return str(resp.json()["refresh_token"])
