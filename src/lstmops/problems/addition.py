"""Addition: read a sum written as text and write its answer (Encoder-Decoder LSTM).

Raw table: ``expression`` (e.g. ``"10+2+7"``, unpadded) and ``answer`` (its sum, an
int). Padding to the fixed input and output widths is the preparer's job; the widths
follow from ``n_terms`` and ``largest``, which therefore shape the model's input.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from lstmops.features.preparers import Preparer, as_integers
from lstmops.features.transformers import CharVocabulary
from lstmops.problems.contract import Contract

ORDER = 4
TASK = "add numbers written as text, answer as text"
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


def per_example(table: pd.DataFrame, predicted: list) -> np.ndarray:
    """1 where the whole answer is right, else 0 (their mean is the whole-answer accuracy)."""
    answers = [str(t) for t in table["answer"].to_numpy()]
    return np.array([p is not None and str(p) == a for p, a in zip(predicted, answers)], dtype=np.float64)

class AdditionPreparer(Preparer):
    """Addition: one-hot characters, inputs (n, in_width, 12) and targets (n, out_width, 12), uint8."""

    def _make_transformers(self) -> dict[str, Any]:
        # The declared alphabet (digits, '+', pad) keeps 12 symbols on both sides, as the
        # reference model expects, whatever digits a training sample happens to contain.
        return {"expression": CharVocabulary(input_width(self.params), ALPHABET),
                "answer": CharVocabulary(output_width(self.params), ALPHABET)}

    def _texts(self, table: pd.DataFrame) -> np.ndarray:
        return self._frame(table, self.input_columns)[:, 0]

    def _answers(self, table: pd.DataFrame) -> np.ndarray:
        return as_integers(self._frame(table, self.target_columns)[:, 0], self.target_columns).astype(str)

    def _fit(self, table: pd.DataFrame) -> None:
        self.transformers["expression"].fit(self._texts(table))
        self.transformers["answer"].fit(self._answers(table))

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        return self.transformers["expression"].transform(self._texts(table))

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        return self.transformers["answer"].transform(self._answers(table))

    def _decode(self, predictions: Any) -> list[int | None]:
        return [int(t) if t.isdigit() else None for t in self.transformers["answer"].decode(predictions)]

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        symbols = len(set(ALPHABET) | {CharVocabulary.PAD})
        return (input_width(self.params), symbols), (output_width(self.params), symbols)


PREPARER = AdditionPreparer


def describe_input(row: dict[str, Any]) -> str:
    """The expression as written, e.g. ``10+2+7``."""
    return str(row["expression"])


def describe_output(output: Any) -> str:
    """The answer, or ``?`` when the model wrote no number."""
    return "?" if output is None else str(output)


def as_targets(output: Any) -> dict[str, Any]:
    """The answer as the ``answer`` column."""
    return {"answer": output}


def check_texts(params: Params, texts: dict[str, pd.Series]) -> tuple[int, str] | None:
    """Expressions: digits and ``+`` only, ``n_terms`` terms, each at most ``largest``, within the input width.

    Returns the first bad row and what is wrong with it, or None when all are fine.
    """
    if "expression" not in texts:
        return None
    expressions = texts["expression"]
    n, largest = params.n_terms, params.largest
    example = "+".join(str(v) for v in (10, 2, 7, 4, 1, 9)[:n])
    empty = (expressions == "").to_numpy()
    chars = expressions.str.fullmatch(r"[0-9+]*").to_numpy()
    shaped = expressions.str.fullmatch(rf"\d+(\+\d+){{{n - 1}}}").to_numpy()
    long = (expressions.str.len() > input_width(params)).to_numpy()
    bad = np.flatnonzero(empty | ~chars | ~shaped | long)
    # as floats: a term of 2**63 or more must be refused as too big, not overflow int64
    terms = expressions.where(shaped, "+".join("0" * n)).str.split("+", expand=True).astype(np.float64).to_numpy()
    too_big = np.flatnonzero((terms > largest).any(axis=1))
    first = min([*bad[:1], *too_big[:1]], default=None)
    if first is None:
        return None
    text = expressions.iloc[first]
    if empty[first]:
        message = "column expression is empty"
    elif not chars[first]:
        char = re.search(r"[^0-9+]", text).group(0)
        message = f"expression {text!r} has unknown character {char!r} (only digits and +, e.g. {example})"
    elif not shaped[first]:
        message = f"expression {text!r} is malformed: expected {n} whole numbers joined by + (e.g. {example})"
    elif long[first]:
        message = f"expression {text!r} is {len(text)} characters long; the model reads at most {input_width(params)}"
    else:
        big = max(int(t) for t in text.split("+"))
        message = f"expression {text!r} has term {big}, above {largest}, the largest the model was trained on"
    return int(first), message


def input_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the sums asked: each term and their total, one row per expression."""
    terms = pd.DataFrame(_terms(table).tolist(), index=table.index).astype(np.int64)
    out = pd.DataFrame({f"term_{k + 1}": terms[k].to_numpy() for k in range(terms.shape[1])})
    out["sum_of_terms"] = terms.sum(axis=1).to_numpy()
    return out


def outcome_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the answers (true or predicted): the answer's value."""
    return pd.DataFrame({"answer": pd.to_numeric(table["answer"], errors="coerce").to_numpy(dtype=np.float64)})
