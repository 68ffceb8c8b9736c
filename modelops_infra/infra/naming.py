"""Pure naming rules for the physical names Azure and Kubernetes insist on.

Azure Container Registry names are global, 5-50 lowercase alphanumerics; role
assignment names must be GUIDs; Kubernetes object names are DNS labels. These
functions turn project, stack and component names into valid ones, and do it
deterministically, so the same inputs always give the same names (no churn on
``pulumi up``).
"""

from __future__ import annotations

import re
import uuid

from modelops_infra.errors import ConfigurationError

__all__ = [
    "ACR_NAME_MAX",
    "ACR_NAME_MIN",
    "ROLE_ASSIGNMENT_NAMESPACE",
    "aks_dns_prefix",
    "dns_label",
    "registry_name",
    "role_assignment_name",
]

ACR_NAME_MIN = 5
ACR_NAME_MAX = 50

#: Fixed namespace for uuid5 role-assignment names. Never change it: doing so
#: renames (and so replaces) every role assignment already deployed.
ROLE_ASSIGNMENT_NAMESPACE = uuid.UUID("6f0c3f4e-2d55-5b8e-9d3a-6d6f64656c6f")

_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


def registry_name(project: str, stack: str, suffix: str) -> str:
    """Return an ACR name: ``<project><stack><suffix>``, lowercase alphanumerics only.

    ``suffix`` is a stable random string (kept in state) that makes the name
    globally unique-ish. The project/stack part is truncated so the whole name
    fits in 50 characters; the suffix is never truncated. Raises
    :class:`ConfigurationError` if the result cannot reach 5 characters.

    >>> registry_name("modelops", "dev", "a1b2c3")
    'modelopsdeva1b2c3'
    """
    clean_suffix = _NOT_ALNUM.sub("", suffix.lower())
    if len(clean_suffix) >= ACR_NAME_MAX:
        raise ConfigurationError(f"registry name suffix {suffix!r} is too long", key="suffix")
    stem = _NOT_ALNUM.sub("", f"{project}{stack}".lower())[: ACR_NAME_MAX - len(clean_suffix)]
    name = f"{stem}{clean_suffix}"
    if len(name) < ACR_NAME_MIN:
        raise ConfigurationError(
            f"cannot derive a registry name of at least {ACR_NAME_MIN} alphanumerics "
            f"from project {project!r}, stack {stack!r} and suffix {suffix!r}",
            key="registry name",
        )
    return name


def role_assignment_name(scope: str, principal_id: str, role_definition_id: str) -> str:
    """Return a deterministic GUID naming one (scope, principal, role) grant.

    Azure requires role assignment names to be GUIDs and refuses a second
    assignment of the same role to the same principal at the same scope; a
    name derived from exactly that triple makes re-runs idempotent.
    """
    key = "|".join((scope.lower(), principal_id.lower(), role_definition_id.lower()))
    return str(uuid.uuid5(ROLE_ASSIGNMENT_NAMESPACE, key))


def dns_label(*parts: str, max_length: int = 63) -> str:
    """Join ``parts`` into a Kubernetes DNS-1123 label (lowercase, hyphens, <= 63).

    >>> dns_label("Dask", "scheduler")
    'dask-scheduler'
    """
    joined = "-".join(p for p in parts if p)
    label = _NOT_DNS.sub("-", joined.lower()).strip("-")
    label = re.sub(r"-{2,}", "-", label)[:max_length].rstrip("-")
    if not label or not label[0].isalpha():
        raise ConfigurationError(
            f"cannot derive a DNS label from {parts!r}",
            hint="names must start with a letter",
            key="name",
        )
    return label


def aks_dns_prefix(project: str, stack: str) -> str:
    """Return an AKS DNS prefix (1-54 chars of letters, digits and hyphens)."""
    return dns_label(project, stack, max_length=54)
