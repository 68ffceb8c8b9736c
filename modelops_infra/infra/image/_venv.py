"""The worker install as a relocatable virtual environment, built on this host with uv, in two parts.

The image holds the venv as two layers: its dependencies (every distribution
but modelops-infra, and the venv's own files), which change rarely, and the
worker install (modelops-infra's package, ``.dist-info`` and ``bin/mops``),
which changes with every source edit. Steps (each a subprocess, allow-listed
environment, as bundle environments are built):

1. :func:`build_wheel`: copy the checkout's package files (``pyproject.toml``,
   ``README.md``, ``modelops_infra/``) into the work directory, because building
   a project writes ``build/`` and ``*.egg-info`` beside its sources, and
   ``uv build --wheel`` that copy;
2. :func:`resolve_dependencies`: ``uv pip compile --only-binary :all:
   --python-platform x86_64-manylinux_2_28 --python-version X.Y`` of the wheel
   with its extras, ``uv`` and the extra packages: the pins, less the project.
   They key the dependencies layer (see :mod:`._layercache`);
3. :func:`build_dependencies` (skipped when that layer is cached): ``uv venv
   --relocatable`` with a host interpreter of the image's ``major.minor``, then
   ``uv pip install --no-deps`` of the pins, copying files out of uv's cache
   (``UV_LINK_MODE=copy``);
4. :func:`install_worker`: the wheel installed ``--no-deps`` into a scratch venv,
   and the files its RECORD names moved out;
5. both: drop ``direct_url.json`` and ``uv_cache.json`` (they name the work
   directory and its times), and byte-compile with ``--invalidation-mode
   unchecked-hash`` and paths as seen in the image: the layer's mtimes are
   zero, so timestamp-checked ``.pyc`` files would be stale, and a read-only
   root cannot rewrite them.

Only files under ``work`` and the given output directories are written; the caller removes them.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from modelops_infra.bundles._envbuild import _run, _tool_env, compile_pins, redact, uv_binary
from modelops_infra.errors import ImageBuildError, RequirementsError

__all__ = ["PROJECT", "PYTHON_PLATFORM", "WorkerInstall", "build_dependencies", "build_wheel", "checkout_files",
           "default_checkout", "find_build_python", "install_worker", "resolve_dependencies", "tools_identity"]

log = logging.getLogger(__name__)

#: The target every wheel is chosen for, whatever host builds the image.
PYTHON_PLATFORM = "x86_64-manylinux_2_28"
#: The distribution of this checkout (canonical name): the worker-install layer, apart from its dependencies.
PROJECT = "modelops-infra"
_TOP_FILES = ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "setup.py")
_PACKAGE_DIR = "modelops_infra"
_NO_WHEEL = re.compile(r"attempted to build `([^`]+)`|`?([A-Za-z0-9_.-]+)`?[^.]*? has no wheels? with a matching")


def default_checkout() -> Path:
    """The checkout this ``modelops_infra`` was imported from (an editable install or ``PYTHONPATH``).

    Raises :class:`ImageBuildError` (input ``checkout``) when the package is not
    in a checkout, e.g. installed from a wheel: then there is nothing to build from.
    """
    import modelops_infra

    root = Path(modelops_infra.__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise ImageBuildError(f"modelops_infra at {root} is not a checkout (no pyproject.toml): cannot build the "
                              "worker image from it", hint="set modelops:workspace.image to a prebuilt image",
                              stage="install", input="checkout")
    return root


def checkout_files(checkout: Path) -> list[str]:
    """The files of ``checkout`` that make the install, relative and sorted (no caches, no ``.pyc``)."""
    out = [name for name in _TOP_FILES if (checkout / name).is_file()]
    for dirpath, dirnames, filenames in os.walk(checkout / _PACKAGE_DIR):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info"))
        rel = Path(dirpath).relative_to(checkout)
        out.extend(str(rel / f) for f in filenames if not f.endswith((".pyc", ".pyo")))
    return sorted(out)


@dataclass(frozen=True)
class WorkerInstall:
    """What goes into the venv: ``<checkout>[extras]``, ``uv``, and ``extra_packages``.

    ``index_url`` (may hold credentials) is passed to uv through its environment,
    never on a command line, and is not part of :meth:`content_hash`.
    """

    checkout: Path
    extras: tuple[str, ...] = ("azure",)
    extra_packages: tuple[str, ...] = ()
    index_url: str | None = field(default=None, repr=False)

    def content_hash(self, python_version: str) -> str:
        """``sha256:`` of the checkout's files (names and bytes), extras, packages and Python version.

        Equal hashes mean an equal install request; the Pulumi resource
        rebuilds only when this (or the base) changes.
        """
        h = hashlib.sha256()
        for rel in checkout_files(self.checkout):
            data = (self.checkout / rel).read_bytes()
            h.update(f"{rel}\0{len(data)}\0".encode())
            h.update(data)
        h.update(("\0".join(["extras", *self.extras, "packages", *self.extra_packages, "python", python_version,
                             "platform", PYTHON_PLATFORM])).encode())
        return "sha256:" + h.hexdigest()

    def requirements(self, wheel: Path) -> list[str]:
        extras = f"[{','.join(self.extras)}]" if self.extras else ""
        return [f"modelops-infra{extras} @ {wheel.as_uri()}", "uv", *self.extra_packages]


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def find_build_python(version: str, candidates: Iterable[str] | None = None) -> str:
    """A host interpreter of ``major.minor`` ``version`` to build the venv with.

    Tries the running interpreter, then ``python<version>`` on ``PATH``. Raises
    :class:`ImageBuildError` (stage ``python``) when none matches.
    """
    tried = list(candidates) if candidates is not None else [sys.executable, shutil.which(f"python{version}") or ""]
    for python in filter(None, tried):
        if _version_of(python) == version:
            return python
    raise ImageBuildError(
        f"no Python {version} on this host to build the worker venv with (tried {', '.join(filter(None, tried))})",
        hint=f"install python{version}, or choose a base image of this host's Python version",
        stage="python", input="base_image",
    )


def _copy_checkout(install: WorkerInstall, dest: Path) -> None:
    files = checkout_files(install.checkout)
    if "pyproject.toml" not in files:
        raise ImageBuildError(f"checkout {install.checkout} has no pyproject.toml", stage="install", input="checkout")
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(install.checkout / rel, target)


_BUILD_SPECIFIC = ("direct_url.json", "uv_cache.json")


def _drop_build_specific(site_packages: Path) -> None:
    """Remove the files that differ per build, and their RECORD lines.

    ``direct_url.json`` names the build's work directory; uv's ``uv_cache.json``
    holds the local source's timestamps.
    """
    for name in _BUILD_SPECIFIC:
        for path in sorted(site_packages.glob(f"*.dist-info/{name}")):
            record = path.parent / "RECORD"
            if record.is_file():
                rel = f"{path.parent.name}/{name},"
                lines = record.read_text(encoding="utf-8").splitlines(keepends=True)
                record.write_text("".join(ln for ln in lines if not ln.startswith(rel)), encoding="utf-8")
            path.unlink()


def _install_error(exc: RequirementsError, install: WorkerInstall, version: str) -> ImageBuildError:
    detail = str(getattr(exc, "detail", "") or exc)
    match = _NO_WHEEL.search(detail)
    target = f"CPython {version} on {PYTHON_PLATFORM}"
    if match:
        name = match.group(1) or match.group(2)
        message = f"package {name} has no wheel for {target} (worker install: {', '.join(install.extra_packages) or 'modelops-infra'})"
        return ImageBuildError(message, hint="pin a version that publishes a manylinux wheel, or drop the package",
                               stage="install", input="extra_packages", package=name, detail=detail)
    return ImageBuildError(f"installing the worker venv for {target} failed: {detail}", stage="install",
                           input="extra_packages", detail=detail)


def _uv_env(install: WorkerInstall, work: Path) -> dict[str, str]:
    """The allow-listed environment of every uv run of an image build."""
    env = _tool_env(work)
    env.pop("UV_CACHE_DIR")  # uv's own cache, shared between builds: a rebuild downloads nothing
    if "UV_CACHE_DIR" in os.environ:
        env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    env["UV_LINK_MODE"] = "copy"  # the layer must hold files, not links into uv's cache
    if install.index_url:
        env["UV_DEFAULT_INDEX"] = install.index_url
        env.pop("UV_INDEX_URL", None)
    return env


def tools_identity(python: str) -> str:
    """uv's version and the build interpreter's full version: both leave marks in the venv (``pyvenv.cfg``, RECORD).

    Part of the dependency layer's cache key. Raises :class:`ImageBuildError` when either cannot run.
    """
    parts = []
    for argv in ([uv_binary(), "--version"], [python, "-c", "import sys; print(sys.version)"]):
        try:
            parts.append(subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.strip())
        except (OSError, subprocess.SubprocessError) as exc:
            raise ImageBuildError(f"cannot run {argv[0]}: {exc}", stage="install", input="checkout") from None
    return " | ".join(parts)


def build_wheel(install: WorkerInstall, work: Path, *, python: str, timeout: float = 1800.0) -> Path:
    """``uv build --wheel`` of a copy of the checkout (under ``work``); returns the wheel's path.

    Raises :class:`ImageBuildError` (stage ``install``, input ``checkout``).
    """
    env = _uv_env(install, work)
    src, dist = work / "src", work / "dist"
    _copy_checkout(install, src)
    try:
        _run([uv_binary(), "build", "--no-config", "--quiet", "--wheel", "--python", python, "--out-dir", str(dist),
              str(src)], work=work, step=f"building the wheel of {install.checkout}", timeout=timeout, env=env)
    except RequirementsError as exc:
        raise ImageBuildError(f"building the wheel of {install.checkout} failed: {exc}", stage="install",
                              input="checkout") from None
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != 1:
        raise ImageBuildError(f"uv build of {install.checkout} gave {len(wheels)} wheels, expected 1",
                              stage="install", input="checkout")
    return wheels[0]


def resolve_dependencies(install: WorkerInstall, wheel: Path, work: Path, *, python: str, python_version: str,
                         timeout: float = 600.0) -> tuple[str, ...]:
    """The pins (``name==version``, sorted) of everything the worker install needs except the project itself.

    ``uv pip compile --only-binary :all:`` of :meth:`WorkerInstall.requirements`
    for ``python_version`` on :data:`PYTHON_PLATFORM`, as the venv is installed.
    They decide the dependencies layer, whatever this host is. Raises
    :class:`ImageBuildError` naming a package without a wheel for the target.
    """
    env = _uv_env(install, work)
    reqs = work / "requirements.in"
    reqs.write_text("".join(f"{r}\n" for r in install.requirements(wheel)), encoding="utf-8")
    try:
        pins = compile_pins(reqs, work, python_version=python_version, platform=PYTHON_PLATFORM, env=env,
                            step="resolving the worker install", python=python, timeout=timeout)
    except RequirementsError as exc:
        raise _install_error(exc, install, python_version) from None
    return tuple(sorted(pin for pin in pins if canonicalize_name(Requirement(pin).name) != PROJECT))


def _venv_at(venv: Path, work: Path, *, python: str, env: dict[str, str]) -> None:
    _run([uv_binary(), "venv", "--quiet", "--relocatable", "--no-config", "--python", python, str(venv)],
         work=work, step="uv venv for the worker image", timeout=300, env=env)


def _install_no_deps(venv: Path, requirements: list[str], work: Path, *, env: dict[str, str], timeout: float) -> None:
    argv = [uv_binary(), "pip", "install", "--quiet", "--no-config", "--no-deps", "--python",
            str(venv / "bin" / "python"), "--only-binary", ":all:", "--python-platform", PYTHON_PLATFORM, *requirements]
    _run(argv, work=work, step="installing the worker venv", timeout=timeout, env=env)


def _byte_compile(root: Path, lib: Path, work: Path, *, python: str, image_venv: str, env: dict[str, str],
                  timeout: float) -> None:
    """``.pyc`` files as the image sees them: ``unchecked-hash`` (mtimes are zero), paths under ``image_venv``."""
    argv = [python, "-m", "compileall", "-q", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
            "-s", str(root), "-p", image_venv, str(lib)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=work)
    if proc.returncode != 0:
        # Some wheels ship files that are not valid Python (templates, py2 samples); they stay source only.
        log.info("byte-compiling the worker venv skipped some files: %s", redact(proc.stdout + proc.stderr)[-500:])


def build_dependencies(install: WorkerInstall, pins: tuple[str, ...], venv: Path, work: Path, *, python: str,
                       python_version: str, image_venv: str = "/opt/venv", timeout: float = 1800.0) -> None:
    """The venv at ``venv`` holding ``pins`` (no project), as it will be at ``image_venv`` in the image.

    Raises :class:`ImageBuildError` (stage ``install``) naming the package
    without a wheel for the target, or uv's message otherwise.
    """
    env = _uv_env(install, work)
    reqs = work / "dependencies.txt"
    reqs.write_text("".join(f"{p}\n" for p in pins), encoding="utf-8")
    try:
        _venv_at(venv, work, python=python, env=env)
        if pins:
            _install_no_deps(venv, ["-r", str(reqs)], work, env=env, timeout=timeout)
    except RequirementsError as exc:
        raise _install_error(exc, install, python_version) from None
    _drop_build_specific(venv / "lib" / f"python{python_version}" / "site-packages")
    _byte_compile(venv, venv / "lib", work, python=python, image_venv=image_venv, env=env, timeout=timeout)


def _record_paths(site: Path, dist_info: Path) -> set[Path]:
    """The files a distribution installed (its RECORD, resolved from ``site``), and its whole ``.dist-info``."""
    paths = {p for p in dist_info.rglob("*") if p.is_file()}
    with open(dist_info / "RECORD", newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            if row and row[0]:
                paths.add(Path(os.path.normpath(site / row[0])))
    return paths


def install_worker(install: WorkerInstall, wheel: Path, tree: Path, work: Path, *, python: str,
                   python_version: str, image_venv: str = "/opt/venv", timeout: float = 600.0) -> None:
    """The project's own files at ``tree``, laid out as in the venv (its package, ``.dist-info``, ``bin/mops``).

    ``wheel`` is installed without dependencies into a scratch venv under
    ``work``; the files its RECORD names are moved to ``tree`` and byte-compiled
    as :func:`build_dependencies` does. The result depends on the wheel only,
    not on the dependencies, so it is the same whether or not they were built.
    """
    env = _uv_env(install, work)
    scratch = work / "worker-venv"
    try:
        _venv_at(scratch, work, python=python, env=env)
        _install_no_deps(scratch, [str(wheel)], work, env=env, timeout=timeout)
    except RequirementsError as exc:
        raise _install_error(exc, install, python_version) from None
    site = scratch / "lib" / f"python{python_version}" / "site-packages"
    _drop_build_specific(site)
    dist_infos = [d for d in site.glob("*.dist-info") if canonicalize_name(d.name.split("-", 1)[0]) == PROJECT]
    if len(dist_infos) != 1:
        raise ImageBuildError(f"installing {wheel.name} gave {len(dist_infos)} {PROJECT} .dist-info directories, "
                              "expected 1", stage="install", input="checkout")
    for path in sorted(_record_paths(site, dist_infos[0])):
        if not path.is_relative_to(scratch):
            raise ImageBuildError(f"{wheel.name} installs {path} outside the venv", stage="install", input="checkout")
        rel = path.relative_to(scratch)
        if not path.is_file():
            continue  # RECORD lists .pyc files some installers write; uv does not
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, tree / rel)
    shutil.rmtree(scratch)
    _byte_compile(tree, tree / "lib", work, python=python, image_venv=image_venv, env=env, timeout=timeout)
