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

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.problems.contract import Contract


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
