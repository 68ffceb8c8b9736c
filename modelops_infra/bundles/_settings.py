"""Typed bundle settings, read from the environment at call time (never at import)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modelops_infra.bundles._host import RegistryHost
from modelops_infra.errors import ConfigurationError

__all__ = ["DEFAULT_REPOSITORY", "BundleSettings", "parse_bool", "parse_registry", "parse_seconds", "parse_size"]

DEFAULT_REPOSITORY = "modelops/bundles"
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
          "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}


def parse_bool(value: str, *, key: str) -> bool:
    low = value.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigurationError(f"{key}={value!r} is not a boolean", hint="use true or false")


def parse_size(value: str, *, key: str) -> int:
    """``"500M"``, ``"2GiB"``, ``"1048576"`` -> bytes; the error names ``key``."""
    match = _SIZE.match(value)
    if not match:
        raise ConfigurationError(f"{key}={value!r} is not a size", hint="use bytes, or a suffix such as 500M or 2GiB")
    unit = (match.group(2) or "").lower().removesuffix("b")
    return int(match.group(1)) * _UNITS[unit]


def parse_seconds(value: str, *, key: str) -> float:
    """``"7.5"`` -> 7.5 seconds; zero, negative, ``nan`` and ``inf`` are refused naming ``key``.

    A timeout of 0 would fail every request and ``inf`` would wait forever, so neither is a setting.
    """
    try:
        seconds = float(value)
    except ValueError as exc:
        raise ConfigurationError(f"{key}={value!r} is not a number of seconds") from exc
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{key}={value!r} must be a positive, finite number of seconds",
                                 hint="for example 30")
    return seconds


def parse_registry(value: str, *, key: str) -> str:
    """Validate a registry ``host[:port]`` read from ``key``; the error names ``key`` (see :class:`RegistryHost`)."""
    return str(RegistryHost.parse(value, source=key))


@dataclass(frozen=True)
class BundleSettings:
    """Where bundles come from and where they are cached.

    ``registry`` is ``None`` when ``MODELOPS_BUNDLE_REGISTRY`` is unset; callers
    that need one raise with a hint (see :func:`modelops_infra.client.get_registry_url`).
    """

    registry: str | None = None
    repository: str = DEFAULT_REPOSITORY
    insecure: bool | None = None
    cache_dir: Path = Path.home() / ".cache" / "modelops" / "bundles"
    cache_max_bytes: int | None = None
    max_extract_bytes: int = 8 * 1024**3
    timeout: float = 30.0
    #: child processes per worker for bundles that run isolated (at least the worker's threads)
    max_processes: int | None = None
    #: seconds an idle child process is kept warm
    process_idle_timeout: float = 300.0

    @property
    def memo_dir(self) -> Path:
        """Where :func:`pack_bundle` remembers large-file digests (beside the bundle cache)."""
        return self.cache_dir.parent / "pack-digests"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BundleSettings:
        env = os.environ if environ is None else environ
        insecure = env.get("MODELOPS_BUNDLE_INSECURE")
        max_bytes = env.get("MODELOPS_BUNDLE_CACHE_MAX_BYTES")
        extract = env.get("MODELOPS_BUNDLE_MAX_EXTRACT_BYTES")
        timeout = env.get("MODELOPS_BUNDLE_TIMEOUT")
        timeout_value = parse_seconds(timeout, key="MODELOPS_BUNDLE_TIMEOUT") if timeout else cls.timeout
        registry = env.get("MODELOPS_BUNDLE_REGISTRY")
        return cls(
            registry=parse_registry(registry, key="MODELOPS_BUNDLE_REGISTRY") if registry else None,
            repository=env.get("MODELOPS_BUNDLE_REPOSITORY") or DEFAULT_REPOSITORY,
            insecure=parse_bool(insecure, key="MODELOPS_BUNDLE_INSECURE") if insecure else None,
            cache_dir=Path(env["MODELOPS_BUNDLE_CACHE_DIR"]).expanduser()
            if env.get("MODELOPS_BUNDLE_CACHE_DIR")
            else Path(env.get("HOME", str(Path.home()))) / ".cache" / "modelops" / "bundles",
            cache_max_bytes=parse_size(max_bytes, key="MODELOPS_BUNDLE_CACHE_MAX_BYTES") if max_bytes else None,
            max_extract_bytes=parse_size(extract, key="MODELOPS_BUNDLE_MAX_EXTRACT_BYTES") if extract else cls.max_extract_bytes,
            timeout=timeout_value,
            max_processes=_positive_int(env.get("MODELOPS_BUNDLE_MAX_PROCESSES"), "MODELOPS_BUNDLE_MAX_PROCESSES"),
            process_idle_timeout=_positive_float(env.get("MODELOPS_BUNDLE_PROCESS_IDLE_TIMEOUT"),
                                                 "MODELOPS_BUNDLE_PROCESS_IDLE_TIMEOUT", cls.process_idle_timeout),
        )


def _positive_int(value: str | None, key: str) -> int | None:
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigurationError(f"{key}={value!r} is not a positive whole number")
    return number


def _positive_float(value: str | None, key: str, default: float) -> float:
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not 0 < number < float("inf"):
        raise ConfigurationError(f"{key}={value!r} is not a positive number of seconds")
    return number
