"""Damped sine wave: forecast the next ``n_out`` steps of a decaying wave (Stacked LSTM).

Raw table: ``x_0 .. x_{length-1}`` (observed values), ``y_0 .. y_{n_out-1}`` (the
forecast target), and the ``period`` and ``decay`` the wave was drawn with.
"""

from __future__ import annotations

import math

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.features.preparers import Preparer
from lstmops.features.transformers import MinMaxScaler
from lstmops.problems.contract import Contract
from lstmops.problems.wording import numbers, series

ORDER = 2
TASK = "forecast the next steps of a damped sine wave"


class Params(BaseModel):
    """Damped-sine process parameters; defaults are the reference settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    length: int = Field(50, gt=0)
    n_out: int = Field(5, gt=0)
    period_min: int = Field(10, ge=2)
    period_max: int = Field(20, ge=2)
    decay_min: float = Field(0.01, ge=0)
    decay_max: float = Field(0.1, ge=0)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "Params":
        if self.period_min > self.period_max:
            raise ValueError(f"period_min ({self.period_min}) must be <= period_max ({self.period_max})")
        if self.decay_min > self.decay_max:
            raise ValueError(f"decay_min ({self.decay_min}) must be <= decay_max ({self.decay_max})")
        return self


def input_columns(params: Params) -> list[str]:
    """The observed part of the wave."""
    return [f"x_{i}" for i in range(params.length)]


def target_columns(params: Params) -> list[str]:
    """The steps to forecast."""
    return [f"y_{i}" for i in range(params.n_out)]


# sin and exp of the C library, element by element: NumPy's own np.sin/np.exp pick a SIMD
# kernel by CPU (AVX-512 machines use other code than AVX2 ones), and their results differ
# in the last bit, which changed the raw data's checksum from one machine to the next.
_SIN = np.frompyfunc(math.sin, 1, 1)
_EXP = np.frompyfunc(math.exp, 1, 1)


def wave(period: np.ndarray, decay: np.ndarray, steps: int) -> np.ndarray:
    """Values ``0.5 + 0.5 sin(2 pi i / period) exp(-decay i)`` for i < steps, one row per wave.

    Bit for bit the same on every CPU (see ``_SIN``), so a build's raw data has the same
    checksum everywhere.
    """
    i = np.arange(steps, dtype=np.float64)[None, :]
    p = np.asarray(period, dtype=np.float64)[:, None]
    d = np.asarray(decay, dtype=np.float64)[:, None]
    sine = _SIN(2.0 * np.pi * i / p).astype(np.float64)
    damping = _EXP(-d * i).astype(np.float64)
    return 0.5 + 0.5 * sine * damping


def generate(params: Params, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` damped sine waves."""
    period = rng.integers(params.period_min, params.period_max + 1, size=n, dtype=np.int64)
    decay = rng.uniform(params.decay_min, params.decay_max, size=n)
    values = wave(period, decay, params.length + params.n_out)
    table = pd.DataFrame(values, columns=input_columns(params) + target_columns(params))
    table["period"] = period
    table["decay"] = decay
    return table


def _follows_the_wave(table: pd.DataFrame) -> pd.Series:
    series = table.filter(regex=r"^[xy]_\d+$")
    expected = wave(table["period"].to_numpy(), table["decay"].to_numpy(), series.shape[1])
    ok = np.isclose(series.to_numpy(dtype=np.float64), expected, atol=1e-9).all(axis=1)
    return pd.Series(ok, index=table.index)


def contract(params: Params) -> Contract:
    """Shape, domain and consistency rules every damped-sine table must satisfy."""
    values = input_columns(params) + target_columns(params)
    return Contract(
        dtypes={c: "float" for c in values} | {"period": "int", "decay": "float"},
        ranges={c: (0.0, 1.0) for c in values} | {"period": (2, None), "decay": (0.0, None)},
        checks={"values_follow_period_and_decay": _follows_the_wave},
    )


HEAD = "linear"  # output layer family the problem needs (see lstmops.modeling.architectures.spec)
LOSS = "mse"
PRIMARY_METRIC = "mae"
HIGHER_IS_BETTER = False


def score(table: pd.DataFrame, predicted: list) -> dict[str, float]:
    """Forecast errors in the original units: MAE (primary) and RMSE over all steps."""
    truth = table.filter(regex=r"^y_\d+$").to_numpy(dtype=np.float64)
    error = np.asarray(predicted, dtype=np.float64).reshape(truth.shape) - truth
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error**2).mean()))}


def per_example(table: pd.DataFrame, predicted: list) -> np.ndarray:
    """Each forecast's mean absolute error (their mean is the MAE)."""
    truth = table.filter(regex=r"^y_\d+$").to_numpy(dtype=np.float64)
    return np.abs(np.asarray(predicted, dtype=np.float64).reshape(truth.shape) - truth).mean(axis=1)

class DampedSinePreparer(Preparer):
    """Damped sine: inputs (n, length, 1) and targets (n, n_out), float32, one shared scale."""

    def _make_transformers(self) -> dict[str, Any]:
        return {"values": MinMaxScaler(policy=self.policy, per_feature=False, tolerance=self.tolerance)}

    def _fit(self, table: pd.DataFrame) -> None:
        # One scale fitted on x and y together: both are values of the same series, so
        # the model reads and writes the same units, and every training target lies
        # inside the fitted range, so the inverse is exact over all that was learned.
        self.transformers["values"].fit(np.hstack([self._frame(table, self.input_columns),
                                                   self._frame(table, self.target_columns)]))

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        scaled = self.transformers["values"].transform(self._frame(table, self.input_columns), self.input_columns)
        return scaled[..., None].astype(np.float32)

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        # The truth is scaled as it is: clipping or rejecting a target would falsify the score.
        values = self._frame(table, self.target_columns)
        return self.transformers["values"].transform(values, enforce_range=False).astype(np.float32)

    def _decode(self, predictions: Any) -> list[list[float]]:
        values = np.asarray(predictions, dtype=np.float64).reshape(-1, self.params.n_out)
        return self.transformers["values"].inverse_transform(values).tolist()

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.params.length, 1), (self.params.n_out,)


PREPARER = DampedSinePreparer


def describe_input(row: dict[str, Any]) -> str:
    """The first and last three observed values."""
    return numbers(series(row, "x_"), 3, keep=3)


def describe_output(output: Any) -> str:
    """The forecast, three decimals per step."""
    return numbers(output, 3)


def as_targets(output: Any) -> dict[str, Any]:
    """The forecast as ``y_0 .. y_{n_out-1}``."""
    return {f"y_{i}": v for i, v in enumerate(output)}


def input_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the observed waves, one row per sequence.

    ``level`` (mean), ``amplitude`` (max - min), ``period`` (the dominant period of the
    spectrum, in steps), ``decay`` (the per-step shrink of the spread from the first half
    to the second).
    """
    x = table[input_columns(params)].to_numpy(dtype=np.float64)
    n = x.shape[1]
    spectrum = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1))
    spectrum[:, 0] = 0.0
    peak = spectrum.argmax(axis=1)
    period = np.where(peak > 0, n / np.maximum(peak, 1), float(n))
    half = n // 2
    early, late = x[:, :half].std(axis=1), x[:, half:].std(axis=1)
    decay = np.log(np.maximum(early, 1e-9) / np.maximum(late, 1e-9)) / half
    return pd.DataFrame({"level": x.mean(axis=1), "amplitude": x.max(axis=1) - x.min(axis=1), "period": period,
                         "decay": decay})


def outcome_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the forecasts (true or predicted): their first value, level and change."""
    y = table[target_columns(params)].to_numpy(dtype=np.float64)
    return pd.DataFrame({"next": y[:, 0], "forecast_level": y.mean(axis=1), "forecast_change": y[:, -1] - y[:, 0]})
