"""Check a bundle's ``requirements.txt`` against what the worker has installed. Never installs."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from modelops_infra.bundles import REQUIREMENTS_FILE, parse_requirements
from modelops_infra.errors import RequirementsError

__all__ = ["check_requirements", "unmet_requirements"]


def unmet_requirements(text: str) -> list[str]:
    """Lines describing each requirement not satisfied in this environment (empty when all are)."""
    reqs, problems = parse_requirements(text)
    unmet = list(problems)
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            unmet.append(f"{req} (not installed)")
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            unmet.append(f"{req} (installed: {installed})")
    return unmet


def check_requirements(root: Path, digest: str) -> None:
    """Raise :class:`RequirementsError` listing every unmet requirement of the bundle at ``root``."""
    path = root / REQUIREMENTS_FILE
    if not path.is_file():
        return
    unmet = unmet_requirements(path.read_text(encoding="utf-8"))
    if unmet:
        raise RequirementsError(
            f"run: bundle {digest} needs {len(unmet)} requirement(s) the worker does not satisfy: " + "; ".join(unmet),
            hint="add them to the worker image (modelops-infra does not pip install on workers)",
            unmet=unmet, digest=digest,
        )
