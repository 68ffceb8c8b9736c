"""Bundle references (pure): ``[registry/]repository[:tag|@sha256:<hex>]``."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from modelops_infra.bundles._digest import DIGEST_RE
from modelops_infra.bundles._host import registry_problem
from modelops_infra.errors import ReferenceError_

__all__ = ["Reference", "check_repository", "check_tag"]

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_REPOSITORY_HINT = "repository components are lowercase letters, digits and . _ - separators"


def check_repository(repository: str, *, source: str = "repository") -> str:
    """Return ``repository`` if it is ``component[/component...]``; else raise naming ``source``.

    Used at the edges (``--repository``) and by the registry client before a
    repository goes into a URL path, so ``../x`` never reaches the network.
    """
    if not repository or not all(_COMPONENT.match(p) for p in repository.split("/")):
        raise ReferenceError_(f"{source} {repository!r} is not a repository name", hint=_REPOSITORY_HINT)
    return repository


def check_tag(tag: str, *, source: str = "tag") -> str:
    """Return ``tag`` if it is a valid OCI tag (``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``); else raise naming ``source``."""
    if not _TAG.match(tag):
        raise ReferenceError_(f"{source} {tag!r} is not a tag",
                              hint="tags are up to 128 letters, digits, _ . and -, not starting with . or -")
    return tag


def _looks_like_registry(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost"


@dataclass(frozen=True)
class Reference:
    """A parsed reference. ``registry`` may be ``None`` when the caller supplies it.

    >>> str(Reference.parse("127.0.0.1:5000/modelops/bundles@sha256:" + "0" * 64).with_tag(None))[:31]
    '127.0.0.1:5000/modelops/bundles'
    """

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str, *, default_registry: str | None = None) -> Reference:
        """Parse ``text``; raise :class:`ReferenceError_` naming the part at fault."""
        original = text
        if not text or text != text.strip():
            raise ReferenceError_(f"malformed bundle reference {original!r}: empty or surrounded by whitespace")
        digest = None
        if "@" in text:
            text, digest = text.rsplit("@", 1)
            if not DIGEST_RE.match(digest):
                raise ReferenceError_(
                    f"malformed bundle reference {original!r}: digest {digest!r} is not sha256:<64 hex>"
                )
        tag = None
        last = text.rsplit("/", 1)[-1]
        if ":" in last:
            text, tag = text.rsplit(":", 1)
            if not _TAG.match(tag):
                raise ReferenceError_(f"malformed bundle reference {original!r}: bad tag {tag!r}")
        parts = text.split("/")
        registry = None
        if len(parts) > 1 and _looks_like_registry(parts[0]):
            registry = parts.pop(0)
            problem = registry_problem(registry)
            if problem:
                raise ReferenceError_(
                    f"malformed bundle reference {original!r}: bad registry host {registry!r} ({problem})")
        if not parts or not all(_COMPONENT.match(p) for p in parts):
            raise ReferenceError_(
                f"malformed bundle reference {original!r}: bad repository {'/'.join(parts)!r}",
                hint=_REPOSITORY_HINT,
            )
        return cls(registry=registry or default_registry, repository="/".join(parts), tag=tag, digest=digest)

    @property
    def pinned(self) -> bool:
        return self.digest is not None

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=digest)

    def with_tag(self, tag: str | None) -> Reference:
        return replace(self, tag=tag)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out
