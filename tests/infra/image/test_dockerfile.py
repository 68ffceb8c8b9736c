"""docker/worker.Dockerfile, the alternative to WorkerImage, installs the same packages on the same base.

Both are built on the test base (mmdebstrap bookworm + python3, in the loopback registry). The Docker
build installs from a loopback index that holds exactly the distributions found in the WorkerImage's
venv (plus the build backend of this project), so any difference in what the Dockerfile asks for (a
missing extra, a missing ``uv``, another package) shows as a difference in the installed sets.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.images import Dockerd
from harness.services import REPO_ROOT, start_package_index
from modelops_infra.bundles._envbuild import platform_tags

#: Prints the venv's distributions as a sorted JSON list of "name==version" (names normalised).
LIST_PACKAGES = ("import importlib.metadata as m, json, re; "
                 "print(json.dumps(sorted({re.sub(r'[-_.]+', '-', d.metadata['Name']).lower() + '==' + d.version "
                 "for d in m.distributions()})))")
#: The build backend of pyproject.toml's [build-system], needed to build the checkout inside Docker.
BUILD_BACKEND = ("setuptools>=77", "wheel")


def _installed(dockerd: Dockerd, image: str) -> list[str]:
    out = dockerd.docker("run", "--rm", "--network", "none", "--entrypoint", "/opt/venv/bin/python", image,
                         "-c", LIST_PACKAGES, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def _download(pins: list[str], dest: Path) -> None:
    """Wheels of ``pins`` for the image's platform (manylinux_2_28 x86_64, CPython 3.11) into ``dest``."""
    platforms = [arg for tag in platform_tags("manylinux_2_28_x86_64") for arg in ("--platform", tag)]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
                    "--implementation", "cp", "--python-version", "3.11", *platforms, "--dest", str(dest), *pins],
                   check=True, timeout=900)


def test_the_dockerfile_installs_what_the_worker_image_installs_on_the_same_base(
        dockerd: Dockerd, pulled_worker_image: str, base_ref: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assembled = _installed(dockerd, pulled_worker_image)
    assert any(p.startswith("modelops-infra==") for p in assembled) and any(p.startswith("uv==") for p in assembled)
    assert not any(p.startswith("pulumi") for p in assembled)

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _download([p for p in assembled if not p.startswith("modelops-infra==")], wheels)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:", "--dest",
                    str(wheels), *BUILD_BACKEND], check=True, timeout=600)
    index = start_package_index(wheels, tmp_path / "index")
    context = tmp_path / "context"
    (context / "docker").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "docker" / "worker.Dockerfile", context / "docker")
    shutil.copy(REPO_ROOT / "pyproject.toml", context)
    shutil.copy(REPO_ROOT / "README.md", context)
    shutil.copytree(REPO_ROOT / "modelops_infra", context / "modelops_infra",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    monkeypatch.setenv("DOCKER_BUILDKIT", "0")  # the classic builder: this engine has no buildx
    try:
        dockerd.docker("build", "--network", "host", "--quiet", "-f", str(context / "docker" / "worker.Dockerfile"),
                       "--build-arg", f"BASE_IMAGE={base_ref}", "--build-arg", f"PIP_INDEX_URL={index.url}",
                       "--build-arg", f"UV_DEFAULT_INDEX={index.url}", "-t", "modelops-test/dockerfile-worker",
                       str(context), timeout=1200)
    finally:
        index.stop()
    built = _installed(dockerd, "modelops-test/dockerfile-worker")
    assert built == assembled, (f"only in the Dockerfile's image: {sorted(set(built) - set(assembled))}; "
                                f"only in WorkerImage's: {sorted(set(assembled) - set(built))}")
    user = dockerd.docker("image", "inspect", "--format", "{{.Config.User}}", "modelops-test/dockerfile-worker").stdout
    assert user.strip() == "1000:1000"
