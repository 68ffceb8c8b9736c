"""Build a bundle's environment with ``uv``, and download its wheels for the registry.

These are the two places that run package tools: :func:`build_environment`
(on a worker, into a staging directory the cache then publishes) and
:func:`download_wheels` (on the client, for ``mops bundle push --wheels``).
Neither publishes anything itself; both leave only files under the directory
they are given, which the caller removes on failure.

Subprocesses get an allow-listed environment: ``PATH``, ``HOME``, locale, TLS
and proxy settings, ``UV_*``/``PIP_*`` index settings. Never registry
passwords or cloud credentials. Index URLs are redacted in every message.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

from modelops_infra.bundles._envspec import EnvironmentSpec, PythonTarget
from modelops_infra.errors import ConfigurationError, RequirementsError

__all__ = ["BuildOptions", "build_environment", "download_wheels", "install_text", "redact", "uv_binary"]

log = logging.getLogger(__name__)
_PASS_ENV = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "REQUESTS_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
_PASS_PREFIXES = ("LC_", "UV_INDEX", "UV_DEFAULT_INDEX", "UV_EXTRA_INDEX", "UV_NATIVE_TLS", "UV_INSECURE_HOST",
                  "UV_HTTP_TIMEOUT", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT", "PIP_TRUSTED_HOST",
                  "UV_KEYRING", "UV_INDEX_", "UV_CONCURRENT")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """Hide ``user:password@`` in every URL of ``text``."""
    return _USERINFO.sub("***@", text)


@dataclass(frozen=True)
class BuildOptions:
    """Where packages come from and which interpreter environments use.

    ``index_url`` is ``MODELOPS_BUNDLE_INDEX_URL`` (else uv's own ``UV_INDEX_URL``
    / ``UV_DEFAULT_INDEX``, else ``PIP_INDEX_URL``, else uv's default index).
    """

    index_url: str | None = None
    python: str = sys.executable
    timeout: float = 1800.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BuildOptions:
        env = os.environ if environ is None else environ
        index = env.get("MODELOPS_BUNDLE_INDEX_URL") or env.get("UV_INDEX_URL") or env.get("UV_DEFAULT_INDEX") \
            or env.get("PIP_INDEX_URL") or None
        return cls(index_url=index)


def uv_binary() -> str:
    """The ``uv`` executable shipped by the ``uv`` package (a worker dependency), else one on ``PATH``."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise ConfigurationError("no uv executable: bundle environments are built with uv",
                             hint="pip install uv on the worker (modelops-infra depends on it)")


def _tool_env(work: Path, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if environ is None else environ
    out = {k: v for k, v in env.items() if k in _PASS_ENV or k.startswith(_PASS_PREFIXES)}
    out.setdefault("PATH", os.defpath)
    out.setdefault("HOME", str(work))
    # A cache of its own per build, removed with the staging directory: the bundle cache's size cap
    # then accounts for everything on disk. Hard links from that cache (same file system) save copying
    # every file; once the cache is removed the environment holds the only link.
    out.update(UV_CACHE_DIR=str(work / "uv-cache"), UV_LINK_MODE="hardlink", UV_PYTHON_DOWNLOADS="never",
               UV_NO_PROGRESS="1", PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return out


def _run(argv: list[str], *, work: Path, step: str, timeout: float, env: Mapping[str, str]) -> str:
    """Run a package tool; on timeout it is killed.

    It stays in the caller's process group (no session of its own), so a worker
    killed with its group takes the tool along instead of leaving it writing into
    a staging directory that the next build sweeps.
    """
    start = time.perf_counter()
    log.debug("running %s", redact(" ".join(argv)))
    try:
        proc = subprocess.Popen(argv, cwd=work, env=dict(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    except OSError as exc:
        raise ConfigurationError(f"{step}: cannot run {argv[0]} ({exc.strerror or exc})") from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException as exc:
        proc.kill()
        proc.communicate()
        if isinstance(exc, subprocess.TimeoutExpired):  # its text holds the command line: not chained
            raise RequirementsError(f"{step} did not finish within {timeout:.0f} s") from None
        raise
    log.debug("%s took %.2f s (exit %d)", argv[1] if len(argv) > 1 else argv[0], time.perf_counter() - start,
              proc.returncode)
    if proc.returncode != 0:
        detail = _summary(stderr or stdout)
        raise RequirementsError(f"{step} failed: {detail}", detail=detail)
    return stdout


def _summary(output: str, limit: int = 1500) -> str:
    """The tool's error lines, without progress noise, redacted and bounded."""
    lines = [ln.strip() for ln in redact(output).splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith(("Resolved ", "Prepared ", "Using ", "Collecting ", "Downloading",
                                                        "Saved ", "Audited ", "Looking in "))] or lines
    text = " ".join(keep)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def install_text(spec: EnvironmentSpec, work: Path, *, pins_only: bool = False, uv: str | None = None) -> Path:
    """Write the requirement file uv (or pip) installs for ``spec`` into ``work``; return its path.

    ``requirements.txt`` installs its normalised text; ``pylock.toml`` itself
    (or, with ``pins_only``, its ``name==version`` pins, for installs from a
    find-links directory); ``uv.lock`` is exported with ``uv export --frozen``.
    """
    work.mkdir(parents=True, exist_ok=True)
    if spec.kind == "requirements":
        path = work / "requirements.txt"
        path.write_text(spec.text, encoding="utf-8")
    elif spec.kind == "pylock" and not pins_only:
        path = work / "pylock.toml"
        path.write_text(spec.text, encoding="utf-8")
    elif spec.kind == "pylock":
        path = work / "requirements.txt"
        path.write_text("".join(f"{pin}\n" for pin in spec.pins), encoding="utf-8")
    else:
        project = work / "project"
        project.mkdir(exist_ok=True)
        (project / "uv.lock").write_text(spec.text, encoding="utf-8")
        (project / "pyproject.toml").write_text(spec.project_text or "", encoding="utf-8")
        path = work / "requirements.txt"
        _run([uv or uv_binary(), "export", "--frozen", "--no-dev", "--no-emit-project", "--no-header",
              "--format", "requirements-txt", "--project", str(project), "-o", str(path)],
             work=work, step=f"uv export of {spec.source}", timeout=300, env=_tool_env(work))
    return path


def _check_python(spec: EnvironmentSpec, target: PythonTarget) -> None:
    if not spec.requires_python:
        return
    # The running interpreter is checked exactly; for another target only major.minor is known, so any
    # patch release of it passes (uv then has the last word).
    candidates = [platform.python_version()] if target == PythonTarget.current() else \
        [f"{target.version}.{patch}" for patch in (0, 99)]
    try:
        ok = any(SpecifierSet(spec.requires_python).contains(v, prereleases=True) for v in candidates)
    except InvalidSpecifier:
        return
    if not ok:
        running = f"Python {candidates[0]} ({target})" if len(candidates) == 1 else str(target)
        raise RequirementsError(f"{spec.source} requires Python {spec.requires_python}, and the workers run {running}",
                                hint="lock the environment for the workers' Python version",
                                requires_python=spec.requires_python)


def build_environment(spec: EnvironmentSpec, venv: Path, work: Path, *, wheels_dir: Path | None = None,
                      options: BuildOptions | None = None, target: PythonTarget | None = None) -> None:
    """Create a relocatable virtual environment at ``venv`` and install ``spec`` into it with uv.

    With ``wheels_dir`` the install is offline, from exactly those (verified)
    wheels; otherwise from the configured index. Scratch files go under
    ``work``. Raises :class:`RequirementsError` naming the requirement (uv's
    message) and the Python version when the environment cannot be built.
    """
    options = options or BuildOptions.from_env()
    target = target or PythonTarget.current()
    _check_python(spec, target)
    uv = uv_binary()
    env = _tool_env(work)
    if options.index_url:  # through the environment, so credentials in it never show in a process list
        env["UV_DEFAULT_INDEX"] = options.index_url
        env.pop("UV_INDEX_URL", None)
    environment = f"environment ({spec.source}) for {target}"
    _run([uv, "venv", "--quiet", "--relocatable", "--no-config", "--python", options.python, str(venv)],
         work=work, step=f"uv venv for {environment}", timeout=300, env=env)
    requirements = install_text(spec, work / "req", pins_only=wheels_dir is not None, uv=uv)
    argv = [uv, "pip", "install", "--no-config", "--python", str(venv / "bin" / "python"), "-r", str(requirements)]
    if wheels_dir is not None:
        argv += ["--offline", "--no-index", "--find-links", str(wheels_dir)]
    _run(argv, work=work, step=f"installing the {environment}", timeout=options.timeout, env=env)


_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


def platform_tags(platform: str) -> list[str]:
    """Every platform tag a worker of ``platform`` accepts, newest first (pure).

    ``pip download --platform`` matches tags exactly, so ``manylinux_2_28_x86_64``
    is expanded to every older glibc (``manylinux_2_27`` ... ``manylinux_2_5``)
    and the legacy aliases (``manylinux2014``, ``manylinux2010``, ``manylinux1``),
    as an installer on that worker would accept them.
    """
    match = _MANYLINUX.match(platform)
    if not match:
        return [platform]
    major, minor, arch = int(match.group(1)), int(match.group(2)), match.group(3)
    tags = []
    for m in range(minor, 4, -1):
        tags.append(f"manylinux_{major}_{m}_{arch}")
        if (major, m) in _LEGACY_MANYLINUX:
            tags.append(f"{_LEGACY_MANYLINUX[(major, m)]}_{arch}")
    return tags


_HASH_OPTION = re.compile(r"--hash[= ](\S+)")


def uv_platform(platform: str) -> str:
    """uv's ``--python-platform`` name of a wheel platform tag (pure): ``manylinux_2_28_x86_64`` ->
    ``x86_64-manylinux_2_28``. Other names pass through unchanged (uv also knows ``linux``, ``macos``)."""
    match = _MANYLINUX.match(platform)
    return f"{match.group(3)}-manylinux_{match.group(1)}_{match.group(2)}" if match else platform


def _hashes_by_name(text: str) -> dict[str, list[str]]:
    """``--hash`` options of each requirement in a requirements file, by canonical name (pure)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    out: dict[str, list[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        line = line.split(" #", 1)[0].strip()
        hashes = _HASH_OPTION.findall(line)
        if not hashes or line.startswith("-"):
            continue
        try:
            name = canonicalize_name(Requirement(line.split("--hash", 1)[0].strip()).name)
        except InvalidRequirement:
            continue
        out.setdefault(name, []).extend(hashes)
    return out


def compile_pins(requirements: Path, work: Path, *, python_version: str, platform: str, env: Mapping[str, str],
                 step: str, python: str | None = None, timeout: float = 600.0) -> list[str]:
    """``uv pip compile --only-binary :all:`` of ``requirements`` for the workers: the pinned lines, in uv's order.

    ``platform`` is a wheel tag (``manylinux_2_28_x86_64``) or uv's name for one; markers are evaluated
    for it and ``python_version``, not for this host. Option and comment lines are dropped.
    Raises :class:`RequirementsError` (uv's message) naming ``step``.
    """
    argv = [uv_binary(), "pip", "compile", "--no-config", "--quiet", "--no-header", "--no-annotate",
            "--only-binary", ":all:", *(["--python", python] if python else []), "--python-version", python_version,
            "--python-platform", uv_platform(platform), str(requirements)]
    out = _run(argv, work=work, step=step, timeout=timeout, env=env)
    lines = (line.split(" #", 1)[0].strip() for line in out.splitlines())
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def target_requirements(requirements: Path, work: Path, *, python_version: str, platform: str,
                        env: Mapping[str, str]) -> Path:
    """Resolve ``requirements`` for the workers (:func:`compile_pins`) and return the pinned file.

    Markers (``python_version``, ``sys_platform``, ``platform_machine``) are
    evaluated for the workers' Python and platform, not for this host, which
    ``pip download --platform`` alone would do. The file's ``--hash`` options are
    carried over to the pins, so the download still checks them. uv reads no
    ``pip.conf``: the index is ``UV_DEFAULT_INDEX`` in ``env``, or PyPI.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = compile_pins(requirements, work, python_version=python_version, platform=platform, env=env,
                        step=f"resolving {requirements.name} for CPython {python_version} on {platform}")
    hashes = _hashes_by_name(requirements.read_text(encoding="utf-8"))
    lines = [pin + "".join(f" --hash={h}" for h in hashes.get(canonicalize_name(Requirement(pin).name), ()))
             for pin in pins]
    out = work / "target-requirements.txt"
    out.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return out


def download_wheels(spec: EnvironmentSpec, dest: Path, work: Path, *, python_version: str,
                    platform: str = "manylinux_2_28_x86_64", index_url: str | None = None) -> list[Path]:
    """Resolve ``spec`` for the workers' platform and download one wheel per distribution into ``dest``.

    The resolution is uv's, for the workers' Python version and platform
    (:func:`target_requirements`); the download is ``pip download --no-deps
    --only-binary=:all:`` of those pins with the same target, so it is right
    whichever host runs it. Raises :class:`RequirementsError` naming the
    requirement that has no wheel for that target, or a hash that does not match.
    """
    dest.mkdir(parents=True, exist_ok=True)
    env = _tool_env(work)
    if index_url:  # through the environment, so credentials in it never show in a process list
        env["PIP_INDEX_URL"] = index_url
        env["UV_DEFAULT_INDEX"] = index_url
    requirements = target_requirements(install_text(spec, work / "req", pins_only=True), work,
                                       python_version=python_version, platform=platform, env=env)
    abi = "cp" + python_version.replace(".", "")
    argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
            "--dest", str(dest), *(arg for tag in platform_tags(platform) for arg in ("--platform", tag)),
            "--python-version", python_version, "--implementation", "cp", "--abi", abi,
            "--abi", "abi3", "--abi", "none", "-r", str(requirements)]
    _run(argv, work=work, step=f"downloading wheels of {spec.source} for CPython {python_version} on {platform}",
         timeout=1800, env=env)
    wheels = sorted(dest.glob("*.whl"))
    extra = sorted(p.name for p in dest.iterdir() if p.suffix != ".whl")
    if extra:
        raise RequirementsError(f"pip download gave files that are not wheels: {', '.join(extra)}")
    return wheels
