"""A separate process that fetches one bundle into a shared cache (run with ``python -m tests.bundles.fetcher``).

Used by the concurrency and crash tests. Prints one JSON line: the bundle's digest,
its tree path and a snapshot of the tree.

``--ready DIR`` touches ``DIR/<pid>`` once imports are done, and ``--go FILE``
then waits until FILE exists before fetching (so that several processes start together); ``--started FILE`` is written when the first bytes arrive;
``--chunk-delay S`` sleeps after every downloaded chunk (a slow link).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from modelops_infra.bundles import BundleCache, RegistryClient
from tests.bundles.helpers import snapshot


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cache")
    parser.add_argument("registry")
    parser.add_argument("repository")
    parser.add_argument("digest")
    parser.add_argument("--ready")
    parser.add_argument("--go")
    parser.add_argument("--started")
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    args = parser.parse_args()

    if args.ready:
        (Path(args.ready) / str(os.getpid())).touch()
    if args.go:
        deadline = time.monotonic() + 30
        while not Path(args.go).exists():
            if time.monotonic() > deadline:
                raise SystemExit("the go file never appeared")
            time.sleep(0.005)

    def progress(n: int) -> None:
        if args.started and not Path(args.started).exists():
            Path(args.started).write_text("downloading")
        if args.chunk_delay:
            time.sleep(args.chunk_delay)

    cache = BundleCache(args.cache)
    with RegistryClient(args.registry, environ={}) as client:
        local = cache.ensure(args.repository, args.digest, client=client, progress=progress)
    print(json.dumps({"digest": local.digest, "path": str(local.path), "tree": snapshot(local.path)}))


if __name__ == "__main__":
    main()
