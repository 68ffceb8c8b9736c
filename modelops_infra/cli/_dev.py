"""``mops dev validate-bundle|smoke-test|test-connection``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from modelops_infra.cli._bundle import validate
from modelops_infra.cli._console import echo_json
from modelops_infra.client import DEFAULT_SCHEDULER, resolve_scheduler
from modelops_infra.errors import SmokeTestError

__all__ = ["dev_app"]


dev_app = typer.Typer(help="Developer checks: validate a bundle, smoke-test a cluster, test the connection.",
                      no_args_is_help=True)

dev_app.command("validate-bundle", help="Alias of `mops bundle validate`: list every problem, exit 1 if any.")(validate)

_SCHEDULER = typer.Option(None, "--scheduler", "-s", show_default=False,
                          help=f"Dask scheduler address. Default: $DASK_SCHEDULER, then the scheduler in"
                               f" ~/.modelops/bundle-env/<env>.yaml, then {DEFAULT_SCHEDULER}.")
_ENV = typer.Option("dev", "--env", help="Environment whose registry and scheduler to use by default.")


@dev_app.command("smoke-test")
def smoke_test(
    bundle: Path | None = typer.Option(None, "--bundle", "-b", show_default=False,
                                       help="Bundle directory. Default: the built-in test bundle."),
    registry: str | None = typer.Option(None, "--registry", "-r", show_default=False,
                                        help="Registry host[:port]. Default: get_registry_url(--env)."),
    env: str = _ENV,
    scheduler: str | None = _SCHEDULER,
    repository: str | None = typer.Option(None, "--repository", show_default=False,
                                          help="Repository to push to. Default: modelops/bundles."),
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds allowed from connect to result."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: passed, bundle_ref, result, worker,"
                                                        " timings, stage, error (without the stage), hint."),
) -> None:
    """Push a bundle, run one SimTask on the cluster and check the result; exit 1 naming the failed stage.

    The report goes to stdout; a failure's one line, ``mops: error: <stage>: <error>``, to stderr from
    the error boundary, the one place that prints the stage.
    """
    from modelops_infra.bundles import BundleSettings, RegistryHost
    from modelops_infra.client import get_registry_url, run_smoke_test

    settings = BundleSettings.from_env()
    target = str(RegistryHost.parse(registry, source="--registry")) if registry else get_registry_url(env)
    report = run_smoke_test(bundle=bundle, registry=target,
                            scheduler=resolve_scheduler(scheduler, env), timeout=timeout,
                            repository=repository or settings.repository, settings=settings)
    if as_json:
        echo_json(report.to_dict())
    else:
        typer.echo(f"smoke test {'passed' if report.passed else 'FAILED'}")
        if report.bundle_ref:
            typer.echo(f"bundle   {report.bundle_ref}")
        if report.worker:
            typer.echo(f"worker   {report.worker}")
        if report.result is not None:
            typer.echo(f"result   {json.dumps(report.result, sort_keys=True, default=repr)}")
        typer.echo("timings  " + "  ".join(f"{stage}={seconds:.3f}s" for stage, seconds in report.timings.items()))
        if report.error:
            # The full error, with the bundle's traceback for a run failure; stderr gets its first line, with the
            # stage and hint.
            first, *rest = report.error.splitlines()
            typer.echo(f"error    {first}")
            for line in rest:
                typer.echo(f"         {line}")
    if not report.passed:
        report.raise_for_failure()


@dev_app.command("test-connection")
def test_connection(
    scheduler: str | None = _SCHEDULER,
    env: str = _ENV,
    timeout: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds to wait for the scheduler."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Connect to the Dask scheduler and print its worker count; exit 1 if it cannot be reached."""
    from modelops_infra.client import probe_scheduler

    probe = probe_scheduler(resolve_scheduler(scheduler, env), timeout=timeout)
    if as_json:
        echo_json({"scheduler": probe.scheduler, "reachable": probe.reachable, "workers": probe.n_workers,
                   "worker_addresses": list(probe.workers), "seconds": round(probe.seconds, 6),
                   "error": probe.error})
    elif probe.reachable:
        typer.echo(f"scheduler {probe.scheduler}: {probe.n_workers} worker{'s' if probe.n_workers != 1 else ''}"
                   f" ({probe.seconds:.2f} s)")
        for address in probe.workers:
            typer.echo(f"  {address}")
    if not probe.reachable:
        raise SmokeTestError(probe.error or f"cannot reach scheduler {probe.scheduler}", stage="connect",
                             hint="start the cluster, or pass --scheduler, set DASK_SCHEDULER, or run mops env write")
