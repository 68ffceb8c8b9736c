"""Fixtures that drive the real ``pulumi`` CLI against a temporary project, state dir and ports.

The CLI comes from ``PATH`` (``make test`` puts ``.modelops/bin`` there). A
missing CLI fails these tests with a message saying to run ``make test``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.services import free_port

REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory, package_index) -> Iterator[PulumiProject]:
    """The real program as a local stack on free ports; destroyed (and checked) at the end.

    Its workers build bundle environments from the loopback package index.
    """
    project = make_project(tmp_path_factory.mktemp("engine") / "project")
    project.env["MODELOPS_BUNDLE_INDEX_URL"] = package_index.url
    project.ports = {"registryPort": free_port(), "schedulerPort": free_port(), "dashboardPort": free_port()}
    project.run("config", "set", "modelops:cloud", "local")
    for key, port in project.ports.items():
        project.config(f"modelops:local.{key}", str(port))
    project.config("modelops:local.workers", "2")
    project.config("modelops:smokeTest.timeout", "90")
    yield project
    project.run("destroy", "--yes", "--skip-preview", check=False)
