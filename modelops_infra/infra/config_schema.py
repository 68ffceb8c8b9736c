"""How a ``modelops:`` config key is declared, once, and what is derived from that declaration.

A config object is a frozen dataclass. Each of its fields is either a value,
declared with :func:`setting` (the camelCase key, the default, the parser that
carries the type and bounds), or a nested object, declared with :func:`section`::

    @dataclass(frozen=True)
    class LocalConfig:
        workers: int = setting("workers", 2, integer(minimum=1))

From those declarations alone come the reader of ``pulumi.Config``
(:func:`read_top_level`, by the kinds in :func:`top_level_keys`), the parser
and its unknown-key check (:func:`read_section`), and the defaults under their
camelCase keys (:func:`declared_defaults`, which a test holds ``Pulumi.yaml``
to). A parser takes the raw value and the full key (``modelops:local.workers``)
and raises :class:`ConfigurationError` naming that key. A key absent or
``null`` takes its default without being parsed.

Pure, but for :func:`read_top_level`, which imports Pulumi when called.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from modelops_infra.errors import ConfigurationError, ReferenceError_

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "NAMESPACE", "ConfigSource", "Parser", "SecretText", "boolean", "config_key", "declared_defaults", "dns_label",
    "image_reference", "integer", "one_of", "optional_image_reference", "optional_text", "quantity", "read_section",
    "read_top_level", "registry_host", "requirements", "seconds", "secret", "secret_url", "section", "setting",
    "string_list", "text", "top_level_keys",
]

NAMESPACE = "modelops"
#: ``(raw value, full key) -> value``; raises ConfigurationError naming the key.
Parser = Callable[[Any, str], Any]
T = TypeVar("T", bound="DataclassInstance")


class SecretText:
    """A secret config value: compared and hashed by value, never shown by ``repr`` or ``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The value itself; wrap it in ``pulumi.Output.secret`` before it reaches a resource."""
        return self._value

    def __repr__(self) -> str:
        return "SecretText(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretText) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def config_key(*parts: str) -> str:
    """``config_key("aks", "workerPool")`` -> ``"modelops:aks.workerPool"``."""
    return f"{NAMESPACE}:" + ".".join(p for p in parts if p)


# --------------------------------------------------------------------------- declaring


def setting(key: str, default: Any, parse: Parser, *, top_level: bool = False) -> Any:
    """A value field read from ``key`` with ``parse``; ``top_level`` reads the top-level key of that name.

    ``top_level`` is for the secrets: Pulumi can only mark a whole top-level key secret,
    so ``modelops:registryPassword`` sits at the top while its field belongs to a section.
    """
    return dataclasses.field(default=default, metadata={"key": key, "parse": parse, "top_level": top_level})


def section(key: str, cls: type) -> Any:
    """A nested object read from ``key``; its defaults are ``cls()``."""
    return dataclasses.field(default_factory=cls, metadata={"key": key, "section": cls})


# --------------------------------------------------------------------------- deriving


def read_section(cls: type[T], raw: Mapping[str, Any], path: str = "", *, top: Mapping[str, Any] | None = None) -> T:
    """Read ``raw`` (the object at ``path``, e.g. ``"aks.workerPool"``) into ``cls``, validated.

    Unknown keys are errors, so a typo does not fall back to a default. A class
    attribute ``ORDERED = (("min_x", "max_x"), ...)`` requires each pair in order.
    ``top`` is the whole top-level mapping (for ``top_level`` settings).
    """
    top = raw if top is None else top
    known = [f.metadata["key"] for f in dataclasses.fields(cls) if not f.metadata.get("top_level")]
    if not path:
        known += [f.metadata["key"] for f in _top_level_settings(cls)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigurationError(f"unknown configuration key {', '.join(config_key(path, k) for k in unknown)}",
                                 hint=f"known keys here: {', '.join(known)}", key=config_key(path, unknown[0]))
    parsed: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name, at_top = f.metadata["key"], f.metadata.get("top_level", False)
        where = name if at_top else ".".join(p for p in (path, name) if p)
        value = (top if at_top else raw).get(name)
        if "section" in f.metadata:
            parsed[f.name] = read_section(f.metadata["section"], _as_object(value, where), where, top=top)
        elif value is not None:
            parsed[f.name] = f.metadata["parse"](value, config_key(where))
    result = cls(**parsed)
    for low, high in getattr(cls, "ORDERED", ()):
        minimum, maximum = getattr(result, low), getattr(result, high)
        if minimum > maximum:
            low_key, high_key = (config_key(path, _field(cls, name).metadata["key"]) for name in (low, high))
            raise ConfigurationError(f"{low_key} ({minimum}) > {high_key} ({maximum})",
                                     hint="the minimum must not exceed the maximum", key=low_key)
    return result


class ConfigSource(Protocol):
    """The two calls of :class:`pulumi.Config` :func:`read_top_level` uses."""

    def get(self, key: str) -> str | None: ...

    def get_object(self, key: str) -> Any: ...


def read_top_level(cls: type, source: ConfigSource) -> dict[str, Any]:
    """The top-level keys of ``cls`` that ``source`` sets, as :func:`read_section` takes them.

    Objects are read with ``get_object`` (invalid JSON raises ConfigurationError naming
    the key); secrets become :class:`SecretText` (empty counts as unset), and one stored
    in plain text gets a warning to set it with ``--secret``.
    """
    import pulumi

    raw: dict[str, Any] = {}
    for key, kind in top_level_keys(cls):
        if kind == "object":
            try:
                raw[key] = source.get_object(key)
            except (pulumi.ConfigTypeError, ValueError) as exc:  # translate at the seam
                raise ConfigurationError(
                    f"{config_key(key)}: expected a structured object: {exc}", key=config_key(key),
                    hint=f"set nested values with `pulumi config set --path {config_key(key)}.<field> VALUE`",
                ) from exc
        elif kind == "value":
            raw[key] = source.get(key)
        elif value := source.get(key):
            raw[key] = SecretText(value)
            if not pulumi.runtime.is_config_secret(config_key(key)):
                pulumi.log.warn(f"{config_key(key)} is stored in plain text; set it with "
                                f"`pulumi config set --secret {config_key(key)} ...`")
    return {k: v for k, v in raw.items() if v is not None}


def top_level_keys(cls: type) -> list[tuple[str, str]]:
    """``(key, kind)`` of each top-level key of ``cls``: kind ``object``, ``secret`` or ``value``."""
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("top_level")] + list(_top_level_settings(cls))
    return [(f.metadata["key"], "object" if "section" in f.metadata else "secret" if f.metadata["parse"] in SECRET_PARSERS
             else "value") for f in fields]


def declared_defaults(cls: type) -> dict[str, Any]:
    """The defaults of ``cls`` under their camelCase keys, sections nested (``top_level`` settings left out)."""
    instance = cls()
    return {f.metadata["key"]: declared_defaults(f.metadata["section"]) if "section" in f.metadata
            else getattr(instance, f.name) for f in dataclasses.fields(cls) if not f.metadata.get("top_level")}


def _field(cls: type, name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _top_level_settings(cls: type) -> Iterator[dataclasses.Field[Any]]:
    for f in dataclasses.fields(cls):
        if "section" in f.metadata:
            yield from (g for g in _top_level_settings(f.metadata["section"]) if g.metadata.get("top_level"))
        elif f.metadata.get("top_level"):
            yield f


def _as_object(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{config_key(where)}: expected a structured object, got {value!r}",
                                 hint=f"use `pulumi config set --path {config_key(where)}.<field> VALUE`",
                                 key=config_key(where))
    return value


# --------------------------------------------------------------------------- parsers


def text(check: Callable[[str, str], Any] | None = None) -> Parser:
    """A non-empty string; ``check(value, key)`` may validate it further and return it normalized."""

    def parse(value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise ConfigurationError(f"{key}: expected a string, got {value!r}", key=key)
        if not value.strip():
            raise ConfigurationError(f"{key}: must not be empty", key=key)
        checked = check(value, key) if check is not None else None
        return value if checked is None else str(checked)

    return parse


def optional_text(value: Any, key: str) -> str | None:
    """A string where empty means unset (Pulumi.yaml's ``""`` default of ``infraStack``)."""
    if not isinstance(value, str):
        raise ConfigurationError(f"{key}: expected a string, got {value!r}", key=key)
    return value or None


def integer(minimum: int | None = None, maximum: int | None = None) -> Parser:
    """An integer in bounds; ``"3"`` is accepted, because ``pulumi config set --path`` may store numbers as text."""

    def parse(value: Any, key: str) -> int:
        try:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise ValueError(value)
            number = int(value)
        except ValueError as exc:
            raise ConfigurationError(f"{key}: expected an integer, got {value!r}", key=key) from exc
        if minimum is not None and number < minimum:
            raise ConfigurationError(f"{key}: must be >= {minimum}, got {number}", key=key)
        if maximum is not None and number > maximum:
            raise ConfigurationError(f"{key}: must be <= {maximum}, got {number}", key=key)
        return number

    return parse


def seconds(value: Any, key: str) -> float:
    """A positive number of seconds (``"45"`` accepted)."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(value)
        number = float(value)
    except ValueError as exc:
        raise ConfigurationError(f"{key}: expected a number, got {value!r}", key=key) from exc
    if not math.isfinite(number) or number <= 0:
        raise ConfigurationError(f"{key}: must be > 0 seconds (and finite), got {number}", key=key)
    return number


def boolean(value: Any, key: str) -> bool:
    """A YAML boolean, or a string in the one vocabulary of :func:`modelops_infra.bundles.parse_bool`."""
    from modelops_infra.bundles import parse_bool

    if isinstance(value, bool):
        return value
    try:
        if not isinstance(value, str):
            raise ConfigurationError(f"{key}: not a string")
        return parse_bool(value, key=key)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{key}: expected true or false, got {value!r}", key=key) from exc


def quantity(measure: Callable[..., int]) -> Parser:
    """A Kubernetes quantity, kept as written, that ``measure`` (from :mod:`.quantities`) accepts."""

    def check(value: str, key: str) -> None:
        measure(value, key=key)

    return text(check)


def one_of(choices: tuple[str, ...], noun: str) -> Parser:
    def check(value: str, key: str) -> None:
        if value not in choices:
            raise ConfigurationError(f"{key}: unknown {noun} {value!r}; expected one of {', '.join(choices)}", key=key)

    return text(check)


def string_list(value: Any, key: str) -> tuple[str, ...]:
    """A list of arbitrary values, kept as strings (``smokeTest.triggers``)."""
    if not isinstance(value, list):
        raise ConfigurationError(f"{key}: expected a list, got {value!r}", key=key)
    return tuple(str(v) for v in value)


def requirements(value: Any, key: str) -> tuple[str, ...]:
    """A list of non-empty requirement strings (``workspace.extraPackages``)."""
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
        raise ConfigurationError(f"{key}: expected a list of requirement strings, got {value!r}", key=key)
    return tuple(value)


def secret(value: Any, key: str) -> SecretText:
    """A secret string; its value is never quoted, even when it has the wrong type."""
    if isinstance(value, str):
        value = SecretText(value)
    if not isinstance(value, SecretText):
        raise ConfigurationError(f"{key}: expected a string", key=key)
    if not value.reveal().strip():
        raise ConfigurationError(f"{key}: must not be empty", key=key)
    return value


def secret_url(value: Any, key: str) -> SecretText:
    """A secret http(s) URL with a host (it may carry credentials); no error quotes any of it."""
    from urllib.parse import urlsplit

    text = secret(value, key)
    try:
        parts = urlsplit(text.reveal().strip())
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed port or IPv6 literal
        valid = False
    if not valid:
        raise ConfigurationError(f"{key}: expected an http:// or https:// URL with a host (the value is secret and "
                                 "not shown)", hint="e.g. https://USER:TOKEN@index.example.org/simple", key=key)
    return text


#: The parsers whose keys are secret (``pulumi config set --secret``), for :func:`top_level_keys`.
SECRET_PARSERS = frozenset({secret, secret_url})


def _dns_label(value: str, key: str) -> None:
    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", value):
        raise ConfigurationError(f"{key}: {value!r} is not a valid Kubernetes name",
                                 hint="use lowercase letters, digits and '-', starting with a letter", key=key)


def _image_reference(value: str, key: str) -> None:
    from modelops_infra.bundles._reference import Reference

    try:
        ref = Reference.parse(value)
    except ReferenceError_ as exc:
        raise ConfigurationError(f"{key}: {exc.message}", key=key) from exc
    if ref.registry is None:
        raise ConfigurationError(
            f"{key}: {value!r} names no registry", key=key,
            hint="write registry/repository[:tag|@sha256:...], e.g. docker.io/library/python:3.11-slim")


def _registry_host(value: str, key: str) -> str:
    """``host[:port]`` through the one registry-host parser (:class:`RegistryHost`), normalized."""
    from modelops_infra.bundles._host import RegistryHost

    try:
        return str(RegistryHost.parse(value, source=f"{key}:"))
    except ConfigurationError as exc:
        raise ConfigurationError(exc.message, hint="give host[:port] only, without a scheme, user or path "
                                                   "(e.g. registry.example.com:5000)", key=key) from exc


dns_label = text(_dns_label)
image_reference = text(_image_reference)


def optional_image_reference(value: Any, key: str) -> str | None:
    """An image reference as :data:`image_reference`, where empty means unset."""
    text_value = optional_text(value, key)
    return None if text_value is None else image_reference(text_value, key)
registry_host = text(_registry_host)
