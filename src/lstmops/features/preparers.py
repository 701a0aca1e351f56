"""One preparer per problem: raw table -> model-ready arrays, predictions -> readable outputs.

A preparer is built from a problem's ``Params`` and the out-of-range policy, is fitted
on the training table only, and saves to plain JSON together with its fitted
transformers, so the very same preparation is re-applied to every later table.
Model-ready dtypes: uint8 for one-hot encodings and frames, float32 for scaled values.
Errors name the table row by position (``table.iloc[row]``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Iterator

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from lstmops.errors import DataError
from lstmops.features.transformers import POLICIES, CharVocabulary, MinMaxScaler, OneHotEncoder, load_json
from lstmops.features.transformers import from_dict as transformer_from_dict
from lstmops.problems import PROBLEMS, addition, rectangles

_FAMILY = re.compile(r"^([a-z])_\d+$")


class Preparer:
    """Base preparer: column checks, fitted-state bookkeeping, JSON save and restore."""

    name: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def __init__(self, params: Any, policy: str = "reject", tolerance: float = 1e-6):
        """Build an unfitted preparer.

        Args:
            params: the problem's ``Params``; shapes and widths come from it.
            policy: ``reject`` or ``clip`` for scaled inputs outside the fitted range.
            tolerance: share of a fitted range inputs may overshoot before the policy applies.
        """
        if policy not in POLICIES:
            raise ValueError(f"out-of-range policy must be one of {POLICIES}, not {policy!r}")
        self.params, self.policy, self.tolerance = params, policy, float(tolerance)
        self.input_columns = PROBLEMS[self.name].input_columns(params)
        self.target_columns = PROBLEMS[self.name].target_columns(params)
        self.transformers: dict[str, Any] = self._make_transformers()
        self.fitted = False

    def _make_transformers(self) -> dict[str, Any]:
        return {}

    def _fit(self, table: pd.DataFrame) -> None:
        raise NotImplementedError

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    _targets = _inputs

    def _decode(self, predictions: Any) -> list[Any]:
        raise NotImplementedError

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        raise NotImplementedError

    def fit(self, train_table: pd.DataFrame) -> "Preparer":
        """Fit every transformer on the training table only."""
        self._fit(train_table)
        self.fitted = True
        return self

    def _frame(self, table: pd.DataFrame, columns: list[str]) -> np.ndarray:
        """The values of ``columns``; missing or shape-changing extra columns raise."""
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise DataError(f"{self.name} preparer: the table lacks column(s) {', '.join(missing)}")
        families = {m.group(1) for m in map(_FAMILY.match, columns) if m}
        extra = [c for c in table.columns if (m := _FAMILY.match(str(c))) and m.group(1) in families
                 and c not in columns]
        if extra:  # a longer sequence needs another model: never truncate silently
            raise DataError(f"{self.name} preparer: the table has column(s) {', '.join(extra)} beyond the "
                            f"fitted layout ({columns[0]}..{columns[-1]}); a different shape needs a new model")
        return table[columns].to_numpy()

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"the {self.name} preparer is not fitted yet; call fit(train_table) first")

    def inputs(self, table: pd.DataFrame) -> np.ndarray:
        """Model inputs of every row of ``table``."""
        self._require_fitted()
        return self._inputs(table)

    def targets(self, table: pd.DataFrame) -> np.ndarray:
        """Model targets of every row of ``table``."""
        self._require_fitted()
        return self._targets(table)

    def decode(self, predictions: Any) -> list[Any]:
        """Human-readable outputs from model predictions (the inverse preparation)."""
        self._require_fitted()
        return self._decode(predictions)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example's model input."""
        return self._shapes()[0]

    @property
    def target_shape(self) -> tuple[int, ...]:
        """Shape of one example's model target."""
        return self._shapes()[1]

    def to_dict(self) -> dict[str, Any]:
        """Problem, params, policy and fitted transformers as JSON-able data."""
        return {"type": "Preparer", "version": self.VERSION, "problem": self.name,
                "params": self.params.model_dump(mode="json"), "policy": self.policy,
                "tolerance": self.tolerance, "fitted": self.fitted,
                "transformers": {key: t.to_dict() for key, t in self.transformers.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preparer":
        """Restore the preparer of whichever problem ``data`` names."""
        if data.get("type") != "Preparer" or data.get("version") != cls.VERSION:
            raise ValueError(f"cannot restore a Preparer v{cls.VERSION} from {data.get('type')} v{data.get('version')}")
        name = data["problem"]
        params = PROBLEMS[name].Params.model_validate(data["params"])
        preparer = PREPARERS[name](params, data["policy"], data["tolerance"])
        preparer.transformers = {key: transformer_from_dict(t) for key, t in data["transformers"].items()}
        preparer.fitted = bool(data["fitted"])
        return preparer


def _integers(values: np.ndarray, columns: list[str]) -> np.ndarray:
    """``values`` as int64; NaN or fractional values raise, naming row and column."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    numeric = values.astype(np.float64)
    bad = ~np.isfinite(numeric) | (numeric != np.round(numeric))
    if bad.any():
        row, col = np.argwhere(bad.reshape(len(values), -1))[0]
        raise DataError(f"column {columns[col]!r}: row {row} is {numeric.reshape(len(values), -1)[row, col]}, "
                        "not an integer")
    return numeric.astype(np.int64)


def _binary(values: np.ndarray, columns: list[str]) -> np.ndarray:
    """0/1 labels as uint8; anything else raises, naming row and column."""
    values = _integers(values, columns)
    bad = (values != 0) & (values != 1)
    if bad.any():
        row, col = np.argwhere(bad.reshape(len(values), -1))[0]
        raise DataError(f"column {columns[col]!r}: row {row} is {values.reshape(len(values), -1)[row, col]}, not 0 or 1")
    return values.astype(np.uint8)


class EchoPreparer(Preparer):
    """Echo: one-hot input steps (n, length, n_features) and one-hot target (n, n_features)."""

    name = "echo"

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


class DampedSinePreparer(Preparer):
    """Damped sine: inputs (n, length, 1) and targets (n, n_out), float32, one shared scale."""

    name = "damped_sine"

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

    name = "moving_square"

    def _paths(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Validated pixel rows and columns per frame."""
        cols = self.input_columns
        pixels = _integers(self._frame(table, cols), cols)
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
        return _binary(self._frame(table, self.target_columns), self.target_columns)

    def _decode(self, predictions: Any) -> list[str]:
        p = np.asarray(predictions, dtype=np.float64).reshape(-1)
        return ["right" if v >= 0.5 else "left" for v in p]

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        size = self.params.size
        return (size, size, size, 1), (1,)


class AdditionPreparer(Preparer):
    """Addition: one-hot characters, inputs (n, in_width, 12) and targets (n, out_width, 12), uint8."""

    name = "addition"

    def _make_transformers(self) -> dict[str, Any]:
        # The declared alphabet (digits, '+', pad) keeps 12 symbols on both sides, as the
        # reference model expects, whatever digits a training sample happens to contain.
        return {"expression": CharVocabulary(addition.input_width(self.params), addition.ALPHABET),
                "answer": CharVocabulary(addition.output_width(self.params), addition.ALPHABET)}

    def _texts(self, table: pd.DataFrame) -> np.ndarray:
        return self._frame(table, self.input_columns)[:, 0]

    def _answers(self, table: pd.DataFrame) -> np.ndarray:
        return _integers(self._frame(table, self.target_columns)[:, 0], self.target_columns).astype(str)

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
        symbols = len(set(addition.ALPHABET) | {CharVocabulary.PAD})
        return (addition.input_width(self.params), symbols), (addition.output_width(self.params), symbols)


class CumulativeSumPreparer(Preparer):
    """Cumulative sum: scaled inputs (n, T, 1) float32, per-step 0/1 targets (n, T, 1) uint8."""

    name = "cumulative_sum"

    def _make_transformers(self) -> dict[str, Any]:
        return {"values": MinMaxScaler(policy=self.policy, per_feature=False, tolerance=self.tolerance)}

    def _fit(self, table: pd.DataFrame) -> None:
        self.transformers["values"].fit(self._frame(table, self.input_columns))

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        scaled = self.transformers["values"].transform(self._frame(table, self.input_columns), self.input_columns)
        return scaled[..., None].astype(np.float32)

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        return _binary(self._frame(table, self.target_columns), self.target_columns)[..., None]

    def _decode(self, predictions: Any) -> list[list[int]]:
        p = np.asarray(predictions, dtype=np.float64).reshape(-1, self.params.n_timesteps)
        return (p >= 0.5).astype(int).tolist()

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.params.n_timesteps, 1), (self.params.n_timesteps, 1)


class RectanglesPreparer(Preparer):
    """Rectangles: 3 (point -> next point) pairs per rectangle, inputs (3n, 1, 2), targets (3n, 2)."""

    name = "rectangles"

    def _make_transformers(self) -> dict[str, Any]:
        # Per feature: widths and heights may drift apart, and each axis keeps its own range.
        return {"points": MinMaxScaler(policy=self.policy, feature_names=("x", "y"), tolerance=self.tolerance)}

    def _points(self, table: pd.DataFrame) -> np.ndarray:
        return self._frame(table, rectangles.POINT_COLUMNS).astype(np.float64).reshape(-1, 4, 2)

    def _fit(self, table: pd.DataFrame) -> None:
        self.transformers["points"].fit(self._points(table))

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        scaled = self.transformers["points"].transform(self._points(table)[:, :3], rectangles.POINT_COLUMNS[:6])
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


PREPARERS: dict[str, type[Preparer]] = {
    cls.name: cls for cls in (EchoPreparer, DampedSinePreparer, MovingSquarePreparer, AdditionPreparer,
                              CumulativeSumPreparer, RectanglesPreparer)
}


def make_preparer(name: str, params: Any, policy: str = "reject", tolerance: float = 1e-6) -> Preparer:
    """An unfitted preparer of problem ``name``, or a one-line KeyError naming the known ones."""
    if name not in PREPARERS:
        raise KeyError(f"unknown problem {name!r} (known: {', '.join(PREPARERS)})")
    return PREPARERS[name](params, policy, tolerance)


def load_preparer(path: Any) -> Preparer:
    """Read a preparer saved with :func:`lstmops.features.transformers.save_json`."""
    return load_json(path, registry={"Preparer": Preparer})
