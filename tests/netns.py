"""Test hosts in network namespaces the tests create (iproute2 + nftables), removed after each test.

Traffic never leaves this machine: a veth pair joins the namespace to the host.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@dataclass
class Namespace:
    name: str
    host_ip: str
    ns_ip: str

    def exec(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def drop_all(self) -> None:
        sh(*self.exec("nft", "add", "table", "inet", "fault"))
        sh(*self.exec("nft", "add", "chain", "inet", "fault", "input",
                      "{ type filter hook input priority 0; policy drop; }"))

    def heal(self) -> None:
        sh(*self.exec("nft", "delete", "table", "inet", "fault"))


@pytest.fixture
def netns() -> Iterator[Namespace]:
    tag = f"{os.getpid() % 10000}"
    name, host_if, ns_if = f"mops{tag}", f"mh{tag}", f"mn{tag}"
    octet = os.getpid() % 250 + 1
    ns = Namespace(name, f"10.232.{octet}.1", f"10.232.{octet}.2")
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        sh("ip", "link", "set", ns_if, "netns", name)
        sh("ip", "addr", "add", f"{ns.host_ip}/24", "dev", host_if)
        sh("ip", "link", "set", host_if, "up")
        sh(*ns.exec("ip", "addr", "add", f"{ns.ns_ip}/24", "dev", ns_if))
        sh(*ns.exec("ip", "link", "set", ns_if, "up"))
        sh(*ns.exec("ip", "link", "set", "lo", "up"))
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


