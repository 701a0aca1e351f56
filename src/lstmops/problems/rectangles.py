"""Rectangle generation: draw a rectangle point by point from the origin (Generative LSTM).

Raw table: ``width`` and ``height`` and the four corners clockwise from the origin,
``x_0, y_0 .. x_3, y_3`` = (0,0), (w,0), (w,h), (0,h).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.problems.contract import Contract

POINT_COLUMNS = [f"{axis}_{i}" for i in range(4) for axis in ("x", "y")]


class Params(BaseModel):
    """Rectangle process parameters; defaults are the reference settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    width_min: float = Field(0.0, ge=0)
    width_max: float = Field(1.0, gt=0)
    height_min: float = Field(0.0, ge=0)
    height_max: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "Params":
        if self.width_min >= self.width_max:
            raise ValueError(f"width_min ({self.width_min}) must be < width_max ({self.width_max})")
        if self.height_min >= self.height_max:
            raise ValueError(f"height_min ({self.height_min}) must be < height_max ({self.height_max})")
        return self


def input_columns(params: Params) -> list[str]:
    """The points; each one is the input for the next (teacher forcing)."""
    return list(POINT_COLUMNS)


def target_columns(params: Params) -> list[str]:
    """The same points, shifted by one when pairs are prepared."""
    return list(POINT_COLUMNS)


def corners(width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """The corners (n, 4, 2) of rectangles, clockwise from the origin."""
    zero = np.zeros_like(width)
    xs = np.stack([zero, width, width, zero], axis=1)
    ys = np.stack([zero, zero, height, height], axis=1)
    return np.stack([xs, ys], axis=2)


def generate(params: Params, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` rectangles."""
    width = rng.uniform(params.width_min, params.width_max, size=n)
    height = rng.uniform(params.height_min, params.height_max, size=n)
    table = pd.DataFrame({"width": width, "height": height})
    table[POINT_COLUMNS] = corners(width, height).reshape(n, 8)
    return table


def _points_agree(table: pd.DataFrame) -> pd.Series:
    expected = corners(table["width"].to_numpy(), table["height"].to_numpy()).reshape(len(table), 8)
    ok = np.isclose(table[POINT_COLUMNS].to_numpy(dtype=np.float64), expected, atol=1e-12).all(axis=1)
    return pd.Series(ok, index=table.index)


def contract(params: Params) -> Contract:
    """Domain and geometry rules every rectangle table must satisfy."""
    return Contract(
        dtypes={"width": "float", "height": "float"} | {c: "float" for c in POINT_COLUMNS},
        ranges={c: (0.0, None) for c in ["width", "height", *POINT_COLUMNS]},
        checks={"points_agree_with_width_and_height": _points_agree},
    )
