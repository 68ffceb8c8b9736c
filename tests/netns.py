"""The ``netns`` fixture: a test host in a network namespace (see harness.netns), removed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.netns import Namespace, network_namespace, sh

__all__ = ["Namespace", "netns", "sh"]


@pytest.fixture
def netns() -> Iterator[Namespace]:
    with network_namespace() as ns:
        yield ns
