"""The data contract type shared by every problem module."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

RowCheck = Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Contract:
    """What a raw table of one problem must satisfy, in the project's own terms.

    The validation module turns it into a Great Expectations suite.

    Attributes:
        dtypes: every column, in order, with its dtype kind ("int", "float", "str").
        ranges: inclusive (min, max) per column; None leaves a side open.
        value_sets: allowed values per column.
        checks: named row-wise label/consistency checks, each returning a boolean
            Series (True = row is correct).
        min_rows: fewest rows a table may have.
    """

    dtypes: dict[str, str]
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    value_sets: dict[str, tuple] = field(default_factory=dict)
    checks: dict[str, RowCheck] = field(default_factory=dict)
    min_rows: int = 1
