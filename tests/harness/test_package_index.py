"""The loopback package index the environment tests install from (tests/services.py).

Real uv and real pip against a real HTTP server on 127.0.0.1 serving the
wheelhouse `make test` downloads; no other index is reachable from these
subprocesses (services.installer_env).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from harness.services import PackageIndex, installer_env, start_package_index, uv_binary, wheelhouse_dir


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def make_venv(path: Path, env: dict[str, str]) -> Path:
    proc = run([uv_binary(), "venv", "--python", sys.executable, str(path)], env)
    assert proc.returncode == 0, f"expected `uv venv` to succeed:\n{proc.stderr}"
    return path / "bin" / "python"


def test_simple_index_lists_every_wheelhouse_project_under_its_normalized_name(package_index: PackageIndex) -> None:
    page = requests.get(f"{package_index.url}/", timeout=5).text
    for project in ("numpy", "packaging", "six", "attrs"):
        assert f'href="{project}/"' in page, f"expected {project} in the root page:\n{page}"
    six = requests.get(f"{package_index.url}/six/", timeout=5).text
    assert "../../files/six-1.16.0-py2.py3-none-any.whl#sha256=" in six, six
    assert "../../files/six-1.17.0-py2.py3-none-any.whl#sha256=" in six, six


def test_uv_installs_a_pinned_older_version_from_the_loopback_index(package_index: PackageIndex,
                                                                     tmp_path: Path) -> None:
    env = installer_env(tmp_path / "cache")
    python = make_venv(tmp_path / "venv", env)
    proc = run([uv_binary(), "pip", "install", "--python", str(python), "--index-url", package_index.url,
                "packaging==23.2"], env)
    assert proc.returncode == 0, f"expected uv to install packaging==23.2 from {package_index.url}:\n{proc.stderr}"
    version = run([str(python), "-c", "import packaging; print(packaging.__version__)"], env)
    assert version.stdout.strip() == "23.2", f"expected packaging 23.2 in the new venv, got {version}"
    assert package_index.requests_matching("/files/packaging-23.2-") >= 1, "expected the wheel to come from the index"


def test_pip_downloads_the_pinned_wheel_byte_for_byte(package_index: PackageIndex, tmp_path: Path) -> None:
    env = installer_env(tmp_path / "cache")
    dest = tmp_path / "dest"
    proc = run([sys.executable, "-m", "pip", "download", "--no-deps", "--index-url", package_index.url,
                "--dest", str(dest), "six==1.17.0"], env)
    assert proc.returncode == 0, f"expected pip to download six==1.17.0 from {package_index.url}:\n{proc.stderr}"
    name = "six-1.17.0-py2.py3-none-any.whl"
    assert [p.name for p in dest.iterdir()] == [name]
    got = hashlib.sha256((dest / name).read_bytes()).hexdigest()
    want = hashlib.sha256((wheelhouse_dir() / name).read_bytes()).hexdigest()
    assert got == want, "expected the downloaded wheel to be the wheelhouse's"


def test_an_index_of_a_subset_cannot_satisfy_a_version_it_lacks(tmp_path: Path) -> None:
    index = start_package_index(wheelhouse_dir(), tmp_path / "index", only=["packaging-24.2"])
    try:
        assert index.wheels == ("packaging-24.2-py3-none-any.whl",)
        env = installer_env(tmp_path / "cache")
        python = make_venv(tmp_path / "venv", env)
        proc = run([uv_binary(), "pip", "install", "--python", str(python), "--index-url", index.url,
                    "packaging==23.2"], env)
    finally:
        index.stop()
    assert proc.returncode != 0, "expected packaging==23.2 to be unsatisfiable from an index holding only 24.2"
    assert "no version of packaging==23.2" in proc.stderr, f"expected uv to find no such version:\n{proc.stderr}"
    assert index.requests_matching("/simple/packaging/") >= 1, "expected uv to have asked the index"


def test_a_subset_prefix_matching_no_wheel_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="packaging-99"):
        start_package_index(wheelhouse_dir(), tmp_path / "index", only=["packaging-99"])


def test_installer_env_reaches_no_index_but_loopback(tmp_path: Path) -> None:
    env = installer_env(tmp_path / "cache")
    env["UV_HTTP_RETRIES"] = "0"  # the refusal is certain; uv's default retries would take ~9 s
    python = make_venv(tmp_path / "venv", env)
    proc = run([uv_binary(), "pip", "install", "--python", str(python), "--index-url", "https://pypi.org/simple",
                "six==1.17.0"], env)
    assert proc.returncode != 0, "expected a non-loopback index to be unreachable under installer_env"
    assert "tunnel error" in proc.stderr and "Connection refused" in proc.stderr, \
        f"expected the request to die at the closed loopback proxy:\n{proc.stderr}"
