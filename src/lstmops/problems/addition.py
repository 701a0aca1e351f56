"""Addition: read a sum written as text and write its answer (Encoder-Decoder LSTM).

Raw table: ``expression`` (e.g. ``"10+2+7"``, unpadded) and ``answer`` (its sum, an
int). Padding to the fixed input and output widths is the preparer's job; the widths
follow from ``n_terms`` and ``largest``, which therefore shape the model's input.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.problems.contract import Contract

ALPHABET = "0123456789+ "


class Params(BaseModel):
    """Addition process parameters; defaults are the reference settings.

    Terms are uniform in ``smallest..largest``; raising ``smallest`` skews the terms
    towards large values without changing the input width.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_terms: int = Field(3, ge=2)
    largest: int = Field(10, ge=1)
    smallest: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _range_ordered(self) -> "Params":
        if self.smallest > self.largest:
            raise ValueError(f"smallest ({self.smallest}) must be <= largest ({self.largest})")
        return self


def input_width(params: Params) -> int:
    """Characters in the longest possible expression."""
    return params.n_terms * len(str(params.largest)) + params.n_terms - 1


def output_width(params: Params) -> int:
    """Characters in the longest possible answer."""
    return len(str(params.n_terms * params.largest))


def input_columns(params: Params) -> list[str]:
    """The expression text."""
    return ["expression"]


def target_columns(params: Params) -> list[str]:
    """The sum."""
    return ["answer"]


def generate(params: Params, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` sums of ``n_terms`` terms."""
    terms = rng.integers(params.smallest, params.largest + 1, size=(n, params.n_terms), dtype=np.int64)
    # Formatting each number once and indexing the results is far cheaper than
    # converting every term of every row to text.
    words = np.array([str(v) for v in range(params.largest + 1)], dtype=object)
    text = words[terms[:, 0]]
    for k in range(1, params.n_terms):
        text = text + "+" + words[terms[:, k]]
    return pd.DataFrame({"expression": text, "answer": terms.sum(axis=1)})


def _terms(table: pd.DataFrame) -> pd.Series:
    return table["expression"].astype(str).str.split("+", regex=False)


def contract(params: Params) -> Contract:
    """Syntax, width and answer rules every addition table must satisfy."""
    pattern = re.compile(rf"^\d+(\+\d+){{{params.n_terms - 1}}}$")
    largest = params.largest

    def well_formed(table: pd.DataFrame) -> pd.Series:
        return table["expression"].astype(str).map(lambda s: bool(pattern.match(s)))

    def terms_in_range(table: pd.DataFrame) -> pd.Series:
        ok = well_formed(table)
        return ok & _terms(table).map(lambda ts: all(t.isdigit() and int(t) <= largest for t in ts))

    def answer_is_sum(table: pd.DataFrame) -> pd.Series:
        ok = terms_in_range(table)
        sums = _terms(table).map(lambda ts: sum(int(t) for t in ts) if all(t.isdigit() for t in ts) else -1)
        return ok & (sums == table["answer"])

    return Contract(
        dtypes={"expression": "str", "answer": "int"},
        ranges={"answer": (0, params.n_terms * params.largest)},
        checks={
            "expression_well_formed": well_formed,
            "terms_at_most_largest": terms_in_range,
            "answer_equals_sum_of_terms": answer_is_sum,
        },
    )


HEAD = "sequence_softmax"  # output layer family the problem needs (see lstmops.modeling.architectures.spec)
LOSS = "categorical_crossentropy"
PRIMARY_METRIC = "sequence_accuracy"
HIGHER_IS_BETTER = True


def score(table: pd.DataFrame, predicted: list) -> dict[str, float]:
    """Whole-answer accuracy (primary) and per-character accuracy of the right-aligned answers."""
    answers = [str(t) for t in table["answer"].to_numpy()]
    guesses = ["" if p is None else str(p) for p in predicted]
    width = max(map(len, answers + guesses), default=1)

    def grid(texts: list[str]) -> np.ndarray:
        return np.array([t.rjust(width) for t in texts], dtype=f"U{width}").view("U1").reshape(-1, width)

    whole = np.array([g == a for g, a in zip(guesses, answers)])
    return {"sequence_accuracy": float(whole.mean()), "char_accuracy": float((grid(guesses) == grid(answers)).mean())}
