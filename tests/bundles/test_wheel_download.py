"""``push --wheels`` downloads the wheels the *workers* need: markers are evaluated for their Python, not ours.

Against the loopback package index (the wheelhouse holds packaging 23.2 and 24.2, six 1.16 and 1.17).
"""

from __future__ import annotations

import hashlib
import sys

import pytest

from harness.services import wheelhouse_dir
from modelops_infra.bundles import parse_requirements
from modelops_infra.bundles._envbuild import download_wheels, uv_platform
from modelops_infra.errors import RequirementsError


def _spec(text: str):
    spec, _, problems = parse_requirements(text, source="requirements.txt")
    assert spec is not None, problems
    return spec

BY_PYTHON = ('packaging==23.2 ; python_version < "3.12"\n'
             'packaging==24.2 ; python_version >= "3.12"\n'
             'six==1.16.0\n')


@pytest.mark.parametrize(("python", "packaging"), [("3.11", "23.2"), ("3.12", "24.2"), ("3.13", "24.2")])
def test_markers_are_evaluated_for_the_workers_python_not_this_one(tmp_path, package_index, python, packaging):
    spec = _spec(BY_PYTHON)
    wheels = download_wheels(spec, tmp_path / "wheels", tmp_path / "work", python_version=python,
                             index_url=package_index.url)
    assert sorted(w.name for w in wheels) == [f"packaging-{packaging}-py3-none-any.whl",
                                              "six-1.16.0-py2.py3-none-any.whl"], f"this host runs {sys.version}"


def test_hashes_in_the_file_are_still_checked(tmp_path, package_index):
    six = next(wheelhouse_dir().glob("six-1.16.0-*.whl"))
    good = hashlib.sha256(six.read_bytes()).hexdigest()
    ok = _spec(f"six==1.16.0 --hash=sha256:{good}\n")
    assert [w.name for w in download_wheels(ok, tmp_path / "w1", tmp_path / "k1", python_version="3.11",
                                            index_url=package_index.url)] == [six.name]
    bad = _spec(f"six==1.16.0 --hash=sha256:{'0' * 64}\n")
    with pytest.raises(RequirementsError) as info:
        download_wheels(bad, tmp_path / "w2", tmp_path / "k2", python_version="3.11", index_url=package_index.url)
    assert "hash" in str(info.value).lower()


def test_uv_platform_names():
    assert uv_platform("manylinux_2_28_x86_64") == "x86_64-manylinux_2_28"
    assert uv_platform("manylinux_2_17_aarch64") == "aarch64-manylinux_2_17"
    assert uv_platform("linux") == "linux"
