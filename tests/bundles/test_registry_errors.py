"""Registry failures: bounded retries on outages and 5xx, none on 4xx, and errors that name what failed."""

from __future__ import annotations

import shutil
import socket
import time

import pytest

from harness.services import free_port
from modelops_infra.bundles import BundleCache, RegistryClient, pack_bundle, push_packed
from modelops_infra.errors import RegistryNotFoundError, RegistryUnavailableError
from tests.bundles.helpers import count, staging_dirs


def test_a_registry_that_is_down_fails_fast_with_a_clear_error():
    address = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with RegistryClient(address, environ={}) as client, pytest.raises(RegistryUnavailableError) as info:
        client.resolve("tests/anything", "v1")
    elapsed = time.monotonic() - started
    assert elapsed < 15, f"bounded retries should give up well within 15 s, took {elapsed:.1f} s"
    assert address in str(info.value), f"the error should name the registry; got: {info.value}"
    assert "gave up after 4 attempts" in str(info.value), f"the error should say how often it tried; got: {info.value}"
    assert info.value.registry == address


def test_the_number_of_attempts_is_configurable():
    with RegistryClient(f"127.0.0.1:{free_port()}", environ={}, attempts=2) as client:
        with pytest.raises(RegistryUnavailableError) as info:
            client.ping()
    assert "gave up after 2 attempts" in str(info.value)


def test_a_registry_that_accepts_but_never_answers_times_out_within_a_bound():
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)  # the kernel completes handshakes; nobody ever reads or writes
        address = f"127.0.0.1:{blackhole.getsockname()[1]}"
        started = time.monotonic()
        with RegistryClient(address, environ={}, timeout=0.5, attempts=2, max_backoff=0.2) as client:
            with pytest.raises(RegistryUnavailableError) as info:
                client.ping()
        elapsed = time.monotonic() - started
    assert elapsed < 5, f"two 0.5 s timeouts should end within 5 s, took {elapsed:.1f} s"
    assert "Timeout" in str(info.value) and "gave up after 2 attempts" in str(info.value), str(info.value)


def test_server_errors_are_retried_a_bounded_number_of_times(make_bundle, fresh_registry):
    with RegistryClient(fresh_registry.address, environ={}) as client:
        push_packed(client, pack_bundle(make_bundle("broken")), "tests/broken", tag="v1")
        repos = fresh_registry.storage / "docker/registry/v2/repositories"
        shutil.rmtree(repos)
        repos.write_text("storage is broken: the registry answers 500")
        with pytest.raises(RegistryUnavailableError) as info:
            client.resolve("tests/broken", "v1")
    assert "HTTP 500" in str(info.value) and "gave up after 4 attempts" in str(info.value), str(info.value)
    assert count(fresh_registry, "HEAD", "/v2/tests/broken/manifests/v1") == 4, "a 5xx should be tried exactly 4 times"


def test_a_missing_tag_is_not_found_naming_repository_and_tag_without_retrying(fresh_registry, make_bundle):
    with RegistryClient(fresh_registry.address, environ={}) as client:
        push_packed(client, pack_bundle(make_bundle("present")), "tests/present", tag="v1")
        with pytest.raises(RegistryNotFoundError) as info:
            client.resolve("tests/present", "no-such-tag")
        assert "tests/present:no-such-tag" in str(info.value) and fresh_registry.address in str(info.value), (
            f"the error should name the registry, repository and tag; got: {info.value}"
        )
        with pytest.raises(RegistryNotFoundError) as info:
            client.get_manifest("tests/present", "also-missing")
        assert "tests/present:also-missing" in str(info.value)
    assert count(fresh_registry, "HEAD", "/manifests/no-such-tag") == 1, "a 404 must not be retried"
    assert count(fresh_registry, "GET", "/manifests/also-missing") == 1, "a 404 must not be retried"


def test_a_missing_repository_is_not_found_naming_it(fresh_registry):
    with RegistryClient(fresh_registry.address, environ={}) as client, pytest.raises(RegistryNotFoundError) as info:
        client.resolve("tests/never-pushed", "latest")
    assert "tests/never-pushed" in str(info.value)
    assert count(fresh_registry, "HEAD", "/v2/tests/never-pushed/") == 1


def test_fetching_an_unknown_digest_is_not_found_and_caches_nothing(fresh_registry, tmp_path):
    digest = "sha256:" + "0" * 64
    cache = BundleCache(tmp_path / "cache")
    with RegistryClient(fresh_registry.address, environ={}) as client, pytest.raises(RegistryNotFoundError) as info:
        cache.ensure("tests/ghost", digest, client=client)
    assert f"tests/ghost@{digest}" in str(info.value), f"the error should name repository and digest; got: {info.value}"
    assert cache.entries() == [] and staging_dirs(cache) == []
    assert count(fresh_registry, "GET", f"/manifests/{digest}") == 1
