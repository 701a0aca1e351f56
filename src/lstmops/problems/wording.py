"""Helpers for how problems word their inputs and predictions (``describe_input``/``describe_output``)."""

from __future__ import annotations

import re
from typing import Any

_STEP = re.compile(r"^[a-z]_(\d+)$")


def series(row: dict[str, Any], prefix: str) -> list[Any]:
    """The values of ``prefix0``, ``prefix1``, .. (e.g. ``x_``) of one row, in step order."""
    keys = sorted((k for k in row if k.startswith(prefix) and _STEP.match(k)), key=lambda k: int(k.split("_")[1]))
    return [row[k] for k in keys]


def numbers(values: list[float], digits: int, keep: int = 0) -> str:
    """Numbers with ``digits`` decimals; with ``keep``, only the first and last ``keep`` around an ellipsis."""
    shown = [f"{v:.{digits}f}" for v in values]
    if keep and len(shown) > 2 * keep + 1:
        shown = [*shown[:keep], "…", *shown[-keep:]]
    return " ".join(shown)
