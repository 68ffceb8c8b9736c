"""The built-in test bundle used by ``mops dev smoke-test`` and ``BundleSmokeTest``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["builtin_bundle_path"]


def builtin_bundle_path() -> Path:
    """Directory of the built-in smoke-test bundle (shipped as package data)."""
    return Path(__file__).parent / "smoke"
