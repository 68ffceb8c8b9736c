"""harness.netns: a shaped link really caps the rate (the second-host benchmark relies on it)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import requests

from harness.netns import Link, network_namespace
from harness.services import start_package_index


def test_a_shaped_namespace_serves_no_faster_than_its_rate(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    payload = os.urandom(3 << 20)  # incompressible, 3 MiB
    (wheelhouse / "blob-1.0-py3-none-any.whl").write_bytes(payload)
    with network_namespace() as ns:
        ns.shape(Link(rate_mbit=20))
        index = start_package_index(wheelhouse, tmp_path / "index", netns=ns)
        try:
            assert index.url.startswith(f"http://{ns.ns_ip}:"), index.url
            start = time.perf_counter()
            got = requests.get(index.find_links_url + "blob-1.0-py3-none-any.whl", timeout=30).content
            elapsed = time.perf_counter() - start
        finally:
            index.stop()
    assert got == payload
    floor = len(payload) * 8 / 20e6  # 1.26 s at 20 Mbit/s; the token bucket's 256 KiB burst takes off < 0.11 s
    assert elapsed >= 0.85 * floor, f"3 MiB through a 20 Mbit/s link took {elapsed:.2f} s, under {floor:.2f} s"
