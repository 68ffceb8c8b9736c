"""Shared fixtures: real registries, a real package index, real Dask clusters, bundle factories."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.services import (
    DaskCluster,
    PackageIndex,
    Registry,
    start_package_index,
    start_registry,
    start_test_cluster,
    wheelhouse_dir,
)
from tests.netns import netns  # noqa: F401  (a fixture for the tests that need a namespace)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used a Dask cluster reports what the cluster was doing (stacks, logs)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name in ("cluster", "env_cluster"):
        cluster = getattr(item, "funcargs", {}).get(name)
        if isinstance(cluster, DaskCluster):
            report.sections.append((f"dask cluster {name!r} after the failure", cluster.diagnose()))


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """One plain-HTTP registry on a free loopback port for the whole session."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of its own, for tests that count requests or tamper with storage."""
    reg = start_registry(tmp_path / "registry")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def package_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackageIndex]:
    """The whole wheelhouse (scripts/wheelhouse.txt) as a PEP 503 index on a free loopback port."""
    index = start_package_index(wheelhouse_dir(), tmp_path_factory.mktemp("package-index"))
    yield index
    index.stop()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, registry: Registry,
            package_index: PackageIndex) -> Iterator[DaskCluster]:
    """Scheduler + 2 worker processes with ``--preload modelops_infra.worker``.

    ``MODELOPS_BUNDLE_REGISTRY`` is set only in the workers' environment; bundle
    environments install from the loopback package index.
    """
    c = start_test_cluster(tmp_path_factory.mktemp("dask"), registry, package_index)
    yield c
    c.stop()



@pytest.fixture
def make_bundle(tmp_path: Path) -> Callable[..., Path]:
    """Write a bundle directory: ``make_bundle("name", {"sim.py": "..."}, entrypoint="sim:run")``."""

    def _make(name: str = "demo", files: dict[str, str | bytes] | None = None, *, entrypoint: str = "sim:run",
              version: str = "1.0.0", requirements: str | None = None) -> Path:
        root = tmp_path / "bundles" / name
        root.mkdir(parents=True, exist_ok=True)
        (root / "manifest.json").write_text(json.dumps({"name": name, "version": version, "entrypoint": entrypoint}))
        files = files if files is not None else {
            "sim.py": textwrap.dedent("""
                def run(params, seed):
                    return {"params": params, "seed": seed, "bundle": %r}
            """ % name)
        }
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(textwrap.dedent(content))
        if requirements is not None:
            (root / "requirements.txt").write_text(requirements)
        return root

    return _make
