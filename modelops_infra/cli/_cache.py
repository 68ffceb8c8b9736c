"""``mops cache verify``: check the local bundle cache (``MODELOPS_BUNDLE_CACHE_DIR``)."""

from __future__ import annotations

import typer

import modelops_infra.bundles as bundles  # lazy: imported when the command runs
from modelops_infra.cli._console import echo_json
from modelops_infra.errors import CacheError

__all__ = ["cache_app"]

cache_app = typer.Typer(help="Check the local bundle cache.", no_args_is_help=True)


@cache_app.command("verify")
def verify(as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text.")) -> None:
    """Hash every file of every cached bundle again and compare it with the record made when it was fetched.

    A broken entry (a changed, missing or added file, a damaged meta.json) is
    evicted, so its next use fetches it again. Built environments are counted
    (files and bytes) against theirs, and a broken one is evicted and built again
    by its next use. Exits 0 if everything was sound, 8 (cache) if anything was evicted.
    """
    settings = bundles.BundleSettings.from_env()
    cache = bundles.BundleCache(settings.cache_dir, max_bytes=settings.cache_max_bytes,
                                max_extract_bytes=settings.max_extract_bytes)
    results = cache.verify()
    envs = cache.verify_environments()
    broken = [(digest, problem) for digest, problem in results if problem is not None]
    broken_envs = [(key, problem) for key, problem in envs if problem is not None]
    if as_json:
        echo_json({"cache": str(cache.root),
                   "entries": [{"digest": d, "ok": p is None, "problem": p} for d, p in results],
                   "environments": [{"key": k, "ok": p is None, "problem": p} for k, p in envs]})
    else:
        for digest, problem in results:
            typer.echo(f"{digest}  " + ("ok" if problem is None else f"BROKEN: {problem} (evicted)"))
        for key, problem in envs:
            typer.echo(f"env {key}  " + ("ok" if problem is None else f"BROKEN: {problem} (evicted)"))
        typer.echo(f"{len(results)} cached bundle(s) and {len(envs)} environment(s) in {cache.root}, "
                   f"{len(broken) + len(broken_envs)} broken")
    if broken or broken_envs:
        what = " and ".join(part for part in (f"{len(broken)} broken bundle(s)" if broken else "",
                                              f"{len(broken_envs)} broken environment(s)" if broken_envs else "")
                            if part)
        raise CacheError(f"{what} evicted from the cache {cache.root}",
                         hint="they are fetched or built again, verified, on their next use")
