"""Network faults, for real: a registry in its own network namespace, cut off with an nft drop rule.

The namespace, veth pair and rules are created by the test and removed after it;
traffic never leaves this machine.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from harness.services import registry_binary, stop
from modelops_infra.bundles import BundleCache, BundleSettings, RegistryClient, push_bundle
from modelops_infra.errors import RegistryUnavailableError
from tests.netns import Namespace


@pytest.fixture
def ns_registry(netns: Namespace, tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "config.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                      f"http:\n  addr: {netns.ns_ip}:5000\n")
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen(netns.exec(registry_binary(), "serve", str(config)), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    address = f"{netns.ns_ip}:5000"
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"http://{address}/v2/", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, (tmp_path / "registry.log").read_text()
        time.sleep(0.1)
    yield address
    stop(proc)


def test_a_registry_that_drops_every_packet_fails_within_a_bounded_time(netns, ns_registry):
    netns.drop_all()
    start = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as info:
        with RegistryClient(ns_registry, insecure=True, timeout=30) as client:
            client.ping()
    elapsed = time.monotonic() - start
    assert "gave up after 4 attempts" in str(info.value) and ns_registry in str(info.value)
    assert elapsed < 35, f"4 connect attempts of at most 5 s plus backoff; took {elapsed:.1f} s"


def test_a_partition_during_a_pull_leaves_nothing_and_the_next_pull_succeeds(netns, ns_registry, make_bundle,
                                                                             tmp_path):
    settings = BundleSettings(insecure=True, timeout=3)
    bundle = make_bundle("partition", {"sim.py": "def run(p, s):\n    return {}\n", "data.bin": os.urandom(4 << 20)})
    pushed = push_bundle(bundle, ns_registry, settings=settings)
    cache = BundleCache(tmp_path / "cache")
    netns.drop_all()
    with RegistryClient(ns_registry, insecure=True, timeout=3, attempts=2, max_backoff=0.5) as client:
        with pytest.raises(RegistryUnavailableError):
            cache.ensure(pushed.reference.repository, pushed.digest, client=client)
    assert cache.entries() == [] and list((tmp_path / "cache" / "staging").iterdir()) == []
    netns.heal()
    with RegistryClient(ns_registry, insecure=True, timeout=10) as client:
        local = cache.ensure(pushed.reference.repository, pushed.digest, client=client)
    assert (local.path / "data.bin").read_bytes() == (bundle / "data.bin").read_bytes()
