"""Content digests (pure): ``sha256:<hex>`` strings and streaming hashers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import BinaryIO

from modelops_infra.errors import ReferenceError_

__all__ = ["DIGEST_RE", "digest_bytes", "digest_file", "digest_hex", "validate_digest"]

DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_CHUNK = 1 << 20


def validate_digest(digest: str) -> str:
    """Return ``digest`` unchanged, or raise if it is not ``sha256:<64 hex>``."""
    if not DIGEST_RE.match(digest):
        raise ReferenceError_(f"malformed digest {digest!r}", hint="expected sha256:<64 lowercase hex digits>")
    return digest


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest (used for cache paths)."""
    return validate_digest(digest).split(":", 1)[1]


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_stream(stream: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(_CHUNK):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def digest_file(path: Path) -> tuple[str, int]:
    """Digest and size of a file, read in 1 MiB chunks."""
    with open(path, "rb") as fh:
        return digest_stream(fh)
