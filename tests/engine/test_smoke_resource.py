"""``BundleSmokeTest`` on its own, through the real engine: unreachable registry, secrets in state."""

from __future__ import annotations

import time

import pytest

from harness.pulumi import make_project
from harness.services import free_port

pytestmark = pytest.mark.engine

PROGRAM = """
import pulumi
from modelops_infra.infra.smoke import BundleSmokeTest, BundleSmokeTestArgs, resolve_smoke_bundle

bundle, digest = resolve_smoke_bundle(None)
smoke = BundleSmokeTest("smoke", BundleSmokeTestArgs(
    login_server="127.0.0.1:{registry_port}", bundle=bundle, bundle_digest=digest,
    scheduler_address="tcp://127.0.0.1:{scheduler_port}", timeout=20,
    registry_username="robot", registry_password=pulumi.Config().require_secret("registryPassword")))
pulumi.export("bundle_ref", smoke.bundle_ref)
"""
SECRET = "pl41n-text-must-not-appear-7f3a"


def test_unreachable_registry_fails_at_push_quickly_and_secrets_stay_secret(tmp_path):
    project = make_project(tmp_path / "p", PROGRAM.format(registry_port=free_port(), scheduler_port=free_port()))
    project.run("config", "set", "--secret", "registryPassword", SECRET)
    start = time.monotonic()
    result = project.up(check=False)
    elapsed = time.monotonic() - start
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "SmokeTestError: push: registry 127.0.0.1:" in text and "unreachable" in text, text[-3000:]
    assert elapsed < 120, f"an unreachable registry must fail within a bounded time, took {elapsed:.0f} s"
    assert SECRET not in text, "the registry password leaked into pulumi's output"
    state_files = list((tmp_path / "p" / "state").rglob("*.json"))
    assert state_files and not any(SECRET in f.read_text() for f in state_files), "password in plain text in state"
    assert not any(SECRET in f.read_text() for f in (tmp_path / "p").glob("Pulumi.*.yaml"))


PASSING = """
import pulumi
from modelops_infra.infra.smoke import BundleSmokeTest, BundleSmokeTestArgs, resolve_smoke_bundle

bundle, digest = resolve_smoke_bundle(None)
smoke = BundleSmokeTest("smoke", BundleSmokeTestArgs(
    login_server="{registry}", bundle=bundle, bundle_digest=digest, scheduler_address="{scheduler}", timeout=60,
    kubeconfig=None, registry_username="robot",
    registry_password=pulumi.Config().require_secret("registryPassword")))
pulumi.export("bundle_ref", smoke.bundle_ref)
pulumi.export("passed", smoke.passed)
"""


def test_credentials_are_encrypted_in_state_after_a_passing_run(tmp_path, registry, cluster):
    project = make_project(tmp_path / "p", PASSING.format(registry=registry.address,
                                                          scheduler=cluster.scheduler_address))
    project.run("config", "set", "--secret", "registryPassword", SECRET)
    result = project.up()
    assert SECRET not in result.stdout + result.stderr
    assert project.outputs()["passed"] is True
    (smoke,) = project.resources("BundleSmokeTest")
    assert "registry_password" not in smoke["outputs"], "credentials must never be outputs"
    state_text = "".join(f.read_text() for f in (tmp_path / "p" / "state").rglob("*.json"))
    assert SECRET not in state_text, "the registry password is in plain text in the state"
    assert "ciphertext" in state_text, "secret inputs must be stored encrypted"
    project.run("destroy", "--yes", "--skip-preview")


STAGED = """
import pulumi
from modelops_infra.infra.smoke import BundleSmokeTest, BundleSmokeTestArgs, resolve_smoke_bundle

bundle, digest = resolve_smoke_bundle({bundle!r})
smoke = BundleSmokeTest("smoke", BundleSmokeTestArgs(
    login_server="{registry}", bundle=bundle, bundle_digest=digest, scheduler_address="{scheduler}", timeout=5))
pulumi.export("bundle_ref", smoke.bundle_ref)
"""


def _fails(project) -> str:
    result = project.up(check=False)
    assert result.returncode != 0, "the deploy must fail"
    assert project.resources("BundleSmokeTest") == [], "a failed smoke test must leave nothing in the stack"
    return result.stdout + result.stderr


def test_an_unreachable_scheduler_fails_the_deploy_at_connect(tmp_path, registry):
    project = make_project(tmp_path / "p", STAGED.format(bundle=None, registry=registry.address,
                                                         scheduler=f"tcp://127.0.0.1:{free_port()}"))
    text = _fails(project)
    assert "SmokeTestError: connect: cannot reach scheduler tcp://127.0.0.1:" in text, text[-3000:]


def test_a_scheduler_without_workers_fails_the_deploy_at_workers_within_the_timeout(tmp_path, registry):
    from harness.services import start_dask

    empty = start_dask(tmp_path / "dask", workers=0)
    try:
        project = make_project(tmp_path / "p", STAGED.format(bundle=None, registry=registry.address,
                                                             scheduler=empty.scheduler_address))
        text = _fails(project)
        assert "SmokeTestError: workers: no worker within 5 s" in text, text[-3000:]
    finally:
        empty.stop()


def test_an_invalid_bundle_fails_the_preview_at_pack_naming_the_key_and_problem(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"name": "bad", "version": "1"}')
    project = make_project(tmp_path / "p")  # the real program: its main() is the edge that renders the stage
    project.run("config", "set", "modelops:cloud", "local")
    project.config("modelops:smokeTest.bundle", str(bad))
    result = project.run("preview", check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    assert "pack: modelops:smokeTest.bundle: " in text, text[-3000:]
    assert "missing required field 'entrypoint'" in text, text[-3000:]
    shown = [line for line in text.splitlines() if "modelops:smokeTest.bundle: " in line]
    assert shown and all(line.count("pack") == 1 for line in shown), f"each message shows the stage once:\n{shown}"
