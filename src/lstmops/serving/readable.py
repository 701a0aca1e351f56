"""Predictions in words and in the raw table's own target columns.

``describe`` turns one raw input and its decoded prediction into a line a person can
check at a glance (``10+2+7 → 19``); ``as_targets`` writes the prediction back in the
target columns of the raw table (``answer``, ``y_0``..), so predicted and observed
files have the same layout.
"""

from __future__ import annotations

import re
from typing import Any

_STEP = re.compile(r"^[a-z]_(\d+)$")


def _series(row: dict[str, Any], prefix: str) -> list[Any]:
    keys = sorted((k for k in row if k.startswith(prefix) and _STEP.match(k)), key=lambda k: int(k.split("_")[1]))
    return [row[k] for k in keys]


def _numbers(values: list[float], digits: int, keep: int = 0) -> str:
    shown = [f"{v:.{digits}f}" for v in values]
    if keep and len(shown) > 2 * keep + 1:
        shown = [*shown[:keep], "…", *shown[-keep:]]
    return " ".join(shown)


def describe_input(problem: str, row: dict[str, Any]) -> str:
    """A short view of one raw input row (long sequences elided in the middle)."""
    if problem == "echo":
        return " ".join(str(v) for v in _series(row, "x_"))
    if problem == "damped_sine":
        return _numbers(_series(row, "x_"), 3, keep=3)
    if problem == "moving_square":
        rows, cols = _series(row, "r_"), _series(row, "c_")
        return f"line ({rows[0]}, {cols[0]}) … ({rows[-1]}, {cols[-1]})"
    if problem == "addition":
        return str(row["expression"])
    if problem == "cumulative_sum":
        return _numbers(_series(row, "x_"), 2)
    return ""


def describe_output(problem: str, output: Any) -> str:
    """One decoded prediction in words: a digit, a forecast, a direction, a sum, flags or points."""
    if problem == "damped_sine":
        return _numbers(output, 3)
    if problem == "addition":
        return "?" if output is None else str(output)
    if problem == "cumulative_sum":
        return " ".join(str(int(v)) for v in output)
    if problem == "rectangles":
        return " ".join(f"({x:.2f}, {y:.2f})" for x, y in output)
    return str(output)


def describe(problem: str, row: dict[str, Any], output: Any) -> str:
    """``input → prediction``, or just the drawn points for the generative problem."""
    seen = describe_input(problem, row)
    return f"{seen} → {describe_output(problem, output)}" if seen else describe_output(problem, output)


def as_targets(problem: str, output: Any) -> dict[str, Any]:
    """A decoded prediction in the raw table's target columns."""
    if problem == "echo":
        return {"target": output}
    if problem == "moving_square":
        return {"direction": 1 if output == "right" else 0}
    if problem == "addition":
        return {"answer": output}
    if problem in ("damped_sine", "cumulative_sum"):
        return {f"y_{i}": v for i, v in enumerate(output)}
    if problem == "rectangles":
        return {f"{axis}_{i}": point[k] for i, point in enumerate(output) for k, axis in enumerate("xy")}
    raise KeyError(f"unknown problem {problem!r}")
