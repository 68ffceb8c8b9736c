"""Kubernetes quantity parsing: exact numbers, and errors that name the key."""

from __future__ import annotations

import pytest

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.quantities import parse_cpu, parse_memory


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 512 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("1Ti", 2**40),
        ("500M", 500 * 10**6),
        ("2G", 2 * 10**9),
        ("128k", 128_000),
        ("1048576", 2**20),
        (1024, 1024),
    ],
)
def test_memory_quantities_parse_to_bytes(text: object, expected: int) -> None:
    assert parse_memory(text, key="k") == expected


@pytest.mark.parametrize("bad", ["4GB", "4gi", "lots", "", "-1Gi", "0", "1.5", "4 Gi", "Gi", True, None, [1]])
def test_malformed_memory_raises_configuration_error_naming_the_key(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_memory(bad, key="modelops:workspace.memory")
    assert str(info.value).startswith("modelops:workspace.memory:"), str(info.value)
    assert info.value.key == "modelops:workspace.memory"


@pytest.mark.parametrize(("text", "expected"), [("2", 2000), ("500m", 500), ("1.5", 1500), ("0.25", 250), (3, 3000)])
def test_cpu_quantities_parse_to_millicores(text: object, expected: int) -> None:
    assert parse_cpu(text, key="k") == expected


@pytest.mark.parametrize("bad", ["2 cores", "1Gi", "0", "0.0001", "m", "-1", False])
def test_malformed_cpu_raises_configuration_error_naming_the_key(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^modelops:workspace\.cpu: "):
        parse_cpu(bad, key="modelops:workspace.cpu")
