"""Registry credentials, auth strategies, and the rule that credentials stay with their registry.

Credentials are looked up, in order (:func:`choose_auth`):

1. explicit :class:`BasicCredentials` passed by the caller;
2. ``REGISTRY_USERNAME`` / ``REGISTRY_PASSWORD``;
3. ``~/.docker/config.json`` (or ``$DOCKER_CONFIG``) ``auths`` for the host;
4. for ``*.azurecr.io`` only: an Azure AD token from azure-identity's
   ``DefaultAzureCredential`` (covers workload identity in AKS pods), exchanged
   at ``/oauth2/exchange`` for an ACR refresh token, then for an access token;
5. anonymous (bearer tokens a registry hands out without credentials).

Each way of answering a challenge is a strategy -- :class:`Basic`,
:class:`BearerChallenge`, :class:`AcrExchange` -- chosen once per registry
host. :class:`RegistryAuth` holds the chosen strategies and enforces scoping:

* an ``Authorization`` header is only ever attached to a URL on the registry's
  own origin (scheme, host and port): never to an upload ``Location`` on another
  host or port, never to a redirect target;
* only a 401 from the registry's origin is answered; a 401 from a redirect
  target (blob storage) is not;
* a token realm must be ``https``, unless the registry itself is reached over
  plain HTTP (loopback, or explicitly insecure).

Passwords and tokens never appear in ``repr``, logs or error messages: errors
say *which* credentials were tried (their source and user name), never the secret.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from modelops_infra.bundles._host import RegistryHost
from modelops_infra.bundles._http import MAX_SMALL_BODY, origin, read_capped, redact, send
from modelops_infra.errors import ConfigurationError, RegistryAuthError, RegistryUnavailableError

__all__ = [
    "AcrExchange",
    "AuthStrategy",
    "Basic",
    "BasicCredentials",
    "BearerChallenge",
    "RegistryAuth",
    "TokenEndpoint",
    "choose_auth",
    "parse_challenge",
    "resolve_basic_credentials",
]

log = logging.getLogger(__name__)
_AAD_SCOPE = "https://management.azure.com/.default"
_PARAM = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


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


def _is_docker_hub(registry: str) -> bool:
    """Whether ``registry`` is Docker Hub, whose credentials `docker login` keeps under its legacy index URL."""
    try:
        return RegistryHost.parse(registry).api_netloc == "registry-1.docker.io"
    except ConfigurationError:
        return False


def resolve_basic_credentials(registry: str, environ: Mapping[str, str] | None = None) -> BasicCredentials | None:
    """Basic credentials for ``registry`` from the environment or the Docker config, if any.

    Raises :class:`ConfigurationError` naming the file if the Docker config is
    unreadable, not a JSON object, or has a malformed entry for ``registry``.
    """
    env = os.environ if environ is None else environ
    user, password = env.get("REGISTRY_USERNAME"), env.get("REGISTRY_PASSWORD")
    if user and password is not None:
        return BasicCredentials(user, password, "REGISTRY_USERNAME/REGISTRY_PASSWORD")
    path = _docker_config_path(env)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{path}: cannot be read as JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigurationError(f"{path}: top level is a JSON {type(config).__name__}, not an object",
                                 hint="a Docker config is an object such as {\"auths\": {...}}")
    auths = config.get("auths")
    auths = {} if auths is None else auths
    if not isinstance(auths, dict):
        raise ConfigurationError(f"{path}: 'auths' is not an object")
    hub = ("https://index.docker.io/v1/",) if _is_docker_hub(registry) else ()
    for key in (registry, f"https://{registry}", f"http://{registry}", *hub):
        entry = auths.get(key)
        if not isinstance(entry, dict):
            continue
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError) as exc:
                raise ConfigurationError(f"{path}: auths[{key!r}].auth is not base64 'user:password'") from exc
            return BasicCredentials(user, password, path)
        if entry.get("username") and entry.get("password") is not None:
            if not isinstance(entry["username"], str) or not isinstance(entry["password"], str):
                raise ConfigurationError(f"{path}: auths[{key!r}] username and password must be strings")
            return BasicCredentials(entry["username"], entry["password"], path)
    return None


# -- challenges and the token endpoint -------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header: ``Bearer realm="...",service="...",scope="..."``."""

    scheme: str
    params: dict[str, str]

    @property
    def realm(self) -> str | None:
        return self.params.get("realm") or None


def parse_challenge(header: str) -> Challenge:
    """Parse one ``WWW-Authenticate`` value (pure). The scheme is lowercased.

    >>> parse_challenge('Bearer realm="https://a/token",service="a"').params["service"]
    'a'
    """
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


class TokenEndpoint:
    """Sends token requests for one registry: ``https`` realms only (see module docstring), bounded bodies.

    Holds no secrets; strategies pass theirs per call.
    """

    def __init__(self, host: RegistryHost, scheme: str, session: requests.Session,
                 timeouts: tuple[float, float]) -> None:
        self.host, self.scheme, self._session, self._timeouts = host, scheme, session, timeouts

    @property
    def registry(self) -> str:
        return str(self.host)

    def check_realm(self, realm: str) -> str:
        """Return ``realm`` if credentials may be sent there; raise :class:`RegistryAuthError` if not."""
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise RegistryAuthError(f"registry {self.registry} named token realm {redact(realm)!r},"
                                    " which is not an http(s) URL; refusing it", registry=self.registry)
        if parts.scheme == "http" and self.scheme != "http":
            raise RegistryAuthError(
                f"registry {self.registry} is reached over TLS but named the plain-HTTP token realm {redact(realm)};"
                " refusing to send credentials there",
                hint="the registry's token service must be https (plain HTTP is only used for loopback or"
                     " MODELOPS_BUNDLE_INSECURE registries)",
                registry=self.registry,
            )
        return realm

    def call(self, method: str, url: str, **kw: Any) -> tuple[int, dict[str, Any] | None]:
        """Send a token request; its status and, for a 200, the JSON object it returned."""
        try:
            resp = send(self._session, method, url, timeout=self._timeouts, **kw)
            log.debug("auth %s %s -> HTTP %d", method, redact(url), resp.status_code)
            if resp.status_code != 200:
                resp.close()
                return resp.status_code, None
            raw = read_capped(resp, MAX_SMALL_BODY)
        except requests.RequestException as exc:
            raise RegistryUnavailableError(
                f"registry {self.registry}: token endpoint {redact(url)} unreachable ({type(exc).__name__})",
                registry=self.registry,
            ) from exc
        if raw is None:
            raise RegistryAuthError(f"registry {self.registry}: token endpoint {redact(url)} sent a body larger than"
                                    f" {MAX_SMALL_BODY} bytes; refusing it", registry=self.registry)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise RegistryAuthError(f"registry {self.registry}: token endpoint {redact(url)} did not return JSON",
                                    registry=self.registry) from exc
        if not isinstance(body, dict):
            raise RegistryAuthError(f"registry {self.registry}: token endpoint {redact(url)} did not return a JSON"
                                    " object", registry=self.registry)
        return 200, body


# -- strategies ---------------------------------------------------------------------------------------


class AuthStrategy:
    """Answers one challenge scheme for one registry. Subclasses override :meth:`answer` and :meth:`describe`."""

    #: The ``WWW-Authenticate`` scheme this strategy answers (lowercase).
    scheme: ClassVar[str] = ""

    def describe(self) -> str:
        raise NotImplementedError

    def answer(self, challenge: Challenge, scope: str, tokens: TokenEndpoint) -> str | None:
        """The ``Authorization`` value answering ``challenge``, or ``None`` if there is nothing to offer."""
        raise NotImplementedError


class Basic(AuthStrategy):
    """Answers ``Basic`` challenges with a user name and password."""

    scheme = "basic"

    def __init__(self, credentials: BasicCredentials) -> None:
        self.credentials = credentials

    def describe(self) -> str:
        return self.credentials.describe()

    def answer(self, challenge: Challenge, scope: str, tokens: TokenEndpoint) -> str | None:
        return self.credentials.header()


class BearerChallenge(AuthStrategy):
    """Answers ``Bearer`` challenges with a token from the realm, asked with basic credentials if any."""

    scheme = "bearer"

    def __init__(self, credentials: BasicCredentials | None = None) -> None:
        self.credentials = credentials

    def describe(self) -> str:
        if self.credentials is not None:
            return self.credentials.describe()
        return "anonymous access (no REGISTRY_USERNAME/REGISTRY_PASSWORD and no ~/.docker/config.json entry)"

    def answer(self, challenge: Challenge, scope: str, tokens: TokenEndpoint) -> str | None:
        if challenge.realm is None:
            return None
        realm = tokens.check_realm(challenge.realm)
        headers = {"Authorization": self.credentials.header()} if self.credentials else {}
        service = challenge.params.get("service") or tokens.registry
        _, body = tokens.call("GET", realm, params={"service": service, "scope": scope}, headers=headers)
        token = body and (body.get("token") or body.get("access_token"))
        return f"Bearer {token}" if isinstance(token, str) and token else None


class AcrExchange(AuthStrategy):
    """Azure Container Registry: an Azure AD token exchanged for a refresh token, then for access tokens."""

    scheme = "bearer"

    def __init__(self) -> None:
        self._refresh: str | None = None

    def describe(self) -> str:
        return "an Azure AD token from DefaultAzureCredential exchanged for an ACR token"

    def answer(self, challenge: Challenge, scope: str, tokens: TokenEndpoint) -> str | None:
        if challenge.realm is None:
            return None
        realm = tokens.check_realm(challenge.realm)
        service = challenge.params.get("service") or tokens.registry
        if self._refresh is None:
            self._refresh = self._exchange(service, tokens)
        _, body = tokens.call("POST", realm, data={"grant_type": "refresh_token", "service": service, "scope": scope,
                                                "refresh_token": self._refresh})
        token = body and body.get("access_token")
        return f"Bearer {token}" if isinstance(token, str) and token else None

    def _exchange(self, service: str, tokens: TokenEndpoint) -> str:
        registry = tokens.registry
        try:
            from azure.core.exceptions import ClientAuthenticationError
            from azure.identity import DefaultAzureCredential
        except ImportError as exc:
            raise ConfigurationError(
                f"registry {registry} is an Azure Container Registry, but azure-identity is not installed",
                hint="pip install 'modelops-infra[azure]', or set REGISTRY_USERNAME/REGISTRY_PASSWORD",
            ) from exc
        try:
            aad = DefaultAzureCredential().get_token(_AAD_SCOPE).token
        except ClientAuthenticationError as exc:
            raise RegistryAuthError(
                f"registry {registry}: DefaultAzureCredential found no usable Azure identity",
                hint="run 'az login', or use workload identity (AZURE_CLIENT_ID) in the pod",
                registry=registry,
            ) from exc
        url = f"{tokens.scheme}://{registry}/oauth2/exchange"
        status, body = tokens.call("POST", url, data={"grant_type": "access_token", "service": service,
                                                      "access_token": aad})
        refresh = body.get("refresh_token") if body is not None else None
        if not isinstance(refresh, str) or not refresh:
            why = f"HTTP {status}" if body is None else "no refresh_token in the answer"
            raise RegistryAuthError(
                f"registry {registry}: /oauth2/exchange refused the Azure AD token ({why})",
                hint="grant the identity AcrPull (or AcrPush to push) on the registry",
                registry=registry,
            )
        return refresh


def choose_auth(host: RegistryHost, *, credentials: BasicCredentials | None = None,
                environ: Mapping[str, str] | None = None) -> list[AuthStrategy]:
    """The strategies for ``host`` (see the module docstring for the order). One function decides.

    Basic credentials answer both ``Basic`` challenges and the token realm of
    ``Bearer`` ones; without them, an ACR host uses the AAD exchange and any
    other host asks for anonymous bearer tokens.
    """
    basic = credentials or resolve_basic_credentials(str(host), environ)
    if basic is not None:
        return [Basic(basic), BearerChallenge(basic)]
    if host.is_acr:
        return [AcrExchange()]
    return [BearerChallenge(None)]


class RegistryAuth:
    """Answers challenges for one registry and keeps each credential on the registry's origin.

    Caches ``Authorization`` values by scope. Not thread-safe across token
    refreshes, which is harmless: a race costs one extra token request.
    """

    def __init__(self, host: RegistryHost, scheme: str, session: requests.Session, *,
                 strategies: Sequence[AuthStrategy], timeouts: tuple[float, float]) -> None:
        self.host = host
        self.origin = origin(f"{scheme}://{host.api_netloc}/")
        self._strategies = {s.scheme: s for s in reversed(strategies)}  # the first one per scheme wins
        self._described = strategies[0].describe() if strategies else "no credentials"
        self._tokens = TokenEndpoint(host, scheme, session, timeouts)
        self._by_scope: dict[str, str] = {}
        self._basic: str | None = None

    def describe(self) -> str:
        return self._described

    def owns(self, url: str) -> bool:
        """Whether ``url`` is on the registry's own origin, the only place credentials go."""
        return origin(url) == self.origin

    def headers_for(self, url: str, scope: str) -> dict[str, str]:
        """The cached ``Authorization`` header for ``url``, or none when ``url`` is not on the registry."""
        if not self.owns(url):
            return {}
        value = self._by_scope.get(scope) or self._basic
        return {"Authorization": value} if value else {}

    def answer(self, url: str, resp: requests.Response, scope: str) -> dict[str, str] | None:
        """Headers answering the 401 ``resp`` from ``url``, or ``None``: nothing to offer, or ``url`` is not the registry."""
        header = resp.headers.get("WWW-Authenticate")
        if not header:
            return None
        if not self.owns(url):
            log.debug("not answering a 401 from %s: it is not registry %s", redact(url), self.host)
            return None
        challenge = parse_challenge(header)
        strategy = self._strategies.get(challenge.scheme)
        if strategy is None:
            return None
        value = strategy.answer(challenge, scope, self._tokens)
        if value is None:
            return None
        if challenge.scheme == "basic":
            self._basic = value
        else:
            self._by_scope[scope] = value
        log.debug("answered a %s challenge from %s for %s", challenge.scheme, self.host, scope)
        return {"Authorization": value}
