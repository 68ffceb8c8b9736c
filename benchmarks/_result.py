"""One benchmark figure: a ratio measured side by side, and the bar it must meet (``-`` = informational)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Result:
    name: str
    ratio: float
    bar: str
    passed: bool
    detail: str

    def line(self) -> str:
        status = "INFO" if self.bar == "-" else ("PASS" if self.passed else "FAIL")
        return f"{status}  {self.name:<30} ratio {self.ratio:6.3f}  bar {self.bar:<8} {self.detail}"
