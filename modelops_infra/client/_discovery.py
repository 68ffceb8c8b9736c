"""Registry discovery: where bundles and worker images live for an environment.

Lookup order for :func:`get_registry_url`:

1. ``MODELOPS_BUNDLE_REGISTRY``;
2. ``~/.modelops/bundle-env/<env>.yaml`` (``registry.login_server``), written by ``mops env write``;
3. otherwise :class:`ConfigurationError` naming both places.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from modelops_infra.bundles import RegistryHost
from modelops_infra.errors import ConfigurationError

__all__ = ["BundleEnv", "bundle_env_path", "check_scheduler_address", "get_registry_url", "load_bundle_env",
           "resolve_scheduler", "scheduler_problem", "write_bundle_env", "DEFAULT_SCHEDULER"]

#: Where ``resolve_scheduler`` ends when nothing names a scheduler: a scheduler on this machine.
DEFAULT_SCHEDULER = "tcp://localhost:8786"


def scheduler_problem(address: str) -> str | None:
    """Why ``address`` is not a Dask scheduler address (``[tcp://]host:port``), or ``None`` (pure, no I/O).

    Uses distributed's own address parser, so what passes here is what ``Client`` accepts.
    """
    from distributed.comm import parse_address, parse_host_port
    from distributed.comm.registry import backends

    if not address or address != address.strip() or any(c.isspace() for c in address):
        return "it is empty or contains whitespace"
    try:
        scheme, location = parse_address(address, strict=False)
    except ValueError as exc:
        return str(exc)
    if scheme not in backends:
        return f"unknown protocol {scheme!r} (known: {', '.join(sorted(backends))})"
    if scheme in ("tcp", "tls", "ws", "wss"):
        try:
            _, port = parse_host_port(location)
        except ValueError as exc:
            return str(exc)
        if not 1 <= int(port) <= 65535:
            return f"port {port} is not from 1 to 65535"
    return None


def check_scheduler_address(address: str, *, source: str = "scheduler address") -> str:
    """Return ``address`` if it is a Dask scheduler address; else raise :class:`ConfigurationError` naming ``source``."""
    problem = scheduler_problem(address)
    if problem:
        raise ConfigurationError(f"{source} {address!r} is not a Dask scheduler address: {problem}",
                                 hint="use tcp://host:port, e.g. tcp://127.0.0.1:8786")
    return address


def _home(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOME") or Path.home())


def bundle_env_path(env: str = "dev", *, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if not env or "/" in env or env.startswith("."):
        raise ConfigurationError(f"environment name {env!r} is not a plain name")
    return _home(environ) / ".modelops" / "bundle-env" / f"{env}.yaml"


@dataclass(frozen=True)
class BundleEnv:
    registry: str | None
    scheduler_address: str | None
    path: Path


def load_bundle_env(env: str = "dev", *, environ: Mapping[str, str] | None = None) -> BundleEnv | None:
    """Read ``~/.modelops/bundle-env/<env>.yaml``; ``None`` if absent; error naming the file if malformed."""
    path = bundle_env_path(env, environ=environ)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{path}: cannot be read as YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path}: top level must be a mapping")
    registry = (data.get("registry") or {}).get("login_server") if isinstance(data.get("registry"), dict) else None
    scheduler = (data.get("scheduler") or {}).get("address") if isinstance(data.get("scheduler"), dict) else None
    if registry is not None and not isinstance(registry, str):
        raise ConfigurationError(f"{path}: registry.login_server must be a string")
    if registry:
        registry = str(RegistryHost.parse(registry, source=f"{path}: registry.login_server"))
    if scheduler is not None and not isinstance(scheduler, str):
        raise ConfigurationError(f"{path}: scheduler.address must be a string")
    return BundleEnv(registry, scheduler, path)


def get_registry_url(env: str = "dev", *, environ: Mapping[str, str] | None = None) -> str:
    """The bundle registry's login server for ``env`` (see module docstring for the order)."""
    environ = os.environ if environ is None else environ
    value = environ.get("MODELOPS_BUNDLE_REGISTRY")
    if value:
        return str(RegistryHost.parse(value, source="MODELOPS_BUNDLE_REGISTRY"))
    loaded = load_bundle_env(env, environ=environ)
    if loaded is not None and loaded.registry:
        return loaded.registry
    path = bundle_env_path(env, environ=environ)
    raise ConfigurationError(
        f"no bundle registry for environment {env!r}: MODELOPS_BUNDLE_REGISTRY is unset and {path}"
        f" {'has no registry.login_server' if loaded else 'does not exist'}",
        hint=f"export MODELOPS_BUNDLE_REGISTRY, or run 'mops env write --env {env}' after 'pulumi up'",
    )


def write_bundle_env(env: str, registry: str, scheduler_address: str | None = None, *,
                     environ: Mapping[str, str] | None = None) -> Path:
    """Atomically write ``~/.modelops/bundle-env/<env>.yaml`` with mode 0600. Idempotent.

    Raises :class:`ConfigurationError` (writing nothing) if ``registry`` is not a ``host[:port]``.
    """
    registry = str(RegistryHost.parse(registry, source="registry login server"))
    path = bundle_env_path(env, environ=environ)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data: dict[str, object] = {"registry": {"login_server": registry}}
    if scheduler_address:
        data["scheduler"] = {"address": scheduler_address}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{env}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(data, fh, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def resolve_scheduler(option: str | None, env: str, environ: Mapping[str, str] | None = None) -> str:
    """``--scheduler``, else ``DASK_SCHEDULER``, else the env file's ``scheduler.address``, else the default.

    The address is checked where it came from: a malformed one is a :class:`ConfigurationError`
    naming its source, raised at once, before any connection is tried.
    """
    environ = os.environ if environ is None else environ
    if option:
        return check_scheduler_address(option, source="--scheduler")
    if environ.get("DASK_SCHEDULER"):
        return check_scheduler_address(environ["DASK_SCHEDULER"], source="DASK_SCHEDULER")
    loaded = load_bundle_env(env, environ=environ)
    if loaded is not None and loaded.scheduler_address:
        return check_scheduler_address(loaded.scheduler_address, source=f"{loaded.path}: scheduler.address")
    return DEFAULT_SCHEDULER
