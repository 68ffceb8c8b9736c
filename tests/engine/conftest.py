"""Fixtures that drive the real ``pulumi`` CLI against a temporary project, state dir and ports.

The CLI comes from ``PATH`` (``make test`` puts ``.modelops/bin`` there). A
missing CLI fails these tests with a message saying to run ``make test``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.pulumi import PulumiProject, make_project
from harness.services import free_port


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
