"""Echo: remember the integer at a fixed position of a random sequence (Vanilla LSTM).

Raw table: ``x_0 .. x_{length-1}`` (ints in ``[0, n_features)``), ``target`` (the int
at ``out_index``) and ``out_index`` (the position the process used, so a label can be
checked even after concept drift moves it). The model sees only the ``x_*`` columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.features.preparers import Preparer
from lstmops.features.transformers import OneHotEncoder
from lstmops.problems.contract import Contract
from lstmops.problems.wording import series

ORDER = 1
TASK = "remember the integer at a fixed position of a sequence"


class Params(BaseModel):
    """Echo process parameters; defaults are the reference settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    length: int = Field(5, gt=0)
    n_features: int = Field(10, ge=2)
    out_index: int = Field(2, ge=0)

    @model_validator(mode="after")
    def _index_inside(self) -> "Params":
        if self.out_index >= self.length:
            raise ValueError(f"out_index ({self.out_index}) must be < length ({self.length})")
        return self


def input_columns(params: Params) -> list[str]:
    """The sequence columns fed to the model."""
    return [f"x_{i}" for i in range(params.length)]


def target_columns(params: Params) -> list[str]:
    """The column the model must predict."""
    return ["target"]


def generate(params: Params, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` echo sequences."""
    x = rng.integers(0, params.n_features, size=(n, params.length), dtype=np.int64)
    table = pd.DataFrame(x, columns=input_columns(params))
    table["target"] = x[:, params.out_index]
    table["out_index"] = np.full(n, params.out_index, dtype=np.int64)
    return table


def _target_is_echoed(table: pd.DataFrame) -> pd.Series:
    x = table.filter(regex=r"^x_\d+$").to_numpy()
    idx = table["out_index"].to_numpy()
    inside = (idx >= 0) & (idx < x.shape[1])
    picked = x[np.arange(len(table)), np.clip(idx, 0, x.shape[1] - 1)]
    return pd.Series(inside & (picked == table["target"].to_numpy()), index=table.index)


def contract(params: Params) -> Contract:
    """Shape, domain and label rules every echo table must satisfy."""
    cols = input_columns(params)
    dtypes = {c: "int" for c in cols} | {"target": "int", "out_index": "int"}
    symbols = tuple(range(params.n_features))
    return Contract(
        dtypes=dtypes,
        value_sets={c: symbols for c in [*cols, "target"]},
        ranges={"out_index": (0, params.length - 1)},
        checks={"target_equals_input_at_out_index": _target_is_echoed},
    )


HEAD = "softmax"  # output layer family the problem needs (see lstmops.modeling.architectures.spec)
LOSS = "categorical_crossentropy"
PRIMARY_METRIC = "accuracy"
HIGHER_IS_BETTER = True


def score(table: pd.DataFrame, predicted: list) -> dict[str, float]:
    """Share of sequences whose echoed integer was predicted exactly."""
    hits = np.asarray(predicted) == table["target"].to_numpy()
    return {"accuracy": float(hits.mean())}


def per_example(table: pd.DataFrame, predicted: list) -> np.ndarray:
    """1 where the echoed integer was predicted exactly, else 0 (their mean is the accuracy)."""
    return (np.asarray(predicted) == table["target"].to_numpy()).astype(np.float64)

class EchoPreparer(Preparer):
    """Echo: one-hot input steps (n, length, n_features) and one-hot target (n, n_features)."""

    def _make_transformers(self) -> dict[str, Any]:
        # Declared, not learned: the model's width is n_features whatever a sample holds,
        # and a symbol outside [0, n_features) after drift is rejected as unknown.
        return {"symbols": OneHotEncoder(categories=range(self.params.n_features))}

    def _fit(self, table: pd.DataFrame) -> None:
        self.transformers["symbols"].fit(self._frame(table, self.input_columns))

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        return self.transformers["symbols"].transform(self._frame(table, self.input_columns), self.input_columns)

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        return self.transformers["symbols"].transform(self._frame(table, self.target_columns)[:, 0], self.target_columns)

    def _decode(self, predictions: Any) -> list[int]:
        return [int(v) for v in self.transformers["symbols"].inverse_transform(predictions)]

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.params.length, self.params.n_features), (self.params.n_features,)


PREPARER = EchoPreparer


def describe_input(row: dict[str, Any]) -> str:
    """The sequence, e.g. ``3 1 7 0 2``."""
    return " ".join(str(v) for v in series(row, "x_"))


def as_targets(output: Any) -> dict[str, Any]:
    """The predicted integer as the ``target`` column."""
    return {"target": output}


def input_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the inputs: the value at each position (categorical), one row per sequence."""
    return pd.DataFrame({f"value_at_{i}": pd.Categorical(table[f"x_{i}"].astype(np.int64),
                                                         categories=range(params.n_features))
                         for i in range(params.length)})


def outcome_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the answers (true or predicted): the echoed value (categorical)."""
    return pd.DataFrame({"echoed": pd.Categorical(table["target"].astype(np.int64),
                                                  categories=range(params.n_features))})
