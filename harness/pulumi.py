"""The real ``pulumi`` CLI on a throwaway copy of the project: own state directory, own stack.

Tests and benchmarks drive stacks through it. The CLI comes from ``PATH``
(``make test`` puts ``.modelops/bin`` there); a missing CLI is an error saying
to run ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["REPO", "PulumiProject", "make_project", "pulumi_binary"]

REPO = Path(__file__).resolve().parents[1]


def pulumi_binary() -> str:
    found = shutil.which("pulumi") or (str(REPO / ".modelops/bin/pulumi") if (REPO / ".modelops/bin/pulumi").exists() else None)
    if not found:
        raise RuntimeError("no pulumi CLI on PATH or in .modelops/bin; run `make test`, which installs it")
    return os.path.abspath(found)


@dataclass
class PulumiProject:
    """A throwaway copy of the project (own state dir, own ports) driven through the CLI."""

    dir: Path
    stack: str
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([pulumi_binary(), *args, "--stack", self.stack, "--non-interactive"], cwd=self.dir,
                              env=self.env, text=True, capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
        return proc

    def up(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("up", "--yes", "--skip-preview", check=check)

    def outputs(self) -> dict:
        return json.loads(self.run("stack", "output", "--json").stdout)

    def config(self, path: str, value: str) -> None:
        self.run("config", "set", "--path", path, value)

    def export(self) -> dict:
        return json.loads(self.run("stack", "export", "--show-secrets=false").stdout)

    def resources(self, type_suffix: str) -> list[dict]:
        return [r for r in self.export()["deployment"].get("resources", []) if r["type"].endswith(type_suffix)]


def _engine_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "MODELOPS_BUNDLE_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update({
        "PATH": os.pathsep.join([str(Path(pulumi_binary()).parent), venv_bin, env.get("PATH", "")]),
        "PULUMI_BACKEND_URL": f"file://{state}",
        "PULUMI_CONFIG_PASSPHRASE": "",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_PYTHON_CMD": sys.executable,
    })
    return env


def make_project(root: Path, main_py: str | None = None) -> PulumiProject:
    """Copy the project's ``Pulumi.yaml`` and ``__main__.py`` (or a given program) into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    text = (REPO / "Pulumi.yaml").read_text().replace("virtualenv: .venv", f"virtualenv: {Path(sys.executable).parents[1]}")
    (root / "Pulumi.yaml").write_text(text)
    (root / "__main__.py").write_text(main_py if main_py is not None else (REPO / "__main__.py").read_text())
    project = PulumiProject(root, f"t{os.getpid()}", _engine_env(root / "state"))
    subprocess.run([pulumi_binary(), "stack", "init", project.stack, "--non-interactive"], cwd=root,
                   env=project.env, check=True, capture_output=True, text=True)
    return project
