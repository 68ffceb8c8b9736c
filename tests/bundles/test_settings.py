"""Typed settings from the environment, and the plain-HTTP rules for registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelops_infra.bundles import (
    DEFAULT_REPOSITORY,
    BundleSettings,
    RegistryClient,
    parse_bool,
    parse_size,
    use_plain_http,
)
from modelops_infra.errors import ConfigurationError


def test_settings_from_an_empty_environment_use_defaults_under_home():
    settings = BundleSettings.from_env({"HOME": "/home/modeler"})
    assert settings.registry is None
    assert settings.repository == DEFAULT_REPOSITORY
    assert settings.insecure is None, "insecure should be undecided (loopback rule applies) when unset"
    assert settings.cache_dir == Path("/home/modeler/.cache/modelops/bundles")
    assert settings.cache_max_bytes is None, "no cache cap unless MODELOPS_BUNDLE_CACHE_MAX_BYTES is set"


def test_settings_read_every_variable():
    settings = BundleSettings.from_env({
        "MODELOPS_BUNDLE_REGISTRY": "reg.example:5000",
        "MODELOPS_BUNDLE_REPOSITORY": "team/sims",
        "MODELOPS_BUNDLE_INSECURE": "yes",
        "MODELOPS_BUNDLE_CACHE_DIR": "/var/cache/bundles",
        "MODELOPS_BUNDLE_CACHE_MAX_BYTES": "2GiB",
        "MODELOPS_BUNDLE_MAX_EXTRACT_BYTES": "500M",
        "MODELOPS_BUNDLE_TIMEOUT": "7.5",
    })
    assert settings == BundleSettings(
        registry="reg.example:5000", repository="team/sims", insecure=True, cache_dir=Path("/var/cache/bundles"),
        cache_max_bytes=2 * 1024**3, max_extract_bytes=500_000_000, timeout=7.5,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1048576", 1048576), ("500M", 500_000_000), ("500MB", 500_000_000), ("2GiB", 2 * 1024**3),
     ("10k", 10_000), ("3Ki", 3072), (" 1 T ", 10**12), ("0", 0), ("12B", 12)],
)
def test_sizes_accept_bytes_and_decimal_or_binary_suffixes(text, expected):
    assert parse_size(text, key="K") == expected, f"{text!r} should be {expected} bytes"


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("true", True), ("YES", True), ("on", True),
                                               ("0", False), ("false", False), ("No", False), ("off", False)])
def test_booleans_accept_the_usual_spellings(text, expected):
    assert parse_bool(text, key="K") is expected


@pytest.mark.parametrize(
    ("key", "value"),
    [("MODELOPS_BUNDLE_CACHE_MAX_BYTES", "lots"), ("MODELOPS_BUNDLE_CACHE_MAX_BYTES", "5 parsecs"),
     ("MODELOPS_BUNDLE_MAX_EXTRACT_BYTES", "-1"), ("MODELOPS_BUNDLE_INSECURE", "maybe"),
     ("MODELOPS_BUNDLE_TIMEOUT", "soon")],
)
def test_a_bad_setting_names_the_variable_and_its_value(key, value):
    with pytest.raises(ConfigurationError) as info:
        BundleSettings.from_env({key: value})
    assert key in str(info.value) and repr(value) in str(info.value), (
        f"error should name {key} and the bad value {value!r}; got: {info.value}"
    )


@pytest.mark.parametrize("registry", ["127.0.0.1:5000", "localhost:5000", "localhost", "127.3.4.5", "[::1]:5000"])
def test_loopback_registries_use_plain_http_without_being_asked(registry):
    assert use_plain_http(registry, None) is True, f"{registry} is loopback: expected plain HTTP"


@pytest.mark.parametrize("registry", ["registry.example.com", "registry.example.com:5000", "10.0.0.5:5000",
                                      "myreg.azurecr.io", "localhost.example.com"])
def test_remote_registries_use_https_unless_insecure_is_set(registry):
    assert use_plain_http(registry, None) is False, f"{registry} is remote: expected HTTPS by default"
    assert use_plain_http(registry, False) is False


def test_insecure_mode_allows_plain_http_for_a_remote_registry():
    assert use_plain_http("registry.example.com:5000", True) is True


@pytest.mark.parametrize("registry", ["myreg.azurecr.io", "MyReg.AzureCR.io", "myreg.azurecr.io:443"])
def test_insecure_mode_is_refused_for_azure_container_registry(registry):
    with pytest.raises(ConfigurationError) as info:
        use_plain_http(registry, True)
    assert registry in str(info.value) and "MODELOPS_BUNDLE_INSECURE" in str(info.value), (
        f"refusal should name the registry and the setting; got: {info.value}"
    )
    with pytest.raises(ConfigurationError):
        RegistryClient(registry, insecure=True, environ={})


def test_client_scheme_follows_the_plain_http_rules():
    with RegistryClient("127.0.0.1:5000", environ={}) as local, RegistryClient("reg.example", environ={}) as remote:
        assert (local.scheme, remote.scheme) == ("http", "https")
