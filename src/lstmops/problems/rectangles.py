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


HEAD = "mixture"  # output layer family the problem needs (see lstmops.modeling.architectures.spec)
LOSS = "mixture_nll"
PRIMARY_METRIC = "geometric_error"
HIGHER_IS_BETTER = False


def geometric_error(points: np.ndarray) -> np.ndarray:
    """Per shape, the mean distance from being a rectangle drawn clockwise from the origin.

    For points p0..p3 (after p0 = origin) the four conditions are: p1 on the x axis,
    p2 straight above p1, p3 on the y axis, p3 level with p2. The error is the mean
    absolute violation of those four conditions, in the units of the drawing.
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 4, 2)
    terms = np.stack([
        np.abs(p[:, 1, 1]),                 # y1 = 0
        np.abs(p[:, 2, 0] - p[:, 1, 0]),    # x2 = x1
        np.abs(p[:, 3, 0]),                 # x3 = 0
        np.abs(p[:, 3, 1] - p[:, 2, 1]),    # y3 = y2
    ], axis=1)
    return terms.mean(axis=1)


def coverage(generated: np.ndarray, reference: np.ndarray, bins: int = 10) -> float:
    """Share of equal-width bins over the reference range that generated values reach.

    A bin counts as covered when it holds at least half the share it has in the
    reference; a generator that collapses to one shape covers about 1/bins.
    """
    lo, hi = float(np.min(reference)), float(np.max(reference))
    edges = np.linspace(lo, hi, bins + 1)
    want = np.histogram(reference, edges)[0] / max(len(reference), 1)
    got = np.histogram(np.clip(generated, lo, hi), edges)[0] / max(len(generated), 1)
    return float(np.mean(got >= 0.5 * want))


def shape_metrics(points: np.ndarray, train_table: pd.DataFrame) -> dict[str, float]:
    """Skill of generated shapes: geometric error and width/height coverage of the training range."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 4, 2)
    widths, heights = p[:, 1, 0], p[:, 2, 1]
    return {
        "geometric_error": float(geometric_error(p).mean()),
        "width_coverage": coverage(widths, train_table["width"].to_numpy()),
        "height_coverage": coverage(heights, train_table["height"].to_numpy()),
        "width_std": float(widths.std()),
        "height_std": float(heights.std()),
    }


def score(table: pd.DataFrame, predicted: list) -> dict[str, float]:
    """Teacher-forced skill: mean absolute error of each predicted next point."""
    truth = table[POINT_COLUMNS].to_numpy(dtype=np.float64).reshape(-1, 4, 2)[:, 1:].reshape(-1, 2)
    return {"next_point_mae": float(np.abs(np.asarray(predicted, dtype=np.float64) - truth).mean())}
