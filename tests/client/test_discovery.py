"""Registry discovery: env var, then ~/.modelops/bundle-env/<env>.yaml, then a clear error."""

from __future__ import annotations

import stat

import pytest

from modelops_infra.client import get_registry_url, load_bundle_env, write_bundle_env
from modelops_infra.errors import ConfigurationError


def test_env_var_wins_over_the_bundle_env_file(tmp_path):
    environ = {"HOME": str(tmp_path), "MODELOPS_BUNDLE_REGISTRY": "fromenv.azurecr.io"}
    write_bundle_env("dev", "fromfile.azurecr.io", environ={"HOME": str(tmp_path)})
    assert get_registry_url("dev", environ=environ) == "fromenv.azurecr.io"


def test_bundle_env_file_is_used_when_env_var_is_unset(tmp_path):
    environ = {"HOME": str(tmp_path)}
    path = write_bundle_env("staging", "stage.azurecr.io", "tcp://sched:8786", environ=environ)
    assert path == tmp_path / ".modelops" / "bundle-env" / "staging.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert get_registry_url("staging", environ=environ) == "stage.azurecr.io"
    assert load_bundle_env("staging", environ=environ).scheduler_address == "tcp://sched:8786"


def test_no_registry_anywhere_names_both_places(tmp_path):
    with pytest.raises(ConfigurationError) as info:
        get_registry_url("prod", environ={"HOME": str(tmp_path)})
    msg = str(info.value)
    assert "MODELOPS_BUNDLE_REGISTRY" in msg
    assert str(tmp_path / ".modelops" / "bundle-env" / "prod.yaml") in msg


def test_malformed_bundle_env_file_names_the_file(tmp_path):
    path = tmp_path / ".modelops" / "bundle-env" / "dev.yaml"
    path.parent.mkdir(parents=True)
    path.write_text("registry: [unclosed\n")
    with pytest.raises(ConfigurationError, match=str(path)):
        get_registry_url("dev", environ={"HOME": str(tmp_path)})
