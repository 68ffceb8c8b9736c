"""A bundle's Python environment: which file declares it, its parsed content and its key (pure).

A bundle may carry **one** of these environment files at its root, looked for
in this order of precedence (the order used in messages and docs):

1. ``pylock.toml`` -- a PEP 751 lock;
2. ``uv.lock`` together with its ``pyproject.toml`` -- a uv project lock;
3. ``requirements.txt`` -- pip syntax, ``--hash`` options allowed.

A bundle that carries two of them is refused: which one wins would otherwise be
a guess. ``pyproject.toml`` alone is not an environment file (it may just
describe the bundle's own package).

The **environment key** is ``sha256:`` of the canonical JSON of

* the normalised requirement text (for ``requirements.txt``: one sorted line
  per requirement, names canonicalised, specifiers and hashes sorted; for a lock
  file: its text with line endings and trailing blanks normalised);
* the Python implementation and ``major.minor`` version;
* the platform (``sysconfig.get_platform()``, e.g. ``linux-x86_64``);
* the install options that change the result: the source of packages
  (``index`` or the digests of the wheels shipped in the bundle).

The index URL is deliberately not part of the key: it may carry credentials,
and a pinned requirement set names the same distributions on any index. The
same requirements give the same key on every host with the same Python.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import sysconfig
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from modelops_infra.errors import ConfigurationError

__all__ = [
    "ENVIRONMENT_FILES",
    "PYLOCK_FILE",
    "REQUIREMENTS_FILE",
    "UV_LOCK_FILE",
    "EnvironmentSpec",
    "PythonTarget",
    "environment_key",
    "find_environment",
    "parse_pylock",
    "parse_requirements",
    "parse_uv_lock",
]

REQUIREMENTS_FILE = "requirements.txt"
PYLOCK_FILE = "pylock.toml"
UV_LOCK_FILE = "uv.lock"
PYPROJECT_FILE = "pyproject.toml"
#: Precedence order (see the module docstring). A bundle may carry only one.
ENVIRONMENT_FILES = (PYLOCK_FILE, UV_LOCK_FILE, REQUIREMENTS_FILE)
_HASH = re.compile(r"^--hash=([A-Za-z0-9]+):([0-9A-Fa-f]+)$")
_HASH_ALGORITHMS = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class PythonTarget:
    """The interpreter an environment is built for: implementation, ``major.minor``, platform."""

    implementation: str
    version: str
    platform: str

    @classmethod
    def current(cls) -> PythonTarget:
        """The running interpreter (on a worker: the worker's own Python, fixed by its image)."""
        return cls(sys.implementation.name, f"{sys.version_info.major}.{sys.version_info.minor}",
                   sysconfig.get_platform())

    @classmethod
    def of(cls, python: str | None = None, platform: str | None = None) -> PythonTarget:
        """This interpreter, with ``python`` (``major.minor``) and ``platform`` (``sysconfig.get_platform()``
        of the workers, e.g. ``linux-x86_64``) overridden when given: the key a worker of that target computes.

        Raises :class:`ConfigurationError` naming ``--python`` or ``--platform`` for a malformed value.
        """
        current = cls.current()
        if python is not None and not re.fullmatch(r"[0-9]+\.[0-9]+", python):
            raise ConfigurationError(f"--python {python!r} is not a major.minor version such as 3.11")
        if platform is not None and not re.fullmatch(r"[a-z][a-z0-9_.-]*", platform):
            raise ConfigurationError(f"--platform {platform!r} is not a platform such as linux-x86_64",
                                     hint="the workers' `python -c 'import sysconfig; print(sysconfig.get_platform())'`")
        return cls(current.implementation, python or current.version, platform or current.platform)

    def __str__(self) -> str:
        name = {"cpython": "CPython", "pypy": "PyPy"}.get(self.implementation, self.implementation)
        return f"{name} {self.version} on {self.platform}"


@dataclass(frozen=True)
class EnvironmentSpec:
    """A parsed environment file.

    ``text`` is what gets installed and hashed: normalised requirement lines for
    ``requirements.txt``, the normalised lock text otherwise. ``pins`` lists
    ``name==version`` (or the requirement as written) for display; ``unpinned``
    names every requirement not pinned to one version (a warning, not an error).
    """

    kind: str                      # "requirements" | "pylock" | "uv-lock"
    source: str                    # the file name inside the bundle
    text: str
    pins: tuple[str, ...] = ()
    unpinned: tuple[str, ...] = ()
    requires_python: str | None = None
    project_text: str | None = field(default=None, compare=False)  # uv-lock: pyproject.toml, for `uv export`

    @property
    def warnings(self) -> list[str]:
        return [f"{self.source}: {req!r} is not pinned to one version (use ==), so the environment is not"
                " reproducible" for req in self.unpinned]


def _is_pinned(req: Requirement, hashes: Sequence[str]) -> bool:
    if req.url:
        return bool(hashes) or "#sha256=" in req.url
    specs = list(req.specifier)
    return len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join ``\\``-continued lines and strip comments; yields (first line number, text)."""
    out: list[tuple[int, str]] = []
    buffer, start = "", 0
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = re.split(r"(^|\s)#", raw, maxsplit=1)[0].rstrip()
        if not buffer:
            start = lineno
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        if buffer.strip():
            out.append((start, buffer.strip()))
        buffer = ""
    if buffer.strip():
        out.append((start, buffer.strip()))
    return out


def parse_requirements(text: str, *, source: str = REQUIREMENTS_FILE
                       ) -> tuple[EnvironmentSpec | None, list[Requirement], list[str]]:
    """Parse pip-syntax requirements. Returns the spec (``None`` if any line is bad), the requirements
    and every problem, each naming ``source:line``.

    Allowed: PEP 508 requirements, markers, extras, direct URLs, ``--hash=algo:hex``
    after a requirement, ``\\`` continuations and comments. Refused: every other
    option (``-r``, ``-e``, ``--index-url``, ``--find-links``...), because where
    packages come from is the worker's setting, not the bundle's.
    """
    reqs: list[Requirement] = []
    lines: list[str] = []
    pins: list[str] = []
    unpinned: list[str] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in _logical_lines(text):
        where = f"{source}:{lineno}"
        words = line.split()
        hashes: list[str] = []
        rest: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            if word == "--hash" and i + 1 < len(words):
                word = f"--hash={words[i + 1]}"
                i += 1
            match = _HASH.match(word)
            if match and match.group(1).lower() not in _HASH_ALGORITHMS:
                problems.append(f"{where}: hash algorithm {match.group(1)!r} is not accepted (use one of"
                                f" {', '.join(_HASH_ALGORITHMS)})")
                break
            if match:
                hashes.append(f"{match.group(1).lower()}:{match.group(2).lower()}")
            elif word.startswith("--hash"):
                problems.append(f"{where}: {word!r} is not --hash=<algorithm>:<hex digest>")
                break
            elif word.startswith("-"):
                rest = []
                problems.append(
                    f"{where}: option {word.split('=')[0]!r} is not allowed in a bundle (only --hash is; where"
                    " packages come from is the worker's setting, MODELOPS_BUNDLE_INDEX_URL)")
                break
            else:
                rest.append(word)
            i += 1
        else:
            if not rest:
                problems.append(f"{where}: --hash without a requirement")
                continue
            body = " ".join(rest)
            try:
                req = Requirement(body)
            except InvalidRequirement as exc:
                problems.append(f"{where}: invalid requirement {body!r} ({exc})")
                continue
            name = canonicalize_name(req.name)
            if req.marker is None and name in seen:
                problems.append(f"{where}: {req.name!r} is already required on line {seen[name]}")
                continue
            if req.marker is None:
                seen[name] = lineno
            reqs.append(req)
            req.name = name
            req.extras = {canonicalize_name(extra) for extra in req.extras}
            normal = str(req) + "".join(f" --hash={h}" for h in sorted(set(hashes)))
            lines.append(normal)
            pins.append(str(req))
            if not _is_pinned(req, hashes):
                unpinned.append(str(req))
    if problems:
        return None, reqs, problems
    spec = EnvironmentSpec("requirements", source, "".join(f"{line}\n" for line in sorted(lines)),
                           tuple(sorted(pins)), tuple(unpinned))
    return spec, reqs, []


def _normal_text(text: str) -> str:
    return "".join(line.rstrip() + "\n" for line in text.strip().splitlines())


def _toml(text: str, source: str, problems: list[str]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{source}: not valid TOML ({exc})")
        return None


def parse_pylock(text: str, *, source: str = PYLOCK_FILE) -> tuple[EnvironmentSpec | None, list[str]]:
    """Parse a PEP 751 ``pylock.toml``: ``lock-version`` and ``[[packages]]`` with ``name`` and ``version``."""
    problems: list[str] = []
    data = _toml(text, source, problems)
    if data is None:
        return None, problems
    if not isinstance(data.get("lock-version"), str):
        problems.append(f"{source}: missing 'lock-version' (PEP 751)")
    packages = data.get("packages")
    if not isinstance(packages, list) or not packages:
        problems.append(f"{source}: 'packages' must be a non-empty array of tables")
        packages = []
    pins: list[str] = []
    for i, pkg in enumerate(packages):
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            problems.append(f"{source}: packages[{i}] has no 'name'")
            continue
        version = pkg.get("version")
        if version is not None and not isinstance(version, str):
            problems.append(f"{source}: packages[{i}] ({pkg['name']}): 'version' must be a string")
            continue
        pin = f"{canonicalize_name(pkg['name'])}=={version}" if version else str(pkg["name"])
        marker = pkg.get("marker")
        pins.append(f"{pin} ; {marker}" if isinstance(marker, str) and marker.strip() else pin)
    requires_python = data.get("requires-python")
    if requires_python is not None and not isinstance(requires_python, str):
        problems.append(f"{source}: 'requires-python' must be a string")
        requires_python = None
    if problems:
        return None, problems
    return EnvironmentSpec("pylock", source, _normal_text(text), tuple(sorted(pins)), (), requires_python), []


def parse_uv_lock(text: str, project_text: str | None, *, source: str = UV_LOCK_FILE
                  ) -> tuple[EnvironmentSpec | None, list[str]]:
    """Parse a ``uv.lock`` (``version`` and ``[[package]]``) and check its ``pyproject.toml`` is present."""
    problems: list[str] = []
    if project_text is None:
        problems.append(f"{source}: a uv.lock needs its {PYPROJECT_FILE} beside it in the bundle")
    data = _toml(text, source, problems)
    if project_text is not None:
        _toml(project_text, PYPROJECT_FILE if source == UV_LOCK_FILE else source + "/../" + PYPROJECT_FILE, problems)
    if data is None or problems:
        return None, problems
    if not isinstance(data.get("version"), int):
        problems.append(f"{source}: missing lock 'version' (is this a uv.lock?)")
    packages = data.get("package")
    if not isinstance(packages, list):
        problems.append(f"{source}: no [[package]] tables")
        packages = []
    pins = sorted(f"{canonicalize_name(p['name'])}=={p.get('version', '?')}" for p in packages
                  if isinstance(p, dict) and isinstance(p.get("name"), str)
                  and not (isinstance(p.get("source"), dict) and ("editable" in p["source"] or "virtual" in p["source"])))
    requires_python = data.get("requires-python") if isinstance(data.get("requires-python"), str) else None
    if problems:
        return None, problems
    return EnvironmentSpec("uv-lock", source, _normal_text(text), tuple(pins), (), requires_python,
                           project_text=project_text), []


def _read(path: Path, problems: list[str]) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"{path}: not UTF-8 text ({exc})")
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({exc.strerror or exc})")
    return None


def find_environment(root: Path) -> tuple[EnvironmentSpec | None, list[str]]:
    """The environment the bundle at ``root`` declares (``None`` if none), and every problem.

    Reads files only; never installs. Problems name the file (and line).
    """
    present = [name for name in ENVIRONMENT_FILES if (root / name).is_file()]
    if len(present) > 1:
        return None, [f"{root}: carries {' and '.join(present)}; a bundle may declare its environment in only one"
                      f" of {', '.join(ENVIRONMENT_FILES)} (remove the others)"]
    if not present:
        return None, []
    name = present[0]
    path = root / name
    problems: list[str] = []
    text = _read(path, problems)
    if text is None:
        return None, problems
    if name == REQUIREMENTS_FILE:
        spec, _, problems = parse_requirements(text, source=str(path))
    elif name == PYLOCK_FILE:
        spec, problems = parse_pylock(text, source=str(path))
    else:
        project = root / PYPROJECT_FILE
        project_text = _read(project, problems) if project.is_file() else None
        if problems:
            return None, problems
        spec, problems = parse_uv_lock(text, project_text, source=str(path))
    if spec is not None:
        spec = EnvironmentSpec(spec.kind, name, spec.text, spec.pins, spec.unpinned, spec.requires_python,
                               spec.project_text)
    return spec, problems


def environment_key(spec: EnvironmentSpec, target: PythonTarget | None = None,
                    wheels: Sequence[str] = ()) -> str:
    """``sha256:<hex>`` naming the environment ``spec`` gives on ``target`` (pure; see the module docstring).

    ``wheels`` are the digests of the wheels shipped in the bundle, if any: then
    the environment is built offline from exactly those files.
    """
    target = target or PythonTarget.current()
    payload = {
        "format": 1,
        "kind": spec.kind,
        "requirements": spec.text,
        "python": {"implementation": target.implementation, "version": target.version},
        "platform": target.platform,
        "options": {"source": "wheels" if wheels else "index", "wheels": sorted(wheels)},
    }
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return "sha256:" + hashlib.sha256(raw).hexdigest()
