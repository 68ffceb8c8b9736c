"""``mops bundle validate|push|pull|inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

import modelops_infra.bundles as bundles  # lazy: each command imports only what it uses
from modelops_infra.cli._console import echo_json, human_size, stdout_console, stdout_is_tty, transfer_progress
from modelops_infra.errors import BundleValidationError, ConfigurationError

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["bundle_app", "validate"]

bundle_app = typer.Typer(help="Validate, push, pull and inspect bundles.", no_args_is_help=True)

_PATH = typer.Argument(..., help="Bundle directory (holds manifest.json).", show_default=False)
_JSON = typer.Option(False, "--json", help="Print one JSON object instead of text.")
_PYTHON = typer.Option(None, "--python", show_default=False,
                       help="The workers' Python (major.minor) for the environment key. Default: this one.")
_PLATFORM = typer.Option(None, "--platform", show_default=False,
                         help="The workers' platform (sysconfig.get_platform(), e.g. linux-x86_64) for the"
                              " environment key. Default: this one.")


@bundle_app.command("validate")
def validate(path: Path = _PATH, as_json: bool = _JSON, python: str | None = _PYTHON,
             platform: str | None = _PLATFORM) -> None:
    """Check a bundle without running it; list every problem and exit 1 if there is one."""
    target = bundles.PythonTarget.of(python, platform)
    report = bundles.validate_bundle(path)
    env = report.environment
    if as_json:
        m = report.manifest
        echo_json({"path": str(path), "ok": report.ok, "problems": report.problems, "warnings": report.warnings,
                   "manifest": None if m is None else {"name": m.name, "version": m.version,
                                                       "entrypoint": m.entrypoint},
                   "environment": None if env is None else {
                       "file": env.source, "kind": env.kind, "pins": list(env.pins),
                       "key": bundles.environment_key(env, target), "python": str(target)}})
    elif report.ok:
        assert report.manifest is not None
        m = report.manifest
        typer.echo(f"{path}: valid bundle {m.name} {m.version} (entrypoint {m.entrypoint})")
        if env is not None:
            typer.echo(f"  environment: {env.source}, {len(env.pins)} requirement(s); key for"
                       f" {target}: {bundles.environment_key(env, target)}")
        for warning in report.warnings:
            typer.echo(f"  warning: {warning}", err=True)
    else:
        typer.echo(f"{path}: {len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}:")
        for problem in report.problems:
            first, *rest = problem.splitlines() or [""]
            typer.echo(f"  - {first}")
            for line in rest:  # packaging's parse errors span lines; keep them under their item
                typer.echo(f"    {line}")
    if not report.ok:
        count = len(report.problems)
        raise BundleValidationError(f"bundle {path} is invalid ({count} problem{'s' if count != 1 else ''})",
                                    problems=report.problems, hint="fix the problems listed above")


@bundle_app.command("push")
def push(
    path: Path = _PATH,
    registry: str | None = typer.Option(None, "--registry", "-r", show_default=False,
                                 help="Registry host[:port]. Default: get_registry_url(--env)."),
    env: str = typer.Option("dev", "--env", help="Environment whose registry to use when --registry is not given."),
    repository: str | None = typer.Option(None, "--repository", show_default=False,
                                   help="Repository in the registry. Default: MODELOPS_BUNDLE_REPOSITORY or modelops/bundles."),
    tag: str | None = typer.Option(None, "--tag", "-t", show_default=False, help="Also tag the pushed manifest."),
    wheels: bool = typer.Option(False, "--wheels", help="Resolve the environment for the workers and push its wheels"
                                " too, so workers install offline from the registry (also: \"wheels\": true in"
                                " manifest.json)."),
    python_version: str | None = typer.Option(None, "--python-version", show_default=False,
                                              help="The workers' Python (major.minor) for --wheels. Default: this"
                                                   " interpreter's."),
    platform: str = typer.Option("manylinux_2_28_x86_64", "--platform", help="The workers' platform tag for --wheels."),
    as_json: bool = _JSON,
) -> None:
    """Validate, pack and push a bundle. The last stdout line is the pinned reference (registry/repo@sha256:...)."""
    from modelops_infra.client import get_registry_url

    settings = bundles.BundleSettings.from_env()
    # Every input is checked before packing, so a typo fails in milliseconds, naming the option.
    host = bundles.RegistryHost.parse(registry, source="--registry") if registry else bundles.RegistryHost.parse(get_registry_url(env))
    target_repository = bundles.check_repository(repository, source="--repository") if repository else settings.repository
    if tag is not None:
        bundles.check_tag(tag, source="--tag")
    target: bool | bundles.WheelTarget = False
    if wheels or python_version:
        target = bundles.WheelTarget(python_version or bundles.WheelTarget.python_version, platform)
    with bundles.packed_bundle(path, settings=settings, wheels=target) as packed, \
            transfer_progress(f"push {packed.manifest.name}", packed.total_size) as progress, \
            bundles.RegistryClient.from_settings(settings, host) as client:
        result = bundles.push_packed(client, packed, target_repository, tag=tag, progress=progress)
    if as_json:
        echo_json({**result.to_dict(), "tag": tag, "name": packed.manifest.name, "version": packed.manifest.version})
        return
    typer.echo(f"pushed {packed.manifest.name} {packed.manifest.version}: {result.blobs_uploaded} blob(s) uploaded"
               f" ({human_size(result.bytes_uploaded)}), {result.blobs_skipped} already present,"
               f" {human_size(result.total_bytes)} in all" + (f"; tagged {tag}" if tag else ""))
    typer.echo(str(result.reference))


def _prepare_dest(dest: Path) -> bool:
    """Make ``--dest`` an empty, writable directory before anything is fetched; True if it was created here.

    A file in the way, an unwritable parent or a non-empty directory is a
    :class:`ConfigurationError` naming ``--dest``, not an ``OSError`` after the download.
    """
    import tempfile

    created = not dest.exists()
    try:
        if dest.exists() and not dest.is_dir():
            raise ConfigurationError(f"--dest {dest} exists and is not a directory",
                                     hint="give a new or empty directory")
        dest.mkdir(parents=True, exist_ok=True)
        if any(dest.iterdir()):
            raise ConfigurationError(f"--dest {dest} exists and is not empty", hint="give a new or empty directory")
        with tempfile.TemporaryFile(dir=dest):
            pass
    except OSError as exc:
        raise ConfigurationError(f"--dest {dest} cannot be written ({exc.strerror or exc})",
                                 hint="give a directory you can write to") from exc
    return created


@bundle_app.command("pull")
def pull(
    ref: str = typer.Argument(..., help="[registry/]repository[:tag|@sha256:...]", show_default=False),
    dest: Path = typer.Option(..., "--dest", "-d", help="Directory to create (must be absent or empty).",
                              show_default=False),
    verify: bool = typer.Option(False, "--verify", help="Hash the cached copy's files again first (not only"
                                " check their sizes and mtimes); a broken copy is fetched again."),
    as_json: bool = _JSON,
) -> None:
    """Fetch a bundle (verified, through the local cache) into DIR."""
    created = _prepare_dest(dest)
    try:
        total: int | None = None
        if stdout_is_tty():  # only a terminal gets a bar, so only it pays for the size lookup
            total = int(bundles.inspect_bundle(ref)["total_bytes"])
        with transfer_progress(f"pull {ref.rsplit('/', 1)[-1][:40]}", total) as progress:
            local = bundles.pull_bundle(ref, dest, progress=progress, verify=verify)
    except BaseException:
        if created and dest.is_dir() and not any(dest.iterdir()):
            dest.rmdir()  # leave no empty directory behind a failed pull
        raise
    if as_json:
        echo_json({"digest": local.digest, "dest": str(dest), "name": local.manifest.name,
                   "version": local.manifest.version, "size": local.size, "repository": local.repository})
        return
    typer.echo(f"pulled {local.manifest.name} {local.manifest.version} ({human_size(local.size)}, {local.digest})")
    typer.echo(str(dest))


def _inspect_table(info: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="files", show_edge=False)
    table.add_column("file")
    table.add_column("size", justify="right")
    table.add_column("stored in")
    for f in info["files"]:
        where = "code layer" if f["layer"] == "code" else f"own blob {f['layer'][:19]}"
        table.add_row(f["path"], human_size(f["size"]), where)
    return table


@bundle_app.command("inspect")
def inspect(
    ref: str = typer.Argument(..., help="[registry/]repository[:tag|@sha256:...]", show_default=False),
    as_json: bool = _JSON,
    python: str | None = _PYTHON,
    platform: str | None = _PLATFORM,
) -> None:
    """Show a pushed bundle's manifest, files and sizes without downloading it."""
    info = bundles.inspect_bundle(ref, target=bundles.PythonTarget.of(python, platform))
    if as_json:
        echo_json(info)
        return
    console = stdout_console()
    bundle = info.get("bundle") or {}
    console.print(f"reference     {info['reference']}", highlight=False)
    for key in ("name", "version", "entrypoint", "description"):
        if bundle.get(key):
            console.print(f"{key:<13} {bundle[key]}", highlight=False)
    console.print(f"artifactType  {info['artifactType']}", highlight=False)
    env = info.get("environment")
    if env and "key" in env:
        console.print(f"environment   {env['file']} ({len(env['pins'])} requirement(s)"
                      + (f", {env['wheels']} wheel(s) in the registry" if env["wheels"] else "") + ")",
                      highlight=False)
        console.print(f"env key       {env['key']} (for {env['python']})", highlight=False)
    elif env:
        console.print(f"environment   invalid: {'; '.join(env['problems'])}", highlight=False)
    console.print(f"total size    {human_size(info['total_bytes'])}", highlight=False)
    console.print(_inspect_table(info))
