"""The ``PinnedImage`` dynamic provider: check asks the image's registry, fails on a missing image, pins the rest.

Every check runs against a real registry on loopback (one open, one behind
htpasswd); an unreachable registry is a free loopback port.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pulumi.runtime.rpc import UNKNOWN

from harness.images import PushedImage, push_tiny_image
from harness.services import Registry, free_port, start_registry, write_htpasswd
from modelops_infra.bundles import RegistryClient
from modelops_infra.bundles._auth import BasicCredentials
from modelops_infra.infra.image.pinned import PinnedImageProvider

USER, PASSWORD = "robot", "pinned-pa55-do-not-leak"


@pytest.fixture(scope="module")
def worker(registry: Registry) -> PushedImage:
    with RegistryClient(registry.address) as client:
        return push_tiny_image(client, "pinned/worker", "v1", files={"opt/marker": b"v1"})


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, PushedImage]]:
    root = tmp_path_factory.mktemp("private-registry")
    reg = start_registry(root, htpasswd=write_htpasswd(root / "htpasswd", {USER: PASSWORD}))
    with RegistryClient(reg.address, credentials=BasicCredentials(USER, PASSWORD, "test")) as client:
        image = push_tiny_image(client, "acme/worker", "7", files={"opt/marker": b"private"})
    yield reg, image
    reg.stop()


def _check(image: str, olds: dict[str, Any] | None = None, **props: Any) -> Any:
    return PinnedImageProvider().check(olds or {}, {"image": image, "image_ref": image, **props})


def test_check_pins_a_tag_to_the_digest_the_registry_holds(registry: Registry, worker: PushedImage) -> None:
    result = _check(f"{registry.address}/pinned/worker:v1")
    assert result.failures == []
    assert result.inputs["digest"] == worker.digest
    assert result.inputs["image_ref"] == f"{registry.address}/pinned/worker:v1@{worker.digest}"
    assert result.inputs["unverified"] is None


def test_a_tag_that_moved_changes_the_pin_and_the_diff_and_an_unmoved_one_changes_nothing(
        registry: Registry, worker: PushedImage) -> None:
    provider = PinnedImageProvider()
    image = f"{registry.address}/pinned/moving:latest"
    with RegistryClient(registry.address) as client:
        first = push_tiny_image(client, "pinned/moving", "latest", files={"opt/marker": b"first"})
    olds = provider.outputs(_check(image).inputs)
    again = _check(image, olds).inputs
    assert not provider.diff("id", olds, again).changes, "same tag, same digest: a no-op up changes nothing"
    with RegistryClient(registry.address) as client:
        second = push_tiny_image(client, "pinned/moving", "latest", files={"opt/marker": b"second"})
    moved = _check(image, olds).inputs
    assert (olds["digest"], moved["digest"]) == (first.digest, second.digest)
    assert provider.diff("id", olds, moved).changes, "the tag moved: the workers roll to the new image"


def test_an_image_the_registry_does_not_hold_fails_preview_naming_workers_and_the_registry_answer(
        registry: Registry, worker: PushedImage) -> None:
    for image in (f"{registry.address}/pinned/worker:no-such-tag", f"{registry.address}/pinned/no-such-repo:v1",
                  f"{registry.address}/pinned/worker@sha256:" + "0" * 64):
        result = _check(image)
        assert [f.property for f in result.failures] == ["image"], image
        reason = result.failures[0].reason
        assert reason.startswith(f"workers: image {image} does not exist:"), reason
        assert "not found in registry" in reason and "modelops:workspace.image" in reason, reason


def test_a_pinned_image_that_exists_keeps_its_digest(registry: Registry, worker: PushedImage) -> None:
    image = f"{registry.address}/pinned/worker@{worker.digest}"
    result = _check(image)
    assert result.failures == [] and result.inputs["image_ref"] == image


def test_the_stack_registry_credentials_are_used_for_it_and_the_password_is_never_an_output(
        private: tuple[Registry, PushedImage]) -> None:
    reg, image = private
    ref = f"{reg.address}/acme/worker:7"
    result = _check(ref, registry=reg.address, registry_username=USER, registry_password=PASSWORD)
    assert result.failures == [] and result.inputs["digest"] == image.digest
    outs = PinnedImageProvider().create(result.inputs).outs
    assert "registry_password" not in outs and PASSWORD not in repr(outs)
    assert outs["image_ref"] == f"{ref}@{image.digest}"


def test_credentials_of_another_registry_are_not_sent_and_a_refusal_leaves_the_image_unverified(
        private: tuple[Registry, PushedImage], registry: Registry) -> None:
    reg, _ = private
    ref = f"{reg.address}/acme/worker:7"
    result = _check(ref, registry=registry.address, registry_username=USER, registry_password=PASSWORD)
    assert result.failures == [], "a refusal says nothing about the image: the kubelet may have other credentials"
    assert result.inputs["image_ref"] == ref and result.inputs["digest"] is None
    assert "401" in result.inputs["unverified"] and PASSWORD not in result.inputs["unverified"]


def test_an_unreachable_registry_leaves_the_image_as_given_and_says_why() -> None:
    ref = f"127.0.0.1:{free_port()}/acme/worker:7"
    result = _check(ref)
    assert result.failures == []
    assert result.inputs["image_ref"] == ref and "unreachable" in result.inputs["unverified"]
    assert PinnedImageProvider().create(result.inputs).id == "image-unverified"


def test_a_malformed_reference_or_one_without_a_registry_fails_preview_naming_the_image() -> None:
    for ref in ("acme/worker:7", "registry.example.com/Acme/worker"):
        result = _check(ref)
        assert [f.property for f in result.failures] == ["image"], ref
        assert ref in result.failures[0].reason


def test_an_image_not_known_at_preview_is_left_to_up() -> None:
    result = _check(UNKNOWN)
    assert result.failures == [] and result.inputs["image_ref"] == UNKNOWN


def test_the_provider_pickles_without_clients() -> None:
    import pickle

    assert pickle.loads(pickle.dumps(PinnedImageProvider())).__class__ is PinnedImageProvider
