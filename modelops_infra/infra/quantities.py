"""Kubernetes resource quantities (``4Gi``, ``512Mi``, ``500m``), parsed purely.

Configuration carries memory and CPU as Kubernetes quantity strings. The
program needs them as numbers too: Dask's ``--memory-limit`` and
``--nthreads`` are derived from the container's resources. Parsing is strict,
so that a typo fails ``pulumi preview`` with the offending key named instead of
surfacing later as a rejected Deployment.

>>> parse_memory("4Gi", key="modelops:workspace.memory")
4294967296
>>> parse_cpu("500m", key="modelops:workspace.cpu")
500
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from modelops_infra.errors import ConfigurationError

__all__ = ["parse_cpu", "parse_memory"]

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
