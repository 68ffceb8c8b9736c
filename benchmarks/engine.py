"""Engine benchmarks: ``make up`` cold vs warm, and a no-op ``pulumi up`` vs ``pulumi preview``.

Both run on a throwaway clone of this repository with its own stack name and free
ports, so they never touch your ``local`` stack. "Cold" is a fresh clone: no
``.venv`` (pip installs from its cache), no state, no running processes; the
Pulumi engine build cache (``~/.cache/modelops/pulumi``) is reused -- its own
cold build time is measured by ``scripts/pulumi.sh`` (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks._result import Result
from harness.services import free_port

REPO = Path(__file__).resolve().parents[1]



def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def run(rounds: int = 3) -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="modelops-engine-bench-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        stack = "bench"
        salt = re.search(r"^encryptionsalt: .*$", (REPO / "Pulumi.local.yaml").read_text(), re.M)
        ports = {k: free_port() for k in ("registryPort", "schedulerPort", "dashboardPort")}
        (clone / f"Pulumi.{stack}.yaml").write_text(
            "config:\n  modelops:cloud: local\n  modelops:local:\n"
            + "".join(f"    {k}: {v}\n" for k, v in ports.items())
            + "    workers: 2\n" + (salt.group(0) + "\n" if salt else ""))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "VIRTUAL_ENV"))}
        make = ["make", "up", f"LOCAL_STACK={stack}"]
        try:
            cold = _run(make, clone, env)
            warm = statistics.median(_run(make, clone, env) for _ in range(rounds))
            pulumi_env = dict(env, PATH=f"{clone}/.modelops/bin:{clone}/.venv/bin:{env['PATH']}",
                              PULUMI_BACKEND_URL=f"file://{clone}/.modelops/state", PULUMI_CONFIG_PASSPHRASE="",
                              PULUMI_SKIP_UPDATE_CHECK="true", PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
                              PULUMI_PYTHON_CMD=f"{clone}/.venv/bin/python")
            ups, previews = [], []
            for _ in range(rounds):
                ups.append(_run(["pulumi", "up", "--yes", "--skip-preview", "--stack", stack], clone, pulumi_env))
                previews.append(_run(["pulumi", "preview", "--stack", stack], clone, pulumi_env))
        finally:
            subprocess.run(["make", "down", f"LOCAL_STACK={stack}"], cwd=clone, env=env, capture_output=True)
    up_ratio = statistics.median(ups) / statistics.median(previews)
    return [
        Result("make up: warm vs cold", warm / cold, "-", True,
               f"cold (fresh clone, venv + deploy + smoke test) {cold:.1f} s; warm (no change) {warm:.1f} s"),
        Result("no-op pulumi up vs preview", up_ratio, "-", True,
               f"up {statistics.median(ups):.2f} s vs preview {statistics.median(previews):.2f} s (median of {rounds})"),
    ]
