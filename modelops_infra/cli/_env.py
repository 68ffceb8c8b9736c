"""``mops env write``: record a deployed stack's registry and scheduler for ``get_registry_url``."""

from __future__ import annotations

import typer

from modelops_infra.cli._console import echo_json

__all__ = ["env_app"]

env_app = typer.Typer(help="Local environment files (~/.modelops/bundle-env/<env>.yaml).", no_args_is_help=True)


@env_app.command("write")
def write(
    stack: str | None = typer.Option(None, "--stack", show_default=False,
                                     help="Pulumi stack to read. Default: the selected stack."),
    env: str | None = typer.Option(None, "--env", show_default=False,
                                   help="Environment name to write. Default: the stack name, else dev."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Write ~/.modelops/bundle-env/<env>.yaml (mode 0600) from the stack's acr_login_server and scheduler_address."""
    from modelops_infra.cli._stack import read_stack_outputs
    from modelops_infra.client import write_bundle_env

    outputs = read_stack_outputs(stack)
    name = env or stack or "dev"
    path = write_bundle_env(name, outputs.registry, outputs.scheduler_address)
    if as_json:
        echo_json({"env": name, "path": str(path), "registry": outputs.registry,
                   "scheduler_address": outputs.scheduler_address})
        return
    typer.echo(f"registry   {outputs.registry}")
    typer.echo(f"scheduler  {outputs.scheduler_address or '(none in stack outputs)'}")
    typer.echo(f"wrote {path}")
