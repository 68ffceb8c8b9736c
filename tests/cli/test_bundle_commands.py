"""``mops bundle validate|push|pull|inspect`` against a real distribution registry."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from modelops_infra.cli import ExitCode

PINNED = re.compile(r"^(?P<registry>[^/]+)/(?P<repo>[a-z0-9/._-]+)@sha256:[0-9a-f]{64}$")


def _broken_bundle(root: Path) -> Path:
    """A bundle with three independent problems."""
    root.mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"name": "broken", "version": "1", "entrypoint": "sim:run"}))
    (root / "sim.py").write_text("def other(params, seed):\n    return {}\n")  # no run()
    (root / "requirements.txt").write_text("numpy>=1.0\nthis is not a requirement!!\n")
    (root / ".bundleignore").write_text("*.csv\n!keep.csv\n")  # negation is unsupported
    return root


def test_validate_accepts_a_good_bundle(mops, make_bundle) -> None:
    result = mops("bundle", "validate", make_bundle("good"))
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert "valid bundle good 1.0.0" in result.stdout


def test_validate_lists_every_problem_and_exits_1(mops, tmp_path) -> None:
    bundle = _broken_bundle(tmp_path / "broken")
    result = mops("bundle", "validate", bundle)
    assert result.exit_code == ExitCode.FAILURE, result.output
    problems = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
    assert len(problems) == 3, f"expected all three problems listed, got:\n{result.stdout}"
    assert any(".bundleignore:2" in p for p in problems)
    assert any("does not define function 'run'" in p for p in problems)
    assert any("requirements.txt:2" in p for p in problems)
    assert result.stderr.strip() == f"mops: error: bundle {bundle} is invalid (3 problems) (hint: fix the problems listed above)"


def test_dev_validate_bundle_is_an_alias_of_bundle_validate(mops, tmp_path) -> None:
    bundle = _broken_bundle(tmp_path / "broken")
    alias, original = mops("dev", "validate-bundle", bundle), mops("bundle", "validate", bundle)
    assert alias.exit_code == original.exit_code == ExitCode.FAILURE
    assert alias.stdout == original.stdout


def test_validate_json_is_one_object_with_the_problems(mops, tmp_path) -> None:
    result = mops("bundle", "validate", "--json", _broken_bundle(tmp_path / "broken"))
    assert result.exit_code == ExitCode.FAILURE
    data = json.loads(result.stdout)
    assert data["ok"] is False and len(data["problems"]) == 3


def test_push_prints_the_pinned_reference_as_its_last_line(mops, make_bundle, registry) -> None:
    result = mops("bundle", "push", make_bundle("pushme"), "--registry", registry.address)
    assert result.exit_code == ExitCode.SUCCESS, result.output
    last = result.stdout.strip().splitlines()[-1]
    match = PINNED.match(last)
    assert match, f"last stdout line should be registry/repo@sha256:..., got {last!r}"
    assert match["registry"] == registry.address and match["repo"] == "modelops/bundles"


def test_a_repush_uploads_nothing_and_gives_the_same_reference(mops, make_bundle, registry) -> None:
    bundle = make_bundle("again")
    first = json.loads(mops("bundle", "push", bundle, "-r", registry.address, "--json").stdout)
    second = json.loads(mops("bundle", "push", bundle, "-r", registry.address, "--json").stdout)
    assert second["reference"] == first["reference"]
    assert second["bytes_uploaded"] == 0 and second["blobs_uploaded"] == 0


def test_push_json_shape(mops, make_bundle, registry) -> None:
    result = mops("bundle", "push", make_bundle("shape"), "-r", registry.address, "--repository", "team/sims",
                  "--tag", "v1", "--json")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    data = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert set(data) >= {"reference", "digest", "bytes_uploaded", "blobs_uploaded", "blobs_skipped", "total_bytes",
                         "tag", "name", "version"}
    assert data["reference"] == f"{registry.address}/team/sims@{data['digest']}"
    assert data["tag"] == "v1" and data["name"] == "shape"


def test_push_of_an_invalid_bundle_exits_1_before_any_network_io(mops, tmp_path) -> None:
    result = mops("bundle", "push", _broken_bundle(tmp_path / "broken"), "--registry", "127.0.0.1:1")
    assert result.exit_code == ExitCode.FAILURE
    assert "invalid (3 problems)" in result.stderr


def test_push_to_a_registry_that_is_down_fails_quickly_with_a_registry_error(mops, make_bundle, monkeypatch) -> None:
    monkeypatch.setenv("MODELOPS_BUNDLE_TIMEOUT", "2")
    start = time.monotonic()
    result = mops("bundle", "push", make_bundle("down"), "--registry", "127.0.0.1:1")
    assert result.exit_code == ExitCode.REGISTRY, result.output
    assert "127.0.0.1:1" in result.stderr
    assert time.monotonic() - start < 60, "bounded retries should give up well within a minute"


def test_push_without_registry_falls_back_to_get_registry_url(mops, make_bundle, registry, monkeypatch) -> None:
    monkeypatch.setenv("MODELOPS_BUNDLE_REGISTRY", registry.address)
    result = mops("bundle", "push", make_bundle("fallback"))
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert result.stdout.strip().splitlines()[-1].startswith(f"{registry.address}/modelops/bundles@sha256:")


def test_push_without_any_registry_names_both_places_it_looked(mops, make_bundle, isolated_env) -> None:
    result = mops("bundle", "push", make_bundle("nowhere"))
    assert result.exit_code == ExitCode.CONFIG
    assert "MODELOPS_BUNDLE_REGISTRY" in result.stderr
    assert str(isolated_env / ".modelops" / "bundle-env" / "dev.yaml") in result.stderr


def test_pull_round_trips_the_bundle_files(mops, make_bundle, registry, tmp_path) -> None:
    bundle = make_bundle("roundtrip", {"sim.py": "def run(params, seed):\n    return {}\n", "data/x.txt": "hello"})
    ref = mops("bundle", "push", bundle, "-r", registry.address).stdout.strip().splitlines()[-1]
    dest = tmp_path / "pulled"
    result = mops("bundle", "pull", ref, "--dest", dest)
    assert result.exit_code == ExitCode.SUCCESS, result.output
    assert (dest / "data" / "x.txt").read_text() == "hello"
    assert json.loads((dest / "manifest.json").read_text())["name"] == "roundtrip"
    assert result.stdout.strip().splitlines()[-1] == str(dest)


def test_pull_by_tag_resolves_on_the_client(mops, make_bundle, registry, tmp_path) -> None:
    mops("bundle", "push", make_bundle("tagged"), "-r", registry.address, "--repository", "tags/demo", "--tag", "v2")
    result = mops("bundle", "pull", f"{registry.address}/tags/demo:v2", "--dest", tmp_path / "out", "--json")
    assert result.exit_code == ExitCode.SUCCESS, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "tagged" and data["digest"].startswith("sha256:")


def test_pull_of_an_unknown_digest_exits_not_found(mops, registry, tmp_path) -> None:
    result = mops("bundle", "pull", f"{registry.address}/modelops/bundles@sha256:{'0' * 64}", "--dest", tmp_path / "d")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert "sha256:000000" in result.stderr


def test_pull_refuses_a_non_empty_destination(mops, make_bundle, registry, tmp_path) -> None:
    ref = mops("bundle", "push", make_bundle("busy"), "-r", registry.address).stdout.strip().splitlines()[-1]
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    result = mops("bundle", "pull", ref, "--dest", dest)
    assert result.exit_code == ExitCode.CONFIG
    assert (dest / "keep.txt").read_text() == "mine"


def test_inspect_shows_manifest_files_and_sizes(mops, make_bundle, registry) -> None:
    big = b"\0" * (2 * 1024 * 1024)  # above the per-file blob threshold? either way it is listed by size
    bundle = make_bundle("inspectme", {"sim.py": "def run(params, seed):\n    return {}\n", "data.bin": big})
    ref = mops("bundle", "push", bundle, "-r", registry.address).stdout.strip().splitlines()[-1]
    result = mops("bundle", "inspect", ref)
    assert result.exit_code == ExitCode.SUCCESS, result.output
    for text in (ref, "inspectme", "1.0.0", "sim:run", "total size", "manifest.json", "sim.py", "data.bin",
                 "2.0 MiB", "code layer", "own blob"):
        assert text in result.stdout, f"{text!r} missing from inspect output:\n{result.stdout}"


def test_inspect_json_shape(mops, make_bundle, registry) -> None:
    ref = mops("bundle", "push", make_bundle("inspectjson"), "-r", registry.address).stdout.strip().splitlines()[-1]
    data = json.loads(mops("bundle", "inspect", ref, "--json").stdout)
    assert data["reference"] == ref
    assert data["bundle"]["name"] == "inspectjson"
    assert data["layers"] and all({"digest", "size", "mediaType"} <= set(layer) for layer in data["layers"])
    assert data["total_bytes"] >= sum(layer["size"] for layer in data["layers"])


def test_no_progress_bar_when_stdout_is_not_a_terminal(mops, make_bundle, registry) -> None:
    big = bytes(range(256)) * (6 * 4096)  # ~6 MiB: over the progress threshold
    bundle = make_bundle("quiet", {"sim.py": "def run(params, seed):\n    return {}\n", "big.bin": big})
    result = mops("bundle", "push", bundle, "-r", registry.address)
    assert result.exit_code == ExitCode.SUCCESS
    assert "\r" not in result.output and "━" not in result.output, "a progress bar was drawn on a non-terminal"


def test_the_environment_key_is_shown_for_the_workers_python_and_platform_when_given(mops, make_bundle, registry):
    from modelops_infra.bundles import PythonTarget, environment_key, find_environment, push_bundle

    root = make_bundle("keyed", requirements="six==1.16.0\n")
    spec, _ = find_environment(root)
    assert spec is not None
    here = json.loads(mops("bundle", "validate", root, "--json").stdout)["environment"]
    assert here["key"] == environment_key(spec, PythonTarget.current())
    workers = PythonTarget(PythonTarget.current().implementation, "3.12", "linux-aarch64")
    there = json.loads(mops("bundle", "validate", root, "--json", "--python", "3.12",
                            "--platform", "linux-aarch64").stdout)["environment"]
    assert there["key"] == environment_key(spec, workers) != here["key"]
    assert there["python"].endswith("3.12 on linux-aarch64")
    ref = str(push_bundle(root, registry.address).reference)
    shown = mops("bundle", "inspect", ref, "--python", "3.12", "--platform", "linux-aarch64").stdout
    assert f"env key       {environment_key(spec, workers)} (for" in shown, shown
    bad = mops("bundle", "validate", root, "--python", "3")
    assert bad.exit_code == ExitCode.CONFIG and "--python '3' is not a major.minor version" in bad.output


def test_push_wheels_stores_a_wheel_shared_by_two_bundles_once(mops, make_bundle, fresh_registry, package_index,
                                                               monkeypatch) -> None:
    """``--wheels`` on the command line and ``"wheels": true`` in a manifest push the same wheel blob; the
    second push finds it in the registry and uploads none of its bytes."""
    monkeypatch.setenv("MODELOPS_BUNDLE_INDEX_URL", package_index.url)  # resolve on loopback
    first = make_bundle("wheels-a", {"sim.py": "import six\n\ndef run(p, s):\n    return {}\n"},
                        requirements="six==1.17.0\n")
    second = make_bundle("wheels-b", {"sim.py": "import six\n\ndef run(p, s):\n    return {'b': 1}\n"},
                         requirements="six==1.17.0\n")
    manifest = json.loads((second / "manifest.json").read_text())
    (second / "manifest.json").write_text(json.dumps({**manifest, "wheels": True}))
    a = json.loads(mops("bundle", "push", first, "-r", fresh_registry.address, "--wheels", "--json").stdout)
    b = json.loads(mops("bundle", "push", second, "-r", fresh_registry.address, "--json").stdout)
    wheel = next(package_index.root.glob("files/six-1.17.0-*.whl"))

    def wheels_of(pushed: dict) -> list[str]:
        info = json.loads(mops("bundle", "inspect", pushed["reference"], "--json").stdout)
        return [w["digest"] for w in info["wheels"]]

    assert wheels_of(a) == wheels_of(b) and len(wheels_of(a)) == 1, "both bundles reference one wheel blob"
    assert a["bytes_uploaded"] >= wheel.stat().st_size
    assert b["blobs_skipped"] >= 1 and b["bytes_uploaded"] < wheel.stat().st_size, b
