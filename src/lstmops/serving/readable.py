"""Predictions in words and in the raw table's own target columns.

``describe`` turns one raw input and its decoded prediction into a line a person can
check at a glance (``10+2+7 → 19``); ``as_targets`` writes the prediction back in the
target columns of the raw table (``answer``, ``y_0``..), so predicted and observed
files have the same layout. The wording is each problem module's own
(``describe_input``, ``describe_output``, ``as_targets``); these are the defaults.
"""

from __future__ import annotations

from typing import Any


def _module(problem: str) -> Any:
    from lstmops.problems import get_problem

    return get_problem(problem)


def describe_input(problem: str, row: dict[str, Any]) -> str:
    """A short view of one raw input row (by default its values joined by spaces; "" for no inputs)."""
    own = getattr(_module(problem), "describe_input", None)
    return own(row) if own else " ".join(str(v) for v in row.values())


def describe_output(problem: str, output: Any) -> str:
    """One decoded prediction in words: a digit, a forecast, a direction, a sum, flags or points."""
    own = getattr(_module(problem), "describe_output", None)
    return own(output) if own else str(output)


def describe(problem: str, row: dict[str, Any], output: Any) -> str:
    """``input → prediction``, or just the prediction when there is no input (a drawn shape)."""
    seen = describe_input(problem, row)
    return f"{seen} → {describe_output(problem, output)}" if seen else describe_output(problem, output)


def as_targets(problem: str, output: Any) -> dict[str, Any]:
    """A decoded prediction in the raw table's target columns (default: a list as ``y_i``, else ``target``)."""
    own = getattr(_module(problem), "as_targets", None)
    if own:
        return own(output)
    if isinstance(output, (list, tuple)):
        return {f"y_{i}": v for i, v in enumerate(output)}
    return {"target": output}
