"""Physical naming: valid ACR names, deterministic role assignment GUIDs, DNS labels."""

from __future__ import annotations

import re
import uuid

import pytest

from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.naming import aks_dns_prefix, dns_label, registry_name, role_assignment_name

ACR = re.compile(r"^[a-z0-9]{5,50}$")


def test_registry_name_joins_project_stack_and_suffix() -> None:
    assert registry_name("modelops", "dev", "a1b2c3") == "modelopsdeva1b2c3"


@pytest.mark.parametrize(
    ("project", "stack"),
    [("modelops", "dev"), ("Model-Ops", "feature/ABC_123"), ("x" * 80, "production-west-europe"), ("m", "p")],
)
def test_registry_name_is_always_5_to_50_lowercase_alphanumerics(project: str, stack: str) -> None:
    name = registry_name(project, stack, "q7x2k9")
    assert ACR.match(name), name
    assert name.endswith("q7x2k9"), "the random suffix is never truncated"


def test_registry_name_is_stable_for_the_same_inputs() -> None:
    assert registry_name("modelops", "dev", "abc123") == registry_name("modelops", "dev", "abc123")
    assert registry_name("modelops", "dev", "abc123") != registry_name("modelops", "prod", "abc123")


def test_registry_name_too_short_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="at least 5"):
        registry_name("-", "_", "ab")


def test_role_assignment_name_is_a_deterministic_uuid5() -> None:
    a = role_assignment_name("/subs/1/acr", "principal", "/roles/acrpull")
    assert uuid.UUID(a).version == 5
    assert a == role_assignment_name("/subs/1/acr", "principal", "/roles/acrpull")
    assert a == role_assignment_name("/SUBS/1/ACR", "PRINCIPAL", "/roles/AcrPull"), "ARM ids are case-insensitive"
    assert a != role_assignment_name("/subs/1/acr", "other", "/roles/acrpull")
    assert a != role_assignment_name("/subs/2/acr", "principal", "/roles/acrpull")


def test_dns_label_lowercases_and_replaces_invalid_characters() -> None:
    assert dns_label("Dask", "scheduler") == "dask-scheduler"
    assert dns_label("my_ws", "sa") == "my-ws-sa"
    assert len(dns_label("a" * 100)) == 63


def test_dns_label_must_start_with_a_letter() -> None:
    with pytest.raises(ConfigurationError):
        dns_label("1abc")


def test_aks_dns_prefix_fits_54_characters() -> None:
    assert aks_dns_prefix("modelops", "dev") == "modelops-dev"
    assert len(aks_dns_prefix("modelops", "s" * 80)) <= 54
