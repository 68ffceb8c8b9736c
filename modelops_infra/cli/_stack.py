"""Reading a Pulumi stack's outputs through the ``pulumi`` CLI (a subprocess behind one function).

The CLI is found on ``PATH`` first, then at ``.modelops/bin/pulumi`` in the
project (the link ``make up`` leaves). When that project-local CLI is used and
no backend is configured, the project's local ``file://`` backend under
``.modelops/state`` is used, as ``make up`` does.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelops_infra.bundles import RegistryHost
from modelops_infra.errors import ConfigurationError

__all__ = ["StackOutputs", "find_project_dir", "find_pulumi", "parse_stack_outputs", "read_stack_outputs"]

PULUMI_TIMEOUT = 120.0
_HINT = "run `make up` (it leaves .modelops/bin/pulumi) or install the pulumi CLI and put it on PATH"


@dataclass(frozen=True)
class StackOutputs:
    """The outputs ``mops env write`` needs from a stack."""

    registry: str
    scheduler_address: str | None


def find_project_dir(start: Path | None = None) -> Path | None:
    """The nearest directory at or above ``start`` (default: cwd) holding ``Pulumi.yaml``."""
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    return None


def find_pulumi(project_dir: Path | None, environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """Path of the ``pulumi`` CLI and whether it is the project-local one; error with a hint if none."""
    environ = os.environ if environ is None else environ
    found = shutil.which("pulumi", path=environ.get("PATH"))
    if found:
        return found, False
    if project_dir is not None:
        local = project_dir / ".modelops" / "bin" / "pulumi"
        if local.exists() and os.access(local, os.X_OK):
            return str(local), True
    where = f" or at {project_dir / '.modelops/bin/pulumi'}" if project_dir else ""
    raise ConfigurationError(f"no pulumi CLI on PATH{where}", hint=_HINT)


def parse_stack_outputs(text: str, *, stack: str | None) -> StackOutputs:
    """Pure: pick ``acr_login_server`` and ``scheduler_address`` out of ``pulumi stack output --json``."""
    name = f"stack {stack!r}" if stack else "the selected stack"
    try:
        data: Any = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"pulumi stack output for {name} is not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"pulumi stack output for {name} is not a JSON object")
    registry = data.get("acr_login_server")
    if not isinstance(registry, str) or not registry or registry == "[secret]":
        have = ", ".join(sorted(data)) or "none"
        raise ConfigurationError(f"{name} has no usable output 'acr_login_server' (outputs: {have})",
                                 hint="run `pulumi up` on that stack first")
    registry = str(RegistryHost.parse(registry, source=f"{name}: output 'acr_login_server'"))
    scheduler = data.get("scheduler_address")
    if scheduler is not None and not isinstance(scheduler, str):
        raise ConfigurationError(f"{name}: output 'scheduler_address' must be a string, got {scheduler!r}")
    return StackOutputs(registry, scheduler or None)


def read_stack_outputs(stack: str | None, *, project_dir: Path | None = None,
                       timeout: float = PULUMI_TIMEOUT) -> StackOutputs:
    """Run ``pulumi stack output --json [--stack NAME]`` and parse it. Raises :class:`ConfigurationError`."""
    project_dir = project_dir or find_project_dir()
    pulumi, project_local = find_pulumi(project_dir)
    env = dict(os.environ)
    env.setdefault("PULUMI_SKIP_UPDATE_CHECK", "true")
    env.setdefault("PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "true")
    project_backend = False
    if project_local and project_dir is not None and not env.get("PULUMI_BACKEND_URL"):
        state = project_dir / ".modelops" / "state"
        if state.is_dir():  # what scripts/pulumi-env.sh exports
            env["PULUMI_BACKEND_URL"] = f"file://{state}"
            project_backend = True
    no_passphrase = "PULUMI_CONFIG_PASSPHRASE" not in env and "PULUMI_CONFIG_PASSPHRASE_FILE" not in env
    if no_passphrase and (stack == "local" or project_backend):
        env["PULUMI_CONFIG_PASSPHRASE"] = ""  # the local backend's documented empty passphrase
    cmd = [pulumi, "stack", "output", "--json"] + (["--stack", stack] if stack else [])
    try:
        proc = subprocess.run(cmd, cwd=project_dir, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise ConfigurationError(f"`{' '.join(cmd[1:])}` did not finish within {timeout:g} s") from exc
    except OSError as exc:
        raise ConfigurationError(f"cannot run {pulumi}: {exc}", hint=_HINT) from exc
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        detail = lines[-1].strip() if lines else "no output"
        raise ConfigurationError(f"`pulumi {' '.join(cmd[1:])}` failed (exit {proc.returncode}): {detail}",
                                 hint="check the stack name (`pulumi stack ls`) and the backend (PULUMI_BACKEND_URL)")
    return parse_stack_outputs(proc.stdout, stack=stack)
