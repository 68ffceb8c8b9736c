"""Progress bars: only for transfers of a few MB or more, and only when stdout is a terminal."""

from __future__ import annotations

import pytest

from modelops_infra.cli import _console
from modelops_infra.cli._console import PROGRESS_MIN_BYTES, human_size, transfer_progress


def test_no_bar_when_stdout_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_console, "stdout_is_tty", lambda: False)
    with transfer_progress("push", 100 * PROGRESS_MIN_BYTES) as progress:
        assert progress is None


def test_no_bar_for_a_small_or_unknown_transfer_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_console, "stdout_is_tty", lambda: True)
    for total in (None, PROGRESS_MIN_BYTES - 1):
        with transfer_progress("push", total) as progress:
            assert progress is None, f"total={total} should get no bar"


def test_a_large_transfer_on_a_terminal_gets_a_callback_that_accepts_byte_counts(monkeypatch) -> None:
    monkeypatch.setattr(_console, "stdout_is_tty", lambda: True)
    with transfer_progress("push", 2 * PROGRESS_MIN_BYTES) as progress:
        assert callable(progress)
        progress(PROGRESS_MIN_BYTES)
        progress(PROGRESS_MIN_BYTES)


@pytest.mark.parametrize(("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 1024**2, "5.0 MiB"),
                                         (3 * 1024**4, "3072.0 GiB")])
def test_human_size(n: int, text: str) -> None:
    assert human_size(n) == text
