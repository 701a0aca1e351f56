"""Rectangle generation: draw a rectangle point by point from the origin (Generative LSTM).

Raw table: ``width`` and ``height`` and the four corners clockwise from the origin,
``x_0, y_0 .. x_3, y_3`` = (0,0), (w,0), (w,h), (0,h).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.features.preparers import Preparer
from lstmops.features.transformers import MinMaxScaler
from lstmops.problems.contract import Contract

ORDER = 6
TASK = "draw a rectangle point by point from the origin"
GENERATIVE = True  # shapes are drawn from the origin: no inputs, scored from the drawings alone
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


def per_example(table: pd.DataFrame, predicted: list) -> np.ndarray:
    """Per drawn shape: its geometric error plus how far its width and height fall outside the range
    of the shapes the process now makes (``table``), so a generator that still draws shapes the
    process no longer makes scores worse after drift. Lower is better."""
    points = np.asarray(predicted, dtype=np.float64).reshape(-1, 4, 2)
    width, height = points[:, 1, 0], points[:, 2, 1]
    outside = np.zeros(len(points))
    for drawn, column in ((width, "width"), (height, "height")):
        low, high = float(table[column].min()), float(table[column].max())
        outside += np.clip(low - drawn, 0, None) + np.clip(drawn - high, 0, None)
    return geometric_error(points) + outside

def score_outputs(outputs: list) -> dict[str, float]:
    """Skill of drawn shapes without targets: mean geometric error and the spread of widths and heights
    (a collapsed generator has none)."""
    points = np.asarray(outputs, dtype=np.float64).reshape(-1, 4, 2)
    return {"geometric_error": float(geometric_error(points).mean()),
            "width_std": float(points[:, 1, 0].std()), "height_std": float(points[:, 2, 1].std())}


def draw(model: Any, preparer: "RectanglesPreparer", n: int, rng: np.random.Generator,
         temperature: float = 1.0) -> np.ndarray:
    """Draw ``n`` shapes (n, 4, 2) from the origin, feeding each sampled point back in.

    A temperature below 1 draws components and noise more conservatively: fewer
    wildly wrong points, still widths and heights spread over the training range.
    """
    from lstmops.modeling.architectures import generative
    from lstmops.modeling.training import predict

    x = preparer.encode_points(np.zeros((n, 2)))
    points = [np.zeros((n, 2))]
    for _ in range(3):
        nxt = generative.sample(predict(model, x), rng, temperature).astype(np.float32)
        points.append(np.asarray(preparer.decode(nxt), dtype=np.float64))
        x = nxt.reshape(n, 1, 2)
    return np.stack(points, axis=1)


draw_metrics = shape_metrics  # evaluation adds these for the shapes drawn in each run


def after_finalize(model: Any, preparer: "RectanglesPreparer", model_spec: Any, rng: np.random.Generator,
                   folder: Path) -> None:
    """Picture 16 rectangles drawn by the finalized model (``generated.png``)."""
    from lstmops.modeling import plots

    shapes = draw(model, preparer, 16, rng, model_spec.temperature)
    plots.rectangles(shapes, "rectangles drawn by the finalized model from (0, 0)", folder / "generated.png")


class RectanglesPreparer(Preparer):
    """Rectangles: 3 (point -> next point) pairs per rectangle, inputs (3n, 1, 2), targets (3n, 2)."""

    def _make_transformers(self) -> dict[str, Any]:
        # Per feature: widths and heights may drift apart, and each axis keeps its own range.
        return {"points": MinMaxScaler(policy=self.policy, feature_names=("x", "y"), tolerance=self.tolerance)}

    def _points(self, table: pd.DataFrame) -> np.ndarray:
        return self._frame(table, POINT_COLUMNS).astype(np.float64).reshape(-1, 4, 2)

    def _fit(self, table: pd.DataFrame) -> None:
        self.transformers["points"].fit(self._points(table))

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        scaled = self.transformers["points"].transform(self._points(table)[:, :3], POINT_COLUMNS[:6])
        return scaled.reshape(-1, 1, 2).astype(np.float32)

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        scaled = self.transformers["points"].transform(self._points(table)[:, 1:], enforce_range=False)
        return scaled.reshape(-1, 2).astype(np.float32)

    def encode_points(self, points: Any) -> np.ndarray:
        """Model inputs (m, 1, 2) for raw (x, y) points, e.g. the origin that starts generation."""
        self._require_fitted()
        scaled = self.transformers["points"].transform(np.asarray(points, dtype=np.float64).reshape(-1, 2))
        return scaled.reshape(-1, 1, 2).astype(np.float32)

    def _decode(self, predictions: Any) -> list[tuple[float, float]]:
        points = self.transformers["points"].inverse_transform(np.asarray(predictions).reshape(-1, 2))
        return [(float(x), float(y)) for x, y in points]

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (1, 2), (2,)


PREPARER = RectanglesPreparer


def describe_output(output: Any) -> str:
    """The drawn points, e.g. ``(0.00, 0.00) (0.61, 0.00) (0.61, 0.34) (0.00, 0.34)``."""
    return " ".join(f"({x:.2f}, {y:.2f})" for x, y in output)


def as_targets(output: Any) -> dict[str, Any]:
    """The drawn points as ``x_0, y_0 .. x_3, y_3``."""
    return {f"{axis}_{i}": point[k] for i, point in enumerate(output) for k, axis in enumerate("xy")}


def input_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """No drift features: shapes are drawn from the origin, without inputs."""
    return pd.DataFrame(index=table.index)


def outcome_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of shapes (drawn or made by the process): width and height of their bounding box."""
    xs = table[[f"x_{i}" for i in range(4)]].to_numpy(dtype=np.float64)
    ys = table[[f"y_{i}" for i in range(4)]].to_numpy(dtype=np.float64)
    return pd.DataFrame({"width": xs.max(axis=1) - xs.min(axis=1), "height": ys.max(axis=1) - ys.min(axis=1)})
