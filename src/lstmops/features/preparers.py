"""The shared base of every problem's preparer: raw table -> model-ready arrays, predictions -> readable outputs.

Each problem module defines its own preparer class (its ``PREPARER``) on
:class:`Preparer` and the helpers here. A preparer is built from a problem's ``Params``
and the out-of-range policy, is fitted on the training table only, and saves to plain
JSON together with its fitted transformers, so the very same preparation is re-applied
to every later table. Model-ready dtypes: uint8 for one-hot encodings and frames,
float32 for scaled values. Errors name the table row by position (``table.iloc[row]``).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from lstmops.errors import DataError
from lstmops.features.transformers import POLICIES, load_json
from lstmops.features.transformers import from_dict as transformer_from_dict
from lstmops.problems import get_problem

_FAMILY = re.compile(r"^([a-z])_\d+$")


class Preparer:
    """Base preparer: column checks, fitted-state bookkeeping, JSON save and restore.

    A subclass defined in ``lstmops/problems/<name>.py`` serves problem ``<name>``
    (``name`` is set from the module unless the class gives it).
    """

    name: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__dict__.get("name"):
            cls.name = cls.__module__.rsplit(".", 1)[-1]

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
        problem = get_problem(self.name)
        self.input_columns = problem.input_columns(params)
        self.target_columns = problem.target_columns(params)
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
        problem = get_problem(name)
        preparer = problem.PREPARER(problem.Params.model_validate(data["params"]), data["policy"], data["tolerance"])
        preparer.transformers = {key: transformer_from_dict(t) for key, t in data["transformers"].items()}
        preparer.fitted = bool(data["fitted"])
        return preparer


def as_integers(values: np.ndarray, columns: list[str]) -> np.ndarray:
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


def as_binary(values: np.ndarray, columns: list[str]) -> np.ndarray:
    """0/1 labels as uint8; anything else raises, naming row and column."""
    values = as_integers(values, columns)
    bad = (values != 0) & (values != 1)
    if bad.any():
        row, col = np.argwhere(bad.reshape(len(values), -1))[0]
        raise DataError(f"column {columns[col]!r}: row {row} is {values.reshape(len(values), -1)[row, col]}, not 0 or 1")
    return values.astype(np.uint8)


def make_preparer(name: str, params: Any, policy: str = "reject", tolerance: float = 1e-6) -> Preparer:
    """An unfitted preparer of problem ``name``, or a one-line KeyError naming the known ones."""
    return get_problem(name).PREPARER(params, policy, tolerance)


def load_preparer(path: Any) -> Preparer:
    """Read a preparer saved with :func:`lstmops.features.transformers.save_json`."""
    return load_json(path, registry={"Preparer": Preparer})


def __getattr__(attr: str) -> Any:
    # PREPARERS ({problem: its preparer class}) is built on first use: the problem
    # modules import this one for the base class, so it cannot import them at load time.
    if attr == "PREPARERS":
        from lstmops.problems import PROBLEMS

        return {name: module.PREPARER for name, module in PROBLEMS.items()}
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
