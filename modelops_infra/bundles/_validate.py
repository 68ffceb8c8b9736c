"""Static validation of a bundle directory. Nothing in the bundle is executed.

Checks, reporting *every* problem rather than the first:

* ``manifest.json`` exists, is JSON, and has ``name``, ``version``, ``entrypoint``;
* the entry module's file exists and defines the entry function (found by parsing
  the file with :mod:`ast`, not by importing it);
* the environment file (optional; one of ``pylock.toml``, ``uv.lock`` +
  ``pyproject.toml``, ``requirements.txt``) parses, and only one is present;
  requirements not pinned to one version are *warnings*, not problems.
  Nothing is installed;
* ``.bundleignore`` uses no unsupported syntax;
* every file that would be packed can be packed: the packing rules of
  :func:`~modelops_infra.bundles._ignore.scan_bundle` (unreadable directories
  and files, symlinks that leave the bundle, special files) are problems here,
  and the entry module must be among the packed files. ``push`` packs exactly
  ``report.files``, so what validates is what is pushed.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelops_infra.bundles._envspec import EnvironmentSpec, find_environment
from modelops_infra.bundles._ignore import IGNORE_FILE, BundleFile, read_ignore_file, scan_bundle
from modelops_infra.bundles._manifest import MANIFEST_FILE, BundleManifest, parse_manifest
from modelops_infra.bundles._settings import BundleSettings
from modelops_infra.errors import BundleValidationError

__all__ = [
    "ValidationReport",
    "checked_bundle",
    "entry_module_path",
    "require_valid_bundle",
    "tool_dirs",
    "validate_bundle",
]


@dataclass
class ValidationReport:
    path: Path
    manifest: BundleManifest | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    environment: EnvironmentSpec | None = None
    files: tuple[BundleFile, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def entry_module_path(root: Path, module: str) -> Path | None:
    """The file that defines ``module`` inside ``root`` (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defines(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
        if isinstance(node, (ast.Import, ast.ImportFrom)) and any(
            (a.asname or a.name.split(".")[0]) == name for a in node.names
        ):
            return True
    return False


def tool_dirs(settings: BundleSettings | None = None) -> tuple[Path, ...]:
    """The bundle cache and digest memo of ``settings`` (default: from the environment): never packed,
    even when they lie inside a bundle directory."""
    settings = settings or BundleSettings.from_env()
    return (settings.cache_dir, settings.memo_dir)


def validate_bundle(path: Path | str, *, exclude: Sequence[Path] | None = None) -> ValidationReport:
    """Validate the bundle at ``path``; never raises for bundle content problems.

    ``exclude`` lists directories never packed (default: the configured bundle
    cache and digest memo). ``report.files`` is exactly what :func:`pack_bundle` packs.
    """
    root = Path(path)
    report = ValidationReport(path=root)
    if not root.is_dir():
        report.problems.append(f"{root}: not a directory")
        return report
    manifest_path = root / MANIFEST_FILE
    if not manifest_path.is_file():
        report.problems.append(f"{manifest_path}: missing (every bundle needs a {MANIFEST_FILE})")
    else:
        manifest, problems = parse_manifest(manifest_path.read_bytes(), source=str(manifest_path))
        report.manifest = manifest
        report.problems.extend(problems)
        if manifest is not None:
            _check_entrypoint(root, manifest, report.problems)
    report.environment, problems = find_environment(root)
    report.problems.extend(problems)
    if report.environment is not None:
        report.warnings.extend(report.environment.warnings)
    ignore_path = root / IGNORE_FILE
    if ignore_path.is_file():
        try:
            ignore_text = read_ignore_file(ignore_path)
        except BundleValidationError as exc:
            report.problems.extend(exc.problems)
            return report  # the packing rules cannot be known, so neither can the files
        for lineno, line in enumerate(ignore_text.splitlines(), start=1):
            if line.strip().startswith("!"):
                report.problems.append(f"{ignore_path}:{lineno}: negated patterns ('!') are not supported")
    scan = scan_bundle(root, exclude=tool_dirs() if exclude is None else exclude)
    report.files = scan.files
    report.problems.extend(scan.problems)
    if report.manifest is not None:
        module_file = entry_module_path(root, report.manifest.module)
        if module_file is not None:
            rel = module_file.relative_to(root).as_posix()
            if rel not in {f.rel for f in scan.files} and not any(rel in p for p in scan.problems):
                report.problems.append(f"{module_file}: the entry module is not packed (excluded by"
                                       f" {IGNORE_FILE} or the built-in ignore rules)")
    return report


def _check_entrypoint(root: Path, manifest: BundleManifest, problems: list[str]) -> None:
    module_file = entry_module_path(root, manifest.module)
    if module_file is None:
        rel = manifest.module.replace(".", "/")
        problems.append(
            f"{root / MANIFEST_FILE}: entrypoint '{manifest.entrypoint}' names module '{manifest.module}',"
            f" but neither {rel}.py nor {rel}/__init__.py exists in the bundle"
        )
        return
    try:
        tree = ast.parse(module_file.read_bytes(), filename=str(module_file))
    except (SyntaxError, ValueError) as exc:
        problems.append(f"{module_file}: cannot be parsed ({exc})")
        return
    if not _defines(tree, manifest.function):
        problems.append(
            f"{module_file}: does not define function '{manifest.function}' named by entrypoint '{manifest.entrypoint}'"
        )


def checked_bundle(path: Path | str, *, exclude: Sequence[Path] | None = None) -> ValidationReport:
    """The :class:`ValidationReport` of a valid bundle, or raise :class:`BundleValidationError` listing every problem."""
    report = validate_bundle(path, exclude=exclude)
    if not report.ok or report.manifest is None:
        count = len(report.problems)
        raise BundleValidationError(
            f"bundle {report.path} is invalid ({count} problem{'s' if count != 1 else ''}): " + "; ".join(report.problems),
            problems=report.problems,
            path=str(report.path),
        )
    return report


def require_valid_bundle(path: Path | str, *, exclude: Sequence[Path] | None = None) -> BundleManifest:
    """Validate and return the manifest, or raise :class:`BundleValidationError` listing every problem."""
    manifest = checked_bundle(path, exclude=exclude).manifest
    assert manifest is not None
    return manifest
