"""Cumulative sum: flag each step once the running sum passes a threshold (Bidirectional LSTM).

Raw table: ``x_0 .. x_{n-1}`` (values in [0, 1]), ``y_0 .. y_{n-1}`` (1 once the
running sum up to that step has reached ``threshold``, else 0) and the ``threshold``
used (``threshold_fraction * n_timesteps``), so labels stay checkable under concept drift.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from lstmops.features.preparers import Preparer, as_binary
from lstmops.features.transformers import MinMaxScaler
from lstmops.problems.contract import Contract
from lstmops.problems.wording import numbers, series

ORDER = 5
TASK = "flag each step once a running sum passes a threshold"


class Params(BaseModel):
    """Cumulative-sum process parameters; defaults are the reference settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_timesteps: int = Field(10, gt=0)
    threshold_fraction: float = Field(0.25, gt=0, le=1)


def input_columns(params: Params) -> list[str]:
    """The random values."""
    return [f"x_{i}" for i in range(params.n_timesteps)]


def target_columns(params: Params) -> list[str]:
    """The per-step flags."""
    return [f"y_{i}" for i in range(params.n_timesteps)]


def labels(x: np.ndarray, threshold: np.ndarray | float) -> np.ndarray:
    """1 where the running sum of each row has reached its threshold, else 0."""
    limit = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (x.shape[0],))[:, None]
    return (np.cumsum(x, axis=1) >= limit).astype(np.int64)


def generate(params: Params, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` sequences with their per-step labels."""
    x = rng.random((n, params.n_timesteps))
    threshold = params.threshold_fraction * params.n_timesteps
    table = pd.DataFrame(x, columns=input_columns(params))
    table[target_columns(params)] = labels(x, threshold)
    table["threshold"] = np.full(n, threshold)
    return table


def _labels_agree(table: pd.DataFrame) -> pd.Series:
    x = table.filter(regex=r"^x_\d+$").to_numpy(dtype=np.float64)
    y = table.filter(regex=r"^y_\d+$").to_numpy()
    ok = (labels(x, table["threshold"].to_numpy()) == y).all(axis=1)
    return pd.Series(ok, index=table.index)


def contract(params: Params) -> Contract:
    """Shape, domain and label rules every cumulative-sum table must satisfy."""
    xs, ys = input_columns(params), target_columns(params)
    return Contract(
        dtypes={c: "float" for c in xs} | {c: "int" for c in ys} | {"threshold": "float"},
        ranges={c: (0.0, 1.0) for c in xs} | {"threshold": (0.0, float(params.n_timesteps))},
        value_sets={c: (0, 1) for c in ys},
        checks={"labels_agree_with_threshold": _labels_agree},
    )


HEAD = "step_sigmoid"  # output layer family the problem needs (see lstmops.modeling.architectures.spec)
LOSS = "binary_crossentropy"
PRIMARY_METRIC = "sequence_accuracy"
HIGHER_IS_BETTER = True


def score(table: pd.DataFrame, predicted: list) -> dict[str, float]:
    """Share of sequences entirely right (primary) and share of steps right."""
    truth = table.filter(regex=r"^y_\d+$").to_numpy()
    hits = np.asarray(predicted).reshape(truth.shape) == truth
    return {"sequence_accuracy": float(hits.all(axis=1).mean()), "step_accuracy": float(hits.mean())}


def per_example(table: pd.DataFrame, predicted: list) -> np.ndarray:
    """1 where every step of a sequence is right, else 0 (their mean is the whole-sequence accuracy)."""
    truth = table.filter(regex=r"^y_\d+$").to_numpy()
    return (np.asarray(predicted).reshape(truth.shape) == truth).all(axis=1).astype(np.float64)

class CumulativeSumPreparer(Preparer):
    """Cumulative sum: scaled inputs (n, T, 1) float32, per-step 0/1 targets (n, T, 1) uint8."""

    def _make_transformers(self) -> dict[str, Any]:
        return {"values": MinMaxScaler(policy=self.policy, per_feature=False, tolerance=self.tolerance)}

    def _fit(self, table: pd.DataFrame) -> None:
        self.transformers["values"].fit(self._frame(table, self.input_columns))

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        scaled = self.transformers["values"].transform(self._frame(table, self.input_columns), self.input_columns)
        return scaled[..., None].astype(np.float32)

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        return as_binary(self._frame(table, self.target_columns), self.target_columns)[..., None]

    def _decode(self, predictions: Any) -> list[list[int]]:
        p = np.asarray(predictions, dtype=np.float64).reshape(-1, self.params.n_timesteps)
        return (p >= 0.5).astype(int).tolist()

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.params.n_timesteps, 1), (self.params.n_timesteps, 1)


PREPARER = CumulativeSumPreparer


def describe_input(row: dict[str, Any]) -> str:
    """The values, two decimals each."""
    return numbers(series(row, "x_"), 2)


def describe_output(output: Any) -> str:
    """The per-step flags, e.g. ``0 0 1 1``."""
    return " ".join(str(int(v)) for v in output)


def as_targets(output: Any) -> dict[str, Any]:
    """The flags as ``y_0 .. y_{n-1}``."""
    return {f"y_{i}": v for i, v in enumerate(output)}


def input_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the inputs: the total and the step where the running sum first reaches the threshold.

    The threshold is the one of ``params`` (the deployed model's process), so a change of
    the process's threshold alone (concept drift) leaves these features unchanged.
    """
    x = table[input_columns(params)].to_numpy(dtype=np.float64)
    reached = np.cumsum(x, axis=1) >= params.threshold_fraction * params.n_timesteps
    first = np.where(reached.any(axis=1), reached.argmax(axis=1), params.n_timesteps)
    return pd.DataFrame({"total": x.sum(axis=1), "first_crossing": first.astype(np.float64),
                         "largest": x.max(axis=1)})


def outcome_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the labels (true or predicted): the first step labelled 1 (n_timesteps if none)."""
    y = table[target_columns(params)].to_numpy(dtype=np.int64)
    first = np.where(y.any(axis=1), y.argmax(axis=1), params.n_timesteps)
    return pd.DataFrame({"first_one": first.astype(np.float64), "ones": y.sum(axis=1).astype(np.float64)})
