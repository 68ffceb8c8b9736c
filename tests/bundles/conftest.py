"""Fixtures for the bundle tests: a client on the session registry and an empty cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.services import Registry
from modelops_infra.bundles import BundleCache, RegistryClient


@pytest.fixture
def client(registry: Registry) -> Iterator[RegistryClient]:
    """An anonymous client for the session registry (plain HTTP: it is on loopback)."""
    with RegistryClient(registry.address, environ={}) as c:
        yield c


@pytest.fixture
def cache(tmp_path: Path) -> BundleCache:
    """An empty bundle cache in a temp dir, with no size cap."""
    return BundleCache(tmp_path / "cache")
