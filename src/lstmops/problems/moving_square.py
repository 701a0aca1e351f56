"""Moving line: tell which way a line is being drawn across a video (CNN-LSTM).

Frame 0 of a ``size x size`` video lights one pixel in the first column (moving right)
or the last column (moving left); each next frame lights the next column, one row step
of at most ``max_step`` away, clipped to the image. The raw table keeps what the video
is made of, not its pixels: the pixel each frame adds, as rows ``r_0 .. r_{size-1}`` and
columns ``c_0 .. c_{size-1}`` (frame t lights pixel (r_t, c_t) and keeps the earlier
ones), ``direction`` (1 right, 0 left; the target) and the ``max_step`` used. Frames are
rendered from the pixel path by the preparer, in uint8, without reading the target.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.errors import DataError
from lstmops.features.preparers import Preparer, as_binary, as_integers
from lstmops.problems.contract import Contract
from lstmops.problems.wording import series

ORDER = 3
TASK = "tell which way a line is drawn across a video"
PREPARE_CHUNK_ROWS = 256  # frames are size^3 bytes each: predict renders them a chunk at a time


class Params(BaseModel):
    """Moving-line process parameters; defaults are the reference settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(50, ge=2)
    max_step: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _step_fits(self) -> "Params":
        if self.max_step >= self.size:
            raise ValueError(f"max_step ({self.max_step}) must be < size ({self.size})")
        return self


def row_columns(params: Params) -> list[str]:
    """Row of the pixel each frame adds."""
    return [f"r_{i}" for i in range(params.size)]


def col_columns(params: Params) -> list[str]:
    """Column of the pixel each frame adds."""
    return [f"c_{i}" for i in range(params.size)]


def input_columns(params: Params) -> list[str]:
    """The pixel path the frames are drawn from."""
    return row_columns(params) + col_columns(params)


def target_columns(params: Params) -> list[str]:
    """The direction of drawing."""
    return ["direction"]


def generate(params: Params, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` line-drawing videos as directions and row paths."""
    direction = rng.integers(0, 2, size=n, dtype=np.int64)
    rows = np.empty((n, params.size), dtype=np.int64)
    rows[:, 0] = rng.integers(0, params.size, size=n)
    steps = rng.integers(-params.max_step, params.max_step + 1, size=(n, params.size - 1))
    # Clipping makes each row depend on the clipped previous one, so the loop runs over
    # the columns (size steps), vectorised over all sequences at once.
    for i in range(1, params.size):
        rows[:, i] = np.clip(rows[:, i - 1] + steps[:, i - 1], 0, params.size - 1)
    step = np.arange(params.size)
    cols = np.where(direction[:, None] == 1, step, params.size - 1 - step)
    return pd.concat([
        pd.DataFrame({"direction": direction}),
        pd.DataFrame(rows, columns=row_columns(params)),
        pd.DataFrame(cols, columns=col_columns(params)),
        pd.DataFrame({"max_step": np.full(n, params.max_step, dtype=np.int64)}),
    ], axis=1)


def _steps_within_max(table: pd.DataFrame) -> pd.Series:
    rows = table.filter(regex=r"^r_\d+$").to_numpy()
    biggest = np.abs(np.diff(rows, axis=1)).max(axis=1, initial=0)
    return pd.Series(biggest <= table["max_step"].to_numpy(), index=table.index)


def _columns_follow_direction(table: pd.DataFrame) -> pd.Series:
    cols = table.filter(regex=r"^c_\d+$").to_numpy()
    step = np.arange(cols.shape[1])
    expected = np.where(table["direction"].to_numpy()[:, None] == 1, step, cols.shape[1] - 1 - step)
    return pd.Series((cols == expected).all(axis=1), index=table.index)


def contract(params: Params) -> Contract:
    """Shape, domain and path rules every moving-line table must satisfy."""
    pixels = input_columns(params)
    return Contract(
        dtypes={"direction": "int"} | {c: "int" for c in pixels} | {"max_step": "int"},
        value_sets={"direction": (0, 1)},
        ranges={c: (0, params.size - 1) for c in pixels} | {"max_step": (0, params.size - 1)},
        checks={
            "row_steps_within_max_step": _steps_within_max,
            "columns_drawn_one_by_one_in_direction": _columns_follow_direction,
        },
    )


HEAD = "sigmoid"  # output layer family the problem needs (see lstmops.modeling.architectures.spec)
LOSS = "binary_crossentropy"
PRIMARY_METRIC = "accuracy"
HIGHER_IS_BETTER = True


def score(table: pd.DataFrame, predicted: list) -> dict[str, float]:
    """Share of videos whose drawing direction was predicted right."""
    guessed = np.array([1 if p == "right" else 0 for p in predicted])
    return {"accuracy": float((guessed == table["direction"].to_numpy()).mean())}


def per_example(table: pd.DataFrame, predicted: list) -> np.ndarray:
    """1 where the direction was predicted right, else 0 (their mean is the accuracy)."""
    guessed = np.array([1 if p == "right" else 0 for p in predicted])
    return (guessed == table["direction"].to_numpy()).astype(np.float64)

def render_frames(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Frames (n, size, size, size, 1) uint8 of pixel paths, in one broadcast, no Python loop.

    Frame t lights pixel (rows[t], cols[t]) and keeps every earlier frame's pixel. Each
    column is lit once, so a column's row and drawing step fully describe it.
    """
    n, size = rows.shape
    step_of = np.argsort(cols, axis=1)           # step_of[c] = frame that lights column c
    row_of = np.take_along_axis(rows, step_of, axis=1)
    frame = np.arange(size)[None, :, None, None]
    pixel_row = np.arange(size)[None, None, :, None]
    lit = (row_of[:, None, None, :] == pixel_row) & (step_of[:, None, None, :] <= frame)
    return lit.view(np.uint8)[..., None]


class MovingSquarePreparer(Preparer):
    """Moving line: frames (n, size, size, size, 1) uint8 rendered from pixel paths; target (n, 1).

    Rendering reads only the pixel path (``r_*``, ``c_*``), never the target, so an
    unlabelled video given as its pixel path is prepared exactly like training data.
    """

    def _paths(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Validated pixel rows and columns per frame."""
        cols = self.input_columns
        pixels = as_integers(self._frame(table, cols), cols)
        outside = (pixels < 0) | (pixels >= self.params.size)
        if outside.any():
            row, col = np.argwhere(outside)[0]
            raise DataError(f"column {cols[col]!r}: row {row} is {pixels[row, col]}, outside the image "
                            f"[0, {self.params.size})")
        size = self.params.size
        rows, columns = pixels[:, :size], pixels[:, size:]
        repeated = (np.sort(columns, axis=1) != np.arange(size)).any(axis=1)
        if repeated.any():
            raise DataError(f"row {int(np.argmax(repeated))}: the c_* columns must light each image column "
                            f"exactly once (a permutation of 0..{size - 1})")
        return rows, columns

    def _fit(self, table: pd.DataFrame) -> None:
        self._paths(table)  # nothing to learn: the image size comes from params; only validate

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        return render_frames(*self._paths(table))

    def inputs_chunks(self, table: pd.DataFrame, chunk_rows: int = 256) -> Iterator[np.ndarray]:
        """The frames of consecutive row chunks, so a large set never sits in memory whole."""
        self._require_fitted()
        rows, columns = self._paths(table)
        for start in range(0, len(rows), chunk_rows):
            yield render_frames(rows[start:start + chunk_rows], columns[start:start + chunk_rows])

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        return as_binary(self._frame(table, self.target_columns), self.target_columns)

    def _decode(self, predictions: Any) -> list[str]:
        p = np.asarray(predictions, dtype=np.float64).reshape(-1)
        return ["right" if v >= 0.5 else "left" for v in p]

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        size = self.params.size
        return (size, size, size, 1), (1,)


PREPARER = MovingSquarePreparer


def describe_input(row: dict[str, Any]) -> str:
    """The line's first and last pixel, e.g. ``line (3, 0) … (5, 49)``."""
    rows, cols = series(row, "r_"), series(row, "c_")
    return f"line ({rows[0]}, {cols[0]}) … ({rows[-1]}, {cols[-1]})"


def as_targets(output: Any) -> dict[str, Any]:
    """``right``/``left`` as the ``direction`` column (1/0)."""
    return {"direction": 1 if output == "right" else 0}


def input_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the drawn paths: start row, mean and largest row step, one row per video."""
    rows = table[row_columns(params)].to_numpy(dtype=np.int64)
    steps = np.abs(np.diff(rows, axis=1))
    return pd.DataFrame({"start_row": rows[:, 0], "mean_step": steps.mean(axis=1),
                         "largest_step": steps.max(axis=1).astype(np.float64)})


def outcome_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the answers (true or predicted): the direction (categorical)."""
    return pd.DataFrame({"direction": pd.Categorical(table["direction"].astype(np.int64), categories=[0, 1])})
