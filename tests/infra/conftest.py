"""Fixtures for the infra tests."""

from __future__ import annotations

from collections.abc import Iterator

import pulumi
import pytest


@pytest.fixture(autouse=True)
def _no_config_left_behind() -> Iterator[None]:
    """Pulumi's config is process-global; clear what a test set."""
    yield
    pulumi.runtime.set_all_config({})
