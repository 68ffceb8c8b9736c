"""The ``WorkerImage`` dynamic provider: check resolves the base, diff rebuilds only on what matters, create builds.

``check`` and ``create`` run against a real registry on loopback; the base is a
tiny one-layer image holding ``/usr/bin/python3.11`` (the venv is built on this
host, so the base's interpreter is only a path here).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from harness.images import PushedImage, push_tiny_image
from harness.services import REPO_ROOT, Registry, free_port
from modelops_infra.bundles import RegistryClient
from modelops_infra.infra.image import WorkerInstall
from modelops_infra.infra.image.provider import REBUILD_KEYS, WorkerImageProvider, _client_factory, _target_credentials

PYTHON = "%d.%d" % sys.version_info[:2]


@pytest.fixture(scope="module")
def tiny_base(registry: Registry) -> PushedImage:
    with RegistryClient(registry.address) as client:
        return push_tiny_image(client, "base/tiny", "py", files={f"usr/bin/python{PYTHON}": b""})


def _inputs(registry: Registry, **over: Any) -> dict[str, Any]:
    props = {
        "base_image": f"{registry.address}/base/tiny:py",
        "target": f"{registry.address}/provider/worker",
        "checkout": str(REPO_ROOT),
        "extra_packages": [],
        "tag": "t1",
        "python_version": PYTHON,
        "install_hash": WorkerInstall(REPO_ROOT, extra_packages=()).content_hash(PYTHON),
        "base_digest": None,
    }
    props.update(over)
    return props


def test_check_pins_the_base_to_its_linux_amd64_digest(registry: Registry, tiny_base: PushedImage) -> None:
    result = WorkerImageProvider().check({}, _inputs(registry))
    assert result.failures == []
    assert result.inputs["base_digest"] == tiny_base.digest


def test_check_fails_preview_naming_an_unreachable_base() -> None:
    base = f"127.0.0.1:{free_port()}/base/python:3.11"
    result = WorkerImageProvider().check({}, {"base_image": base, "target": UNKNOWN})
    assert [f.property for f in result.failures] == ["base_image"]
    assert base in result.failures[0].reason and "unreachable" in result.failures[0].reason
    assert result.failures[0].reason.startswith(f"base: base image {base}"), \
        f"the provider is an edge: it shows the stage once, in front: {result.failures[0].reason}"


def test_a_failed_build_reaches_the_engine_as_one_line_starting_with_the_stage(registry: Registry) -> None:
    from modelops_infra.errors import ImageBuildError

    base = f"127.0.0.1:{free_port()}/base/python:3.11"
    with pytest.raises(ImageBuildError) as info:
        WorkerImageProvider().create(_inputs(registry, base_image=base))
    assert str(info.value).startswith(f"base: base image {base}"), str(info.value)
    assert str(info.value).count("base:") == 1, f"the stage is shown once: {info.value}"
    assert info.value.__cause__ is None and info.value.__suppress_context__, \
        "the engine prints the chain: the original (same message) must not be printed again"


def test_check_accepts_a_target_that_is_not_known_at_preview(registry: Registry, tiny_base: PushedImage) -> None:
    assert WorkerImageProvider().check({}, _inputs(registry, target=UNKNOWN)).failures == []


@pytest.mark.parametrize("key", REBUILD_KEYS)
def test_a_change_of_each_rebuild_input_rebuilds(key: str) -> None:
    olds = {k: "old" for k in (*REBUILD_KEYS, "tag")}
    assert WorkerImageProvider().diff("id", olds, {**olds, key: "new"}).changes


def test_nothing_else_rebuilds_and_a_tag_change_keeps_the_image() -> None:
    olds = {**{k: "same" for k in REBUILD_KEYS}, "tag": "a", "checkout": "/one", "image_ref": "r@sha256:x",
            "digest": "sha256:x", "layer_digest": "sha256:y"}
    provider = WorkerImageProvider()
    assert not provider.diff("id", olds, {**olds, "checkout": "/elsewhere"}).changes
    assert provider.diff("id", olds, {**olds, "tag": "b"}).changes
    outs = provider.update("id", olds, {**olds, "tag": None}).outs  # builds nothing, tags nothing: no registry here
    assert (outs["image_ref"], outs["digest"], outs["tag"]) == ("r@sha256:x", "sha256:x", None)


def test_create_builds_and_pushes_and_a_noop_up_changes_nothing(registry: Registry, tiny_base: PushedImage,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOPS_IMAGE_LAYER_CACHE", str(tmp_path / "layers"))  # read when the provider builds
    provider = WorkerImageProvider()
    checked = provider.check({}, _inputs(registry)).inputs
    created = provider.create(checked)
    outs = created.outs
    assert outs["image_ref"] == f"{registry.address}/provider/worker@{outs['digest']}"
    assert created.id.startswith("worker-image-")
    with RegistryClient(registry.address) as client:
        assert client.manifest_exists("provider/worker", outs["digest"])
        assert client.resolve("provider/worker", "t1") == outs["digest"], "the tag names the same manifest"
    again = provider.check(outs, _inputs(registry))
    assert not provider.diff(created.id, outs, again.inputs).changes, "a no-op up must not rebuild"
    assert not any(k.startswith("__") or "password" in k or "credential" in k for k in outs), sorted(outs)
    assert len(list((tmp_path / "layers").iterdir())) == 1, "the dependencies layer is kept where the env says"
    retagged = provider.update(created.id, outs, {**again.inputs, "tag": "t2"}).outs
    assert (retagged["digest"], retagged["tag"]) == (outs["digest"], "t2"), "a new tag keeps the image"
    with RegistryClient(registry.address) as client:
        assert client.resolve("provider/worker", "t2") == outs["digest"], "and the new tag names it in the registry"


def test_stack_credentials_are_used_for_the_push_and_never_kept_in_the_outputs() -> None:
    olds = {**{k: "same" for k in REBUILD_KEYS}, "tag": "a", "image_ref": "r@sha256:x", "digest": "sha256:x",
            "layer_digest": "sha256:y"}
    news = {**olds, "tag": None, "registry_username": "robot", "registry_password": "pa55-do-not-leak"}
    outs = WorkerImageProvider().update("id", olds, news).outs  # tag removed: builds and tags nothing
    assert outs["registry_username"] == "robot"
    assert "registry_password" not in outs, "the password is a secret input, never an output"
    creds = _target_credentials(news)
    assert creds is not None and (creds.username, creds.password) == ("robot", "pa55-do-not-leak")
    assert _target_credentials({"registry_username": None}) is None, "no stack credentials: found per host"


def test_insecure_means_plain_http_to_the_target_registry_only() -> None:
    factory = _client_factory({"target": "10.233.0.2:5000/modelops/dask-worker", "insecure": True})
    with factory("10.233.0.2:5000", None) as target, factory("registry.example.com", None) as base:
        assert (target.scheme, base.scheme) == ("http", "https")
    with _client_factory({"target": "10.233.0.2:5000/modelops/dask-worker"})("10.233.0.2:5000", None) as client:
        assert client.scheme == "https", "HTTPS unless insecure is asked for"


def test_a_base_pinned_by_digest_is_resolved_once_and_a_tag_every_time(registry: Registry,
                                                                        tiny_base: PushedImage) -> None:
    provider = WorkerImageProvider()
    pinned = f"{registry.address}/base/tiny@{tiny_base.digest}"
    first = provider.check({}, _inputs(registry, base_image=pinned)).inputs
    assert first["base_digest"] == tiny_base.digest
    before = registry.requests_matching("GET", "/base/tiny/manifests/")
    again = provider.check(first, _inputs(registry, base_image=pinned))
    assert again.failures == [] and again.inputs["base_digest"] == tiny_base.digest
    assert registry.requests_matching("GET", "/base/tiny/manifests/") == before, "a pinned base asks the registry nothing"
    tagged = _inputs(registry)
    checked = provider.check({}, tagged).inputs
    provider.check(checked, tagged)
    assert registry.requests_matching("GET", "/base/tiny/manifests/") > before, "a tag may move: it is resolved again"
    moved = provider.check({**first, "base_digest": "sha256:" + "0" * 64},
                           _inputs(registry, base_image=f"{registry.address}/base/tiny@{tiny_base.digest}x"))
    assert moved.failures, "another pinned reference is resolved, not taken from the old inputs"
