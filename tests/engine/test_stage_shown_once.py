"""A failure's stage is shown once, by both edges (``mops`` and ``pulumi up``), as the README's table says.

The stage is a field of the error; only the edges render ``stage: message``.
These tests run the real CLI and a real ``pulumi up`` against failing smoke
tests and read what a user reads: every place the stage is labelled
(``run: ...``, ``stage run``, ``stage 'run'``) is counted, and the printed
line must match a row of the README's "Reading a smoke-test failure" table
for that stage. The table itself must list exactly the stages the code can
report (:data:`modelops_infra.client.STAGES`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.pulumi import REPO, make_project
from harness.services import free_port
from modelops_infra.cli import ExitCode
from modelops_infra.client import STAGES
from tests.cli.conftest import mops  # noqa: F401  # the CLI runner fixture, shared with tests/cli

pytestmark = pytest.mark.engine

RAISING = {"sim.py": "def run(params, seed):\n    raise RuntimeError('boom from inside the bundle')\n"}


def _readme_rows() -> list[tuple[str, re.Pattern[str]]]:
    """(stage, pattern) for each row of the README's smoke-test failure table, from its first column."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Reading a smoke-test failure", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cell = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if cell is None:
            continue
        shown = cell.group(1)
        stage = shown.split(":", 1)[0]
        # "..." stands for any text and "N" for a number of seconds, as the table's reader takes them.
        pattern = re.escape(shown).replace(r"\.\.\.", ".*").replace(r"\ N\ ", r"\ [\d.]+\ ")
        rows.append((stage, re.compile(pattern)))
    return rows


def _stage_labels(text: str, stage: str) -> list[str]:
    """Every place ``text`` labels ``stage``: ``run: ``, ``stage run``, ``stage 'run'``.

    Not ``sim:run`` (an entrypoint), ``run=`` (a timing) or ``in run`` (a traceback frame).
    """
    return re.findall(rf"(?<![\w:./-]){stage}: |\bstage\s+'?{stage}\b", text)


def _assert_shown_once_as_in_the_readme(text: str, stage: str, edge: str) -> str:
    labels = _stage_labels(text, stage)
    assert len(labels) == 1, f"{edge} must show the stage {stage!r} exactly once, found {labels}:\n{text[-3000:]}"
    line = text[text.index(labels[0]):].splitlines()[0]
    rows = [pattern for row_stage, pattern in _readme_rows() if row_stage == stage]
    assert any(p.match(line) for p in rows), \
        f"{edge} printed {line!r}, which matches no README row for {stage!r} ({[p.pattern for p in rows]})"
    return line


def test_the_readme_table_lists_exactly_the_stages_the_code_reports() -> None:
    stages = [stage for stage, _ in _readme_rows()]
    assert set(stages) == set(STAGES), f"README table rows name {sorted(set(stages))}, the code reports {STAGES}"
    assert list(dict.fromkeys(stages)) == list(STAGES), "the table lists the stages in the order they run"
    prose = (REPO / "README.md").read_text().split("## Reading a smoke-test failure", 1)[1].split("|", 1)[0]
    listed = re.findall(r"`(\w+)`", prose.split("run the stages", 1)[1].split(".", 1)[0])
    assert listed == list(STAGES), f"the README's list of stages {listed} is not {list(STAGES)}"


def _cli_args(case: str, tmp_path: Path, registry, cluster, make_bundle,
              monkeypatch: pytest.MonkeyPatch) -> list[str]:
    if case == "pack":
        (tmp_path / "empty").mkdir()
        return ["-b", str(tmp_path / "empty"), "-r", registry.address, "-s", cluster.scheduler_address]
    if case == "push":
        monkeypatch.setenv("MODELOPS_BUNDLE_TIMEOUT", "2")
        return ["-r", f"127.0.0.1:{free_port()}", "-s", cluster.scheduler_address]
    if case == "connect":
        return ["-r", registry.address, "-s", f"tcp://127.0.0.1:{free_port()}", "--timeout", "2"]
    return ["-b", str(make_bundle("stageonce", RAISING)), "-r", registry.address, "-s", cluster.scheduler_address]


@pytest.mark.parametrize("stage", ["pack", "push", "connect", "run"])
def test_mops_smoke_test_shows_the_failed_stage_once_as_in_the_readme(
        stage, mops, tmp_path, registry, cluster, make_bundle, monkeypatch) -> None:  # noqa: F811
    result = mops("dev", "smoke-test", *_cli_args(stage, tmp_path, registry, cluster, make_bundle, monkeypatch))
    assert result.exit_code == ExitCode.FAILURE, result.output
    line = _assert_shown_once_as_in_the_readme(result.stdout + result.stderr, stage, "mops dev smoke-test")
    assert f"mops: error: {line}" in result.stderr, "the one stage label is the error boundary's, on stderr"


FAILING = """
import pulumi
from modelops_infra.infra.smoke import BundleSmokeTest, BundleSmokeTestArgs, resolve_smoke_bundle

bundle, digest = resolve_smoke_bundle({bundle!r})
smoke = BundleSmokeTest("smoke", BundleSmokeTestArgs(
    login_server="{registry}", bundle=bundle, bundle_digest=digest, scheduler_address="{scheduler}", timeout=60))
pulumi.export("bundle_ref", smoke.bundle_ref)
"""


def test_pulumi_up_and_mops_show_a_run_failure_once_and_alike(mops, tmp_path, registry, cluster,  # noqa: F811
                                                               make_bundle) -> None:
    bundle = make_bundle("bothedges", RAISING)
    cli = mops("dev", "smoke-test", "-b", bundle, "-r", registry.address, "-s", cluster.scheduler_address)
    assert cli.exit_code == ExitCode.FAILURE, cli.output
    cli_line = _assert_shown_once_as_in_the_readme(cli.stdout + cli.stderr, "run", "mops dev smoke-test")

    project = make_project(tmp_path / "p", FAILING.format(bundle=str(bundle), registry=registry.address,
                                                          scheduler=cluster.scheduler_address))
    result = project.up(check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0, "a failing smoke test must fail the deploy"
    up_line = _assert_shown_once_as_in_the_readme(text, "run", "pulumi up")
    assert f"SmokeTestError: {up_line}" in text, f"expected the provider's SmokeTestError line:\n{text[-3000:]}"
    assert "boom from inside the bundle" in text, "the deploy names the bundle's own error"
    # Both edges render the same error the same way: the same line, up to the end of the first line.
    assert up_line.startswith(cli_line.split(" (+", 1)[0]), f"mops said {cli_line!r}, pulumi up said {up_line!r}"
