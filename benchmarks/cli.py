"""How fast ``mops`` starts: ``mops --help`` and ``mops bundle validate`` against ``python -c pass``.

The bar is absolute (<= 0.25 s, issue 11); the ratio to a bare interpreter start is
printed beside it, because on a loaded machine both move together.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._result import Result
from modelops_infra.bundles import builtin_bundle_path

BAR_SECONDS = 0.25


def _median_seconds(argv: list[str], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(rounds: int = 7) -> list[Result]:
    mops = str(Path(sys.executable).with_name("mops"))
    bare = _median_seconds([sys.executable, "-c", "pass"], rounds)
    results = []
    for name, argv in (("mops --help", [mops, "--help"]),
                       ("mops bundle validate", [mops, "bundle", "validate", str(builtin_bundle_path())])):
        seconds = _median_seconds(argv, rounds)
        results.append(Result(f"start: {name}", seconds / bare, "<= 0.25 s", seconds <= BAR_SECONDS,
                              f"{seconds:.3f} s vs python -c pass {bare:.3f} s (median of {rounds}; bar is absolute)"))
    return results
