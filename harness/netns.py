"""Hosts in network namespaces (iproute2, nftables, tc): for fault tests and for benchmarks that
need a link slower than loopback (a rate cap; this kernel has no netem, so no added delay). Traffic never leaves this machine: a veth pair joins each
namespace to the host, and everything is removed when the context ends.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count

__all__ = ["Link", "Namespace", "network_namespace", "sh"]

_serial = count()


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


@dataclass(frozen=True)
class Link:
    """A link's shape, applied to both directions: a rate cap (tc tbf)."""

    rate_mbit: float

    def describe(self) -> str:
        return f"{self.rate_mbit:g} Mbit/s"


@dataclass
class Namespace:
    """A namespace ``name`` at ``ns_ip``, reached from the host at ``host_ip`` over veth ``host_if``/``ns_if``."""

    name: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str

    def exec(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def drop_all(self) -> None:
        """Drop every packet that enters the namespace (until ``heal``)."""
        sh(*self.exec("nft", "add", "table", "inet", "fault"))
        sh(*self.exec("nft", "add", "chain", "inet", "fault", "input",
                      "{ type filter hook input priority 0; policy drop; }"))

    def heal(self) -> None:
        sh(*self.exec("nft", "delete", "table", "inet", "fault"))

    def shape(self, link: Link) -> None:
        """Cap both directions of the veth pair at ``link``'s rate (a token bucket, tc tbf).

        The burst (256 KiB) holds the largest segmentation-offload packet; the queue holds
        50 ms at the rate, so TCP sees a bottleneck, not a lossy link.
        """
        spec = ["tbf", "rate", f"{link.rate_mbit}mbit", "burst", "256kb", "latency", "50ms"]
        sh("tc", "qdisc", "replace", "dev", self.host_if, "root", *spec)
        sh(*self.exec("tc", "qdisc", "replace", "dev", self.ns_if, "root", *spec))


@contextmanager
def network_namespace() -> Iterator[Namespace]:
    """A new namespace joined to the host by a veth pair on its own /24 in 10.232.0.0/16."""
    i = next(_serial)
    n = (os.getpid() * 7 + i) % 10000
    octet = (os.getpid() + i * 37) % 250 + 1
    ns = Namespace(f"mops{n}", f"mh{n}", f"mn{n}", f"10.232.{octet}.1", f"10.232.{octet}.2")
    sh("ip", "netns", "add", ns.name)
    try:
        sh("ip", "link", "add", ns.host_if, "type", "veth", "peer", "name", ns.ns_if)
        sh("ip", "link", "set", ns.ns_if, "netns", ns.name)
        sh("ip", "addr", "add", f"{ns.host_ip}/24", "dev", ns.host_if)
        sh("ip", "link", "set", ns.host_if, "up")
        sh(*ns.exec("ip", "addr", "add", f"{ns.ns_ip}/24", "dev", ns.ns_if))
        sh(*ns.exec("ip", "link", "set", ns.ns_if, "up"))
        sh(*ns.exec("ip", "link", "set", "lo", "up"))
        yield ns
    finally:
        subprocess.run(["ip", "link", "del", ns.host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
