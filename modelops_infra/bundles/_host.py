"""Registry hosts (pure): the one parser of ``host[:port]`` strings, and the decisions made on a parsed host.

Every registry string that enters modelops-infra -- ``MODELOPS_BUNDLE_REGISTRY``,
``--registry``, the bundle-env file, stack outputs, the registry part of a
bundle reference -- goes through :meth:`RegistryHost.parse`. Whether a
registry is loopback (plain HTTP allowed) or an Azure Container Registry (AAD
token exchange, never plain HTTP) is then decided on the parsed host only, so a
string such as ``127.0.0.1:1@x.azurecr.io`` or ``[::1]@10.0.0.1:5000`` can
neither pass as loopback nor as ACR: it is refused.

Accepted: a DNS name (``reg.example``, ``localhost``), a dotted-quad IPv4
address or a bracketed IPv6 address, each with an optional port 1-65535.
Refused, each with a reason: a scheme, userinfo (``user@host``), a path,
trailing dots, empty labels, an empty or out-of-range port, a zone id, and
numeric forms that resolvers read as addresses (``127.1``, ``0x7f.0.0.1``).

>>> RegistryHost.parse("127.0.0.1:5000").is_loopback
True
>>> str(RegistryHost.parse("myreg.azurecr.io"))
'myreg.azurecr.io'
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from modelops_infra.errors import ConfigurationError

__all__ = ["RegistryHost", "is_acr", "registry_problem"]

_ACR_SUFFIX = ".azurecr.io"
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0[xX][0-9A-Fa-f]*)$")
_PORT = re.compile(r"^[1-9][0-9]{0,4}$")
_MAX_LENGTH = 255
#: Docker Hub is named ``docker.io`` in references, but its API answers on another host (Docker's clients map it too).
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io"})
_DOCKER_HUB_API = "registry-1.docker.io"


def is_acr(host: str) -> bool:
    """Whether a *parsed* host name is an Azure Container Registry (``<name>.azurecr.io``)."""
    low = host.lower()
    return low.endswith(_ACR_SUFFIX) and len(low) > len(_ACR_SUFFIX)


@dataclass(frozen=True)
class RegistryHost:
    """A validated registry address. ``host`` is a name or an IP address (IPv6 without brackets).

    ``str()`` gives back the text it was parsed from, so references round-trip.
    """

    host: str
    port: int | None = None

    @classmethod
    def parse(cls, text: str | RegistryHost, *, source: str = "registry") -> RegistryHost:
        """Parse ``host[:port]``; raise :class:`ConfigurationError` naming ``source`` and the reason.

        ``source`` names where the string came from (``--registry``,
        ``MODELOPS_BUNDLE_REGISTRY``, a file), so the error says what to fix.
        Idempotent: a :class:`RegistryHost` is returned unchanged.
        """
        if isinstance(text, RegistryHost):
            return text
        parsed = _parse(text)
        if isinstance(parsed, str):
            raise ConfigurationError(f"{source} {text!r} is not a registry host[:port]: {parsed}",
                                     hint="give the registry as host or host:port, e.g. myreg.azurecr.io"
                                          " or 127.0.0.1:5000")
        return parsed

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    @property
    def api_netloc(self) -> str:
        """Where the registry's HTTP API answers: :attr:`netloc`, but ``registry-1.docker.io`` for Docker Hub.

        >>> RegistryHost.parse("docker.io").api_netloc
        'registry-1.docker.io'
        """
        if self.port is None and self.host.lower() in _DOCKER_HUB_NAMES:
            return _DOCKER_HUB_API
        return self.netloc

    @property
    def is_loopback(self) -> bool:
        if self.host.lower() == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def is_acr(self) -> bool:
        return is_acr(self.host)

    def __str__(self) -> str:
        return self.netloc


def registry_problem(text: str) -> str | None:
    """Why ``text`` is not a registry ``host[:port]``, or ``None`` if it is one (pure)."""
    parsed = _parse(text)
    return parsed if isinstance(parsed, str) else None


def _parse(text: str) -> RegistryHost | str:
    """A :class:`RegistryHost`, or the reason ``text`` is not one."""
    if not isinstance(text, str) or not text:
        return "it is empty"
    if len(text) > _MAX_LENGTH:
        return f"it is longer than {_MAX_LENGTH} characters"
    if text != text.strip() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return "it contains whitespace or control characters"
    if "://" in text:
        return "it has a scheme; give the host only"
    if "@" in text:
        return "it has userinfo (user@host); give credentials with REGISTRY_USERNAME/REGISTRY_PASSWORD"
    if any(c in text for c in "/?#\\"):
        return "it has a path, query or fragment; give the host only (the repository is separate)"
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return "an IPv6 address has no closing ']'"
        host, rest = text[1:end], text[end + 1:]
        if "%" in host:
            return "an IPv6 zone id is not supported"
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"{host!r} is not an IPv6 address"
        if rest and not rest.startswith(":"):
            return "unexpected text after the IPv6 address"
    else:
        host, sep, port_text = text.partition(":")
        rest = f"{sep}{port_text}"
        if ":" in port_text:
            return "it has more than one ':' (IPv6 addresses go in brackets: [::1]:5000)"
        problem = _host_problem(host)
        if problem:
            return problem
    port = None
    if rest:
        digits = rest[1:]
        if not digits:
            return "the port after ':' is empty"
        if not _PORT.match(digits) or int(digits) > 65535:
            return f"port {digits!r} is not a number from 1 to 65535"
        port = int(digits)
    return RegistryHost(host, port)


def _host_problem(host: str) -> str | None:
    if not host:
        return "the host name is empty"
    if host.endswith("."):
        return "the host name has a trailing dot"
    labels = host.split(".")
    if any(not label for label in labels):
        return "the host name has an empty label ('..' or a leading dot)"
    bad = next((label for label in labels if not _LABEL.match(label)), None)
    if bad is not None:
        return f"label {bad!r} is not letters, digits and inner hyphens (at most 63)"
    if _NUMERIC_LABEL.match(labels[-1]):
        # Resolvers read "127.1" or "0x7f.1" as addresses; only a dotted quad is taken as one.
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"{host!r} is neither a host name nor a dotted-quad IPv4 address"
    return None
