"""Ask one DNS server for one A record and check the answer: ``dns-query.py SERVER NAME [EXPECTED_IP]``.

Exits 0 when SERVER answers NAME with an A record (equal to EXPECTED_IP if
given), 1 otherwise. Standard library only: the machines have no dig.
scripts/kube-cluster.sh uses it to wait for CoreDNS.
"""

from __future__ import annotations

import random
import socket
import struct
import sys


def query(server: str, name: str, timeout: float = 2.0) -> list[str]:
    """The IPv4 addresses in SERVER's answer to an A query for NAME."""
    ident = random.randrange(1 << 16)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, 53))
        reply, _ = sock.recvfrom(4096)
    rid, _flags, _qd, ancount = struct.unpack("!HHHH", reply[:8])
    if rid != ident:
        return []
    offset = 12 + len(question) + 4
    answers = []
    for _ in range(ancount):
        if reply[offset] & 0xC0 == 0xC0:  # a compressed name: a 2-byte pointer
            offset += 2
        else:
            while reply[offset]:
                offset += reply[offset] + 1
            offset += 1
        rtype, _cls, _ttl, length = struct.unpack("!HHIH", reply[offset:offset + 10])
        offset += 10
        if rtype == 1 and length == 4:
            answers.append(socket.inet_ntoa(reply[offset:offset + 4]))
        offset += length
    return answers


def main(argv: list[str]) -> int:
    server, name = argv[1], argv[2]
    expected = argv[3] if len(argv) > 3 else None
    try:
        answers = query(server, name)
    except OSError:
        return 1
    return 0 if answers and (expected is None or expected in answers) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
