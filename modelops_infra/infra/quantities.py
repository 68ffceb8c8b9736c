"""Kubernetes resource quantities (``4Gi``, ``512Mi``, ``500m``), parsed purely.

Configuration carries memory and CPU as Kubernetes quantity strings. The
program needs them as numbers too: Dask's ``--memory-limit`` and
``--nthreads`` are derived from the container's resources, and the workers'
bundle cache cap from the cache volume's size (:func:`bundle_cache_cap`).
Parsing is strict, so that a typo fails ``pulumi preview`` with the offending
key named instead of surfacing later as a rejected Deployment.

>>> parse_memory("4Gi", key="modelops:workspace.memory")
4294967296
>>> parse_cpu("500m", key="modelops:workspace.cpu")
500
>>> bundle_cache_cap("10Gi", key="modelops:workspace.cacheSize") == 8 * 2**30
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from modelops_infra.errors import ConfigurationError

__all__ = [
    "CACHE_CAP_MINIMUM",
    "CACHE_HEADROOM_FLOOR",
    "CACHE_HEADROOM_PERCENT",
    "CACHE_SIZE_MINIMUM",
    "WorkerSizes",
    "bundle_cache_cap",
    "parse_cpu",
    "parse_memory",
    "worker_sizes",
]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>[A-Za-z]*)$")


def _split(value: object, key: str, what: str) -> tuple[Decimal, str]:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigurationError(
            f"{key}: expected a {what} quantity, got {value!r}",
            hint="use a Kubernetes quantity string such as '4Gi' or '500m'",
            key=key,
        )
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise ConfigurationError(
            f"{key}: malformed {what} quantity {text!r}",
            hint="use a Kubernetes quantity string such as '4Gi' or '500m'",
            key=key,
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ConfigurationError(f"{key}: malformed {what} quantity {text!r}", key=key) from exc
    return number, match["suffix"]


def parse_memory(value: object, *, key: str) -> int:
    """Return the number of bytes in a memory quantity such as ``4Gi`` or ``512M``.

    Accepts a bare byte count, the binary suffixes ``Ki`` to ``Ei`` and the
    decimal suffixes ``k`` to ``E``. Raises :class:`ConfigurationError` naming
    ``key`` for anything else, including zero and fractional bytes.
    """
    number, suffix = _split(value, key, "memory")
    if suffix and suffix not in _BINARY and suffix not in _DECIMAL:
        raise ConfigurationError(
            f"{key}: malformed memory quantity {value!r} (unknown suffix {suffix!r})",
            hint="memory suffixes are Ki, Mi, Gi, Ti (binary) or k, M, G, T (decimal)",
            key=key,
        )
    scale = _BINARY.get(suffix) or _DECIMAL.get(suffix) or 1
    total = number * scale
    if total != total.to_integral_value() or total <= 0:
        raise ConfigurationError(
            f"{key}: memory quantity {value!r} must be a positive whole number of bytes",
            key=key,
        )
    return int(total)


def parse_cpu(value: object, *, key: str) -> int:
    """Return the millicores in a CPU quantity such as ``2``, ``1.5`` or ``500m``.

    Raises :class:`ConfigurationError` naming ``key`` when the quantity is
    malformed, not positive, or finer than one millicore.
    """
    number, suffix = _split(value, key, "CPU")
    if suffix not in ("", "m"):
        raise ConfigurationError(
            f"{key}: malformed CPU quantity {value!r} (unknown suffix {suffix!r})",
            hint="CPU is given in cores ('2', '1.5') or millicores ('500m')",
            key=key,
        )
    millis = number if suffix == "m" else number * 1000
    if millis != millis.to_integral_value() or millis <= 0:
        raise ConfigurationError(
            f"{key}: CPU quantity {value!r} must be a positive whole number of millicores",
            key=key,
        )
    return int(millis)


# The bundle cache on a worker is an emptyDir with a sizeLimit; the kubelet evicts the
# whole pod once the volume outgrows it. The LRU cap (MODELOPS_BUNDLE_CACHE_MAX_BYTES)
# must therefore sit below the limit by at least what can land on the volume before
# the cache evicts: BundleCache evicts only *after* a download or an environment build,
# and that item is written into staging/ on the same volume first (a code layer's blob
# and its extracted tree coexist briefly; an environment is built there with its uv cache).
# One bundle or environment in flight is the headroom: 1 GiB covers the typical bundle
# and a numpy-sized environment, and 20 % scales it for large caches, where large
# bundles and environments (several GB for a GPU stack) are what the cache is sized for.
# Below a 256 MiB cap an LRU holding bundles *and* their environments only thrashes.
CACHE_HEADROOM_FLOOR = 2**30
CACHE_HEADROOM_PERCENT = 20
CACHE_CAP_MINIMUM = 256 * 2**20
#: The smallest cache volume that leaves CACHE_CAP_MINIMUM after the headroom (1280Mi).
CACHE_SIZE_MINIMUM = CACHE_CAP_MINIMUM + CACHE_HEADROOM_FLOOR


def bundle_cache_cap(value: object, *, key: str) -> int:
    """Return ``MODELOPS_BUNDLE_CACHE_MAX_BYTES`` for a bundle cache volume of ``value``.

    ``value`` is the volume's ``sizeLimit`` quantity (``"10Gi"``) or bytes. The cap
    is the size minus a headroom of ``max(1 GiB, 20 % of the size)`` (rounded up to a
    byte), leaving room for one bundle or environment in flight:

    ====== ===== ========
    size   cap   headroom
    ====== ===== ========
    1280Mi 256Mi 1Gi
    2Gi    1Gi   1Gi
    5Gi    4Gi   1Gi
    10Gi   8Gi   2Gi
    ====== ===== ========

    Pure. Raises :class:`ConfigurationError` naming ``key`` when ``value`` is not a
    memory quantity, or is smaller than :data:`CACHE_SIZE_MINIMUM` (``1280Mi``), so
    the cap would fall below :data:`CACHE_CAP_MINIMUM`.
    """
    size = parse_memory(value, key=key)
    headroom = max(CACHE_HEADROOM_FLOOR, -(-size * CACHE_HEADROOM_PERCENT // 100))
    cap = size - headroom
    if cap < CACHE_CAP_MINIMUM:
        raise ConfigurationError(
            f"{key}: {value!r} is too small for the bundle cache: its LRU cap (the size minus"
            f" max(1Gi, {CACHE_HEADROOM_PERCENT}%) of headroom for one bundle in flight) would be"
            f" below {CACHE_CAP_MINIMUM // 2**20}Mi",
            hint=f"use at least {CACHE_SIZE_MINIMUM // 2**20}Mi",
            key=key,
        )
    return cap


@dataclass(frozen=True)
class WorkerSizes:
    """The numbers a Dask worker is sized by, derived from its container's quantities."""

    #: ``--memory-limit``: the container's memory.
    memory_bytes: int
    #: ``--nthreads``: ``threads`` if given, else the whole cores of ``cpu`` (at least 1).
    nthreads: int
    #: ``MODELOPS_BUNDLE_CACHE_MAX_BYTES``: see :func:`bundle_cache_cap`.
    cache_max_bytes: int


def worker_sizes(*, cpu: object, memory: object, cache_size: object, threads: int | None,
                 key: Callable[[str], str]) -> WorkerSizes:
    """The one rule sizing a worker from ``cpu``, ``memory``, ``cache_size`` and ``threads`` (pure).

    ``key(field)`` names a field in errors (a config key, or a component's argument).
    Raises :class:`ConfigurationError` for a malformed quantity, a cache too small
    for a cap, or ``threads`` below 1.

    >>> worker_sizes(cpu="2500m", memory="4Gi", cache_size="2Gi", threads=None, key=str).nthreads
    2
    """
    if threads is not None and threads < 1:
        raise ConfigurationError(f"{key('threads')}: must be >= 1, got {threads}", key=key("threads"))
    cpu_millis = parse_cpu(cpu, key=key("cpu"))
    return WorkerSizes(
        memory_bytes=parse_memory(memory, key=key("memory")),
        nthreads=threads if threads is not None else max(1, cpu_millis // 1000),
        cache_max_bytes=bundle_cache_cap(cache_size, key=key("cache_size")),
    )
