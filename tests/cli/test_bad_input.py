"""Bad input gets one clear stderr line and a named exit code, never "internal error" (exit 70).

Each case is what a user can type or leave lying around: a malformed
--registry, --repository, --tag, --dest or --scheduler, a nonsense timeout, a
Docker config that is not an object, a reference to something that is not a bundle.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from modelops_infra.bundles import (
    CONFIG_MEDIA_TYPE,
    BlobSource,
    Descriptor,
    RegistryClient,
    digest_bytes,
    pack_bundle,
    push_packed,
)
from modelops_infra.cli import ExitCode

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected exactly one stderr line, got: {result.stderr!r}"
    assert lines[0].startswith("mops: error: ") and "internal error" not in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--registry", "127.0.0.1:99999"], ExitCode.CONFIG, "--registry '127.0.0.1:99999'"),
    (["--registry", "127.0.0.1:"], ExitCode.CONFIG, "port after ':' is empty"),
    (["--registry", "me@127.0.0.1:5000"], ExitCode.CONFIG, "userinfo"),
    (["--registry", "127.0.0.1:5000", "--repository", "../x"], ExitCode.USAGE, "--repository '../x'"),
    (["--registry", "127.0.0.1:5000", "--repository", "Team/X"], ExitCode.USAGE, "--repository 'Team/X'"),
    (["--registry", "127.0.0.1:5000", "--tag", "v1?x=1"], ExitCode.USAGE, "--tag 'v1?x=1'"),
    (["--registry", "127.0.0.1:5000", "--tag", "../v1"], ExitCode.USAGE, "--tag '../v1'"),
])
def test_a_malformed_push_option_is_refused_before_packing_naming_the_option(mops, make_bundle, args, code, needle):
    started = time.monotonic()
    result = mops("bundle", "push", make_bundle("opts"), *args)
    assert result.exit_code == code, f"expected exit {code.name}; got {result.exit_code}: {result.output}"
    assert needle in one_error_line(result)
    assert time.monotonic() - started < 5, "a malformed option should fail at once, without network I/O"


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_a_timeout_that_is_not_positive_and_finite_is_a_config_error(mops, monkeypatch, value):
    monkeypatch.setenv("MODELOPS_BUNDLE_TIMEOUT", value)
    result = mops("bundle", "inspect", "127.0.0.1:5000/a/b@sha256:" + "0" * 64)
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert f"MODELOPS_BUNDLE_TIMEOUT={value!r}" in one_error_line(result)


@pytest.mark.parametrize("content", ["[]", '"auths"', "42", '{"auths": []}'])
def test_a_docker_config_that_is_not_an_object_is_a_config_error_naming_it(mops, make_bundle, registry, tmp_path,
                                                                           monkeypatch, content):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(content)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    result = mops("bundle", "push", make_bundle("dockercfg"), "--registry", registry.address)
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert str(tmp_path / "docker" / "config.json") in one_error_line(result)


@pytest.fixture
def pushed(registry, make_bundle) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """A real bundle, plus an image index and a foreign artifact next to it: (bundle digest, repository)."""
    with RegistryClient(registry.address, environ={}) as client:
        result = push_packed(client, pack_bundle(make_bundle("indexed")), "tests/odd", tag="bundle")
        index = json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
            {"mediaType": MANIFEST, "digest": result.digest, "size": 1}]}).encode()
        client.put_manifest("tests/odd", "index", index, media_type=INDEX)
        config = b"{}"
        client.upload_blob("tests/odd", BlobSource(Descriptor("application/vnd.oci.image.config.v1+json",
                                                              digest_bytes(config), len(config)), data=config))
        foreign = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST, "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_bytes(config), "size": 2},
            "layers": []}).encode()
        client.put_manifest("tests/odd", "foreign", foreign)
    yield result.digest, "tests/odd"


@pytest.mark.parametrize(("tag", "needle"), [("index", "image index"), ("foreign", "is not a modelops bundle")])
def test_inspect_of_something_that_is_not_a_bundle_is_an_integrity_error(mops, registry, pushed, tag, needle):
    result = mops("bundle", "inspect", f"{registry.address}/tests/odd:{tag}")
    assert result.exit_code == ExitCode.INTEGRITY, result.output
    line = one_error_line(result)
    assert needle in line and "tests/odd" in line, line
    assert CONFIG_MEDIA_TYPE not in line or tag == "foreign"


def test_pull_onto_an_existing_file_is_a_config_error_and_fetches_nothing(mops, registry, pushed, tmp_path):
    target = tmp_path / "file"
    target.write_text("keep me")
    result = mops("bundle", "pull", f"{registry.address}/tests/odd@{pushed[0]}", "--dest", target)
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert f"--dest {target} exists and is not a directory" in one_error_line(result)
    assert target.read_text() == "keep me"
    assert not (tmp_path / "cache" / "entries" / "sha256" / pushed[0].split(":")[1]).exists(), (
        "a bad --dest should be refused before anything is fetched")


def test_pull_into_an_unwritable_directory_is_a_config_error(mops, registry, pushed, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    subprocess.run(["chattr", "+i", str(locked)], check=True)  # immutable: not even root may create in it
    try:
        result = mops("bundle", "pull", f"{registry.address}/tests/odd@{pushed[0]}", "--dest", locked / "out")
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert result.exit_code == ExitCode.CONFIG, result.output
    line = one_error_line(result)
    assert f"--dest {locked / 'out'} cannot be written" in line, line


def test_a_failed_pull_leaves_no_empty_destination_behind(mops, registry, tmp_path):
    dest = tmp_path / "new" / "dest"
    result = mops("bundle", "pull", f"{registry.address}/tests/ghost@sha256:" + "0" * 64, "--dest", dest)
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert not dest.exists(), "the --dest directory made for a failed pull should be removed"


@pytest.mark.parametrize("address", ["not a scheduler", "tcp://[::1", "tcp://host:port", "foo://bar:1",
                                     "tcp://127.0.0.1:99999"])
def test_a_malformed_scheduler_prints_one_line_and_exits_at_once(mops, address):
    started = time.monotonic()
    result = mops("dev", "test-connection", "--scheduler", address, "--timeout", "5")
    elapsed = time.monotonic() - started
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert f"--scheduler {address!r}" in one_error_line(result)
    assert elapsed < 2, f"a malformed address needs no connection attempt; took {elapsed:.1f} s"


def test_a_malformed_dask_scheduler_variable_is_named(mops, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER", "tcp://nope")
    result = mops("dev", "test-connection")
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "DASK_SCHEDULER 'tcp://nope'" in one_error_line(result)


def test_the_library_probe_refuses_a_malformed_address_without_creating_a_client():
    from modelops_infra.client import probe_scheduler

    started = time.monotonic()
    probe = probe_scheduler("not a scheduler", timeout=5)
    assert not probe.reachable and "not a Dask scheduler address" in (probe.error or ""), probe
    assert time.monotonic() - started < 1




def _bundle_with(make_bundle, case: str):  # type: ignore[no-untyped-def]
    """A valid bundle plus one thing that is not UTF-8: its .bundleignore, or a large file's name."""
    import os

    root = make_bundle("notutf8")
    if case == "ignore":
        (root / ".bundleignore").write_bytes(b"data/*.tmp\n\xff\xfe bad\n")
        return root, ".bundleignore: not UTF-8 text (invalid start byte at byte 11)"
    (root / "data").mkdir()
    with open(os.path.join(os.fsencode(root / "data"), b"big\xff.bin"), "wb") as out:
        out.write(os.urandom(3 * 1024 * 1024))  # large: it would be its own blob, titled by its name
    return root, "data/big\\xff.bin: the name is not UTF-8"


@pytest.mark.parametrize("case", ["ignore", "large-file-name"])
@pytest.mark.parametrize("command", ["validate", "push"])
def test_what_is_not_utf8_in_a_bundle_is_a_validation_problem_naming_it(mops, make_bundle, case, command):
    root, needle = _bundle_with(make_bundle, case)
    args = ["bundle", command, str(root)] + (["--registry", "127.0.0.1:5000"] if command == "push" else [])
    result = mops(*args)
    assert result.exit_code == ExitCode.FAILURE, result.output
    assert needle in result.output, result.output
    one_error_line(result)
