"""``mops env write``: stack outputs -> ~/.modelops/bundle-env/<env>.yaml (0600), read by get_registry_url.

The ``pulumi`` here is a stand-in script on PATH that prints what ``pulumi stack
output --json`` prints and records its arguments; the real engine is exercised
by the end-to-end stack tests.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from modelops_infra.cli import ExitCode
from modelops_infra.client import get_registry_url, load_bundle_env


def _fake_pulumi(bin_dir: Path, *, stdout: str = "", stderr: str = "", code: int = 0) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "pulumi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" > "{bin_dir}/args"\n'
        f'echo "${{PULUMI_BACKEND_URL-unset}}|${{PULUMI_CONFIG_PASSPHRASE-unset}}" > "{bin_dir}/env"\n'
        f"/bin/cat <<'OUT'\n{stdout}\nOUT\n"
        f"/bin/cat >&2 <<'ERR'\n{stderr}\nERR\n"
        f"exit {code}\n"
    )
    script.chmod(0o755)
    return bin_dir


@pytest.fixture
def pulumi_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def _install(**kw) -> Path:
        bin_dir = _fake_pulumi(tmp_path / "bin", **kw)
        monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
        return bin_dir

    return _install


OUTPUTS = {"acr_login_server": "127.0.0.1:5999", "scheduler_address": "tcp://127.0.0.1:8799",
           "dashboard_url": "http://127.0.0.1:8787"}


def test_env_write_records_registry_and_scheduler_with_mode_0600(mops, pulumi_on_path, isolated_env) -> None:
    bin_dir = pulumi_on_path(stdout=json.dumps(OUTPUTS))
    result = mops("env", "write", "--stack", "local")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    path = isolated_env / ".modelops" / "bundle-env" / "local.yaml"
    assert result.stdout.strip().splitlines()[-1] == f"wrote {path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {"registry": {"login_server": "127.0.0.1:5999"},
                                                "scheduler": {"address": "tcp://127.0.0.1:8799"}}
    assert (bin_dir / "args").read_text().split() == ["stack", "output", "--json", "--stack", "local"]


def test_get_registry_url_and_dev_commands_find_what_env_write_wrote(mops, pulumi_on_path) -> None:
    pulumi_on_path(stdout=json.dumps(OUTPUTS))
    assert mops("env", "write", "--stack", "prod-eu", "--env", "prod").exit_code == ExitCode.SUCCESS
    assert get_registry_url("prod") == "127.0.0.1:5999"
    loaded = load_bundle_env("prod")
    assert loaded is not None and loaded.scheduler_address == "tcp://127.0.0.1:8799"


def test_env_write_without_stack_uses_the_selected_stack_and_env_dev(mops, pulumi_on_path, isolated_env) -> None:
    bin_dir = pulumi_on_path(stdout=json.dumps({"acr_login_server": "myacr.azurecr.io"}))
    result = mops("env", "write", "--json")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    data = json.loads(result.stdout)
    assert data == {"env": "dev", "path": str(isolated_env / ".modelops/bundle-env/dev.yaml"),
                    "registry": "myacr.azurecr.io", "scheduler_address": None}
    assert (bin_dir / "args").read_text().split() == ["stack", "output", "--json"]


def test_env_write_names_the_missing_output(mops, pulumi_on_path, isolated_env) -> None:
    pulumi_on_path(stdout=json.dumps({"dashboard_url": "x"}))
    result = mops("env", "write", "--stack", "half")
    assert result.exit_code == ExitCode.CONFIG
    assert "stack 'half' has no usable output 'acr_login_server' (outputs: dashboard_url)" in result.stderr
    assert not (isolated_env / ".modelops" / "bundle-env" / "half.yaml").exists()


def test_env_write_reports_pulumis_own_error(mops, pulumi_on_path) -> None:
    pulumi_on_path(stderr="error: no stack named 'nope' found", code=255)
    result = mops("env", "write", "--stack", "nope")
    assert result.exit_code == ExitCode.CONFIG
    assert "failed (exit 255): error: no stack named 'nope' found" in result.stderr


def test_env_write_without_a_pulumi_cli_says_how_to_get_one(mops, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.chdir(tmp_path)
    result = mops("env", "write", "--stack", "local")
    assert result.exit_code == ExitCode.CONFIG
    assert "no pulumi CLI on PATH" in result.stderr and "make up" in result.stderr


def test_env_write_falls_back_to_the_project_local_cli(mops, tmp_path, monkeypatch, isolated_env) -> None:
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: modelops\nruntime: python\n")
    _fake_pulumi(project / ".modelops" / "bin", stdout=json.dumps(OUTPUTS))
    (project / ".modelops" / "state").mkdir()
    for var in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.chdir(project / "sub")
    result = mops("env", "write", "--stack", "staging", "--env", "local")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert get_registry_url("local") == "127.0.0.1:5999"
    backend, passphrase = (project / ".modelops" / "bin" / "env").read_text().strip().split("|")
    assert backend == f"file://{project / '.modelops' / 'state'}", "the project's local backend is used"
    assert passphrase == "", "the local backend's documented empty passphrase is used"


def test_a_configured_backend_and_passphrase_are_left_alone(mops, pulumi_on_path, monkeypatch) -> None:
    monkeypatch.setenv("PULUMI_BACKEND_URL", "s3://team-state")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "team-secret")
    bin_dir = pulumi_on_path(stdout=json.dumps(OUTPUTS))
    assert mops("env", "write", "--stack", "local").exit_code == ExitCode.SUCCESS
    assert (bin_dir / "env").read_text().strip() == "s3://team-state|team-secret"
