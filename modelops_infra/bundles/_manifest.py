"""The bundle's ``manifest.json`` (pure parsing and validation).

A manifest names the bundle, its version and the entry function::

    {"name": "sir-model", "version": "1.2.0", "entrypoint": "simulate:run",
     "description": "optional free text"}

Optional run settings:

* ``"isolation"``: ``"process"`` runs tasks in a warm child process even without
  an environment file; ``"fresh"`` starts a new process for every task (for
  models with native global state). Default: in the worker process, or in a
  warm child process when the bundle declares an environment.
* ``"timeout"``: seconds a task may run before its process is killed (tasks run
  in a process then; ``SimTask.timeout`` overrides it).
* ``"wheels"``: ``true`` makes ``mops bundle push`` ship the environment's wheels
  through the registry (as ``--wheels`` does).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["ISOLATION_MODES", "MANIFEST_FILE", "BundleManifest", "parse_entrypoint", "parse_manifest"]

MANIFEST_FILE = "manifest.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_ENTRYPOINT = re.compile(rf"^({_IDENT}(?:\.{_IDENT})*):({_IDENT})$")
_KNOWN = {"name", "version", "entrypoint", "description", "isolation", "timeout", "wheels"}
ISOLATION_MODES = ("process", "fresh")


@dataclass(frozen=True)
class BundleManifest:
    name: str
    version: str
    entrypoint: str
    description: str | None = None
    isolation: str | None = None
    timeout: float | None = None
    wheels: bool = False

    @property
    def module(self) -> str:
        return self.entrypoint.split(":", 1)[0]

    @property
    def function(self) -> str:
        return self.entrypoint.split(":", 1)[1]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version, "entrypoint": self.entrypoint}
        if self.description is not None:
            out["description"] = self.description
        if self.isolation is not None:
            out["isolation"] = self.isolation
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.wheels:
            out["wheels"] = True
        return out


def parse_entrypoint(value: str) -> tuple[str, str] | None:
    """``"pkg.mod:fn"`` -> ``("pkg.mod", "fn")``, or ``None`` if malformed."""
    match = _ENTRYPOINT.match(value)
    return (match.group(1), match.group(2)) if match else None


def parse_manifest(raw: bytes, *, source: str = MANIFEST_FILE) -> tuple[BundleManifest | None, list[str]]:
    """Parse manifest bytes. Returns the manifest (or ``None``) and *every* problem found.

    Each problem names ``source`` and the field at fault.
    """
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, [f"{source}: not valid JSON ({exc})"]
    if not isinstance(data, dict):
        return None, [f"{source}: top level must be a JSON object, got {type(data).__name__}"]
    problems: list[str] = []

    def field(key: str, pattern: re.Pattern[str], form: str) -> str | None:
        value = data.get(key)
        if value is None:
            problems.append(f"{source}: missing required field '{key}'")
            return None
        if not isinstance(value, str) or not pattern.match(value):
            problems.append(f"{source}: field '{key}' must be {form}, got {value!r}")
            return None
        return value

    name = field("name", _NAME, "a name of letters, digits, '.', '_' or '-'")
    version = field("version", _VERSION, "a version string such as '1.0.0'")
    entrypoint = field("entrypoint", _ENTRYPOINT, "'module:function', e.g. 'simulate:run'")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f"{source}: field 'description' must be a string, got {type(description).__name__}")
    isolation = data.get("isolation")
    if isolation is not None and isolation not in ISOLATION_MODES:
        problems.append(f"{source}: field 'isolation' must be one of {', '.join(map(repr, ISOLATION_MODES))},"
                        f" got {isolation!r}")
    timeout = data.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not 0 < timeout < float("inf")):
        problems.append(f"{source}: field 'timeout' must be a positive number of seconds, got {timeout!r}")
    wheels = data.get("wheels", False)
    if not isinstance(wheels, bool):
        problems.append(f"{source}: field 'wheels' must be true or false, got {wheels!r}")
    for key in sorted(set(data) - _KNOWN):
        problems.append(f"{source}: unknown field '{key}' (allowed: {', '.join(sorted(_KNOWN))})")
    if problems or name is None or version is None or entrypoint is None:
        return None, problems
    return BundleManifest(name, version, entrypoint, description, isolation, timeout, wheels), []
