"""``python -m benchmarks`` (``make bench``): run every benchmark and print ratio vs bar.

Options: ``--only cli|pipeline|environments|engine|image|kube``, ``--size-mb N``, ``--tasks N``, ``--rounds N``.
Exit status is 1 if any bar is missed, so a regression is visible.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--only", choices=("pipeline", "environments", "engine", "cli", "image", "kube"), default=None)
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results = []
    if args.only in (None, "cli"):
        from benchmarks import cli

        results += cli.run()
    if args.only in (None, "pipeline"):
        from benchmarks import pipeline

        results += pipeline.run(size_mb=args.size_mb, tasks=args.tasks, rounds=args.rounds)
    if args.only in (None, "environments"):
        from benchmarks import environments

        results += environments.run(tasks=args.tasks, rounds=args.rounds)
    if args.only in (None, "engine"):
        from benchmarks import engine

        results += engine.run()
    if args.only in (None, "image"):
        from benchmarks import image

        results += image.run(rounds=args.rounds)
    if args.only in (None, "kube"):
        from benchmarks import kube

        results += kube.run(rounds=args.rounds)
    for result in results:
        print(result.line())
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
