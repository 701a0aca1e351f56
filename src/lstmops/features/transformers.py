"""Fitted transformers whose state is plain JSON: scalers, one-hot encoders, vocabularies.

Every transformer follows the estimator contract: ``fit`` learns state from training
data only and returns ``self``; ``transform`` / ``inverse_transform`` are pure;
``to_dict`` / ``from_dict`` save and restore that state as JSON-able data (no pickle).
Scaling and one-hot encoding are delegated to scikit-learn; restoring refits the
scikit-learn object on the saved extremes / categories, which reproduces its fitted
attributes exactly without touching its private state.

Errors name the row (0-based position in the given data), the column and the value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.preprocessing import MinMaxScaler as _SkMinMaxScaler
from sklearn.preprocessing import OneHotEncoder as _SkOneHotEncoder

from lstmops.errors import DataError

POLICIES = ("clip", "reject")


class OutOfRangeError(DataError):
    """An input lies outside the range a scaler was fitted on (policy ``reject``)."""


class UnknownCategoryError(DataError):
    """An input category or character was never seen (or declared) at fit time."""


def _label(index: tuple[int, ...], shape: tuple[int, ...], columns: Sequence[str] | None, fallback: str) -> str:
    """Name the position ``index[1:]`` of one row: a given column name, else ``fallback``."""
    rest = index[1:]
    if columns is not None and rest:
        return f"column {columns[int(np.ravel_multi_index(rest, shape[1:]))]!r}"
    if columns is not None:
        return f"column {columns[0]!r}"
    return fallback if not rest else f"{fallback} at position {tuple(int(i) for i in rest)}"


def _check_finite(values: np.ndarray, columns: Sequence[str] | None) -> None:
    """Raise a :class:`DataError` naming the first row holding NaN or inf."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        where = _label(first, values.shape, columns, "value")
        raise DataError(f"{where}: row {first[0]} is {float(values[first])}; NaN and inf are not allowed")


def _require(fitted: bool, what: str) -> None:
    if not fitted:
        raise NotFittedError(f"this {what} is not fitted yet; call fit() on training data first")


def _check_version(data: dict[str, Any], cls: type) -> None:
    if data.get("type") != cls.__name__ or data.get("version") != cls.VERSION:
        raise ValueError(f"cannot restore {cls.__name__} v{cls.VERSION} from {data.get('type')} v{data.get('version')}")


class MinMaxScaler:
    """Min-max scaling (scikit-learn) with an out-of-range policy: ``clip`` or ``reject``.

    Args:
        feature_range: the scaled range.
        policy: ``reject`` raises :class:`OutOfRangeError`; ``clip`` clips to the fitted range.
        per_feature: True scales each feature (last axis) separately; False shares one
            scale across every value, e.g. all time steps of a univariate sequence.
        feature_names: names of the features for error messages (per-feature mode).
        tolerance: share of the fitted range an input may overshoot unnoticed (float noise).
    """

    VERSION = 1

    def __init__(self, feature_range: tuple[float, float] = (0.0, 1.0), policy: str = "reject",
                 per_feature: bool = True, feature_names: Sequence[str] | None = None, tolerance: float = 1e-6):
        if policy not in POLICIES:
            raise ValueError(f"out-of-range policy must be one of {POLICIES}, not {policy!r}")
        self.feature_range = (float(feature_range[0]), float(feature_range[1]))
        self.policy = policy
        self.per_feature = per_feature
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.tolerance = float(tolerance)
        self._sk: _SkMinMaxScaler | None = None
        self.n_samples_seen_ = 0

    def _flat(self, values: np.ndarray) -> np.ndarray:
        return values.reshape(-1, values.shape[-1]) if self.per_feature else values.reshape(-1, 1)

    def _as_array(self, X: Any, columns: Sequence[str] | None) -> np.ndarray:
        values = np.asarray(X, dtype=np.float64)
        if values.ndim < (2 if self.per_feature else 1):
            raise ValueError(f"expected rows of values, got an array of shape {values.shape}")
        _check_finite(values, columns)
        return values

    def fit(self, X: Any) -> "MinMaxScaler":
        """Learn the minimum and maximum of the training values."""
        values = self._as_array(X, None)
        self._sk = _SkMinMaxScaler(feature_range=self.feature_range).fit(self._flat(values))
        self.n_samples_seen_ = int(self._sk.n_samples_seen_)
        return self

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """Fitted (minimum, maximum), one value per feature, or one in all when shared."""
        _require(self._sk is not None, "MinMaxScaler")
        return self._sk.data_min_, self._sk.data_max_

    def _outside(self, values: np.ndarray) -> np.ndarray:
        lo, hi = self.extremes()
        tol = self.tolerance * np.where(hi > lo, hi - lo, 1.0)
        if not self.per_feature:
            lo, hi, tol = lo[0], hi[0], tol[0]
        return (values < lo - tol) | (values > hi + tol)

    def _raise_outside(self, values: np.ndarray, outside: np.ndarray, columns: Sequence[str] | None) -> None:
        first = tuple(int(i) for i in np.argwhere(outside)[0])
        k = first[-1] if self.per_feature else 0
        if self.per_feature and columns is None:  # name the feature, then the position within the row
            name = self.feature_names[k] if self.feature_names else k
            where = _label(first[:-1], values.shape[:-1], None, f"feature {name!r}")
        else:
            where = _label(first, values.shape, columns, "value")
        lo, hi = (float(e[k]) for e in self.extremes())
        raise OutOfRangeError(f"{where}: row {first[0]} has value {float(values[first])!r}, outside the fitted "
                              f"range [{lo!r}, {hi!r}] ({int(outside.sum())} value(s) outside; policy 'reject')")

    def count_out_of_range(self, X: Any, columns: Sequence[str] | None = None) -> int:
        """How many values lie outside the fitted range (what ``clip`` would clip)."""
        return int(self._outside(self._as_array(X, columns)).sum())

    def transform(self, X: Any, columns: Sequence[str] | None = None, enforce_range: bool = True) -> np.ndarray:
        """Scale ``X`` (same shape, float64), applying the policy unless ``enforce_range`` is False.

        Args:
            X: array of shape (n, ..., n_features), or (n, ...) when the scale is shared.
            columns: names of the flattened positions of one row, for error messages.
            enforce_range: False maps linearly without checks (e.g. for true targets).
        """
        values = self._as_array(X, columns)
        _require(self._sk is not None, "MinMaxScaler")
        if enforce_range:
            outside = self._outside(values)
            if outside.any() and self.policy == "reject":
                self._raise_outside(values, outside, columns)
            lo, hi = self.extremes()
            values = np.clip(values, lo, hi) if self.per_feature else np.clip(values, lo[0], hi[0])
        return self._sk.transform(self._flat(values)).reshape(values.shape)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """Map scaled values back to the original scale (no range checks: predictions may overshoot)."""
        _require(self._sk is not None, "MinMaxScaler")
        values = np.asarray(X, dtype=np.float64)
        return self._sk.inverse_transform(self._flat(values)).reshape(values.shape)

    def to_dict(self) -> dict[str, Any]:
        """Settings and fitted extremes as JSON-able data."""
        lo, hi = self.extremes() if self._sk is not None else (None, None)
        return {"type": "MinMaxScaler", "version": self.VERSION, "feature_range": list(self.feature_range),
                "policy": self.policy, "per_feature": self.per_feature, "feature_names": self.feature_names,
                "tolerance": self.tolerance, "n_samples_seen": self.n_samples_seen_,
                "data_min": None if lo is None else lo.tolist(), "data_max": None if hi is None else hi.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MinMaxScaler":
        """Restore a scaler saved by :meth:`to_dict`."""
        _check_version(data, cls)
        scaler = cls(tuple(data["feature_range"]), data["policy"], data["per_feature"],
                     data["feature_names"], data["tolerance"])
        if data["data_min"] is not None:  # refitting on the two extremes reproduces every fitted attribute
            extremes = np.array([data["data_min"], data["data_max"]], dtype=np.float64)
            scaler._sk = _SkMinMaxScaler(feature_range=scaler.feature_range).fit(extremes)
            scaler.n_samples_seen_ = int(data["n_samples_seen"])
        return scaler


class OneHotEncoder:
    """One-hot encoding (scikit-learn) of integer categories shared by every position.

    Args:
        categories: the complete, fixed set of categories; None learns them from training data.
    """

    VERSION = 1

    def __init__(self, categories: Sequence[int] | None = None):
        self.categories = sorted(int(c) for c in categories) if categories is not None else None
        self._sk: _SkOneHotEncoder | None = None

    @property
    def categories_(self) -> np.ndarray:
        """The fitted categories, sorted."""
        _require(self._sk is not None, "OneHotEncoder")
        return self._sk.categories_[0]

    def _sk_fitted(self, categories: np.ndarray) -> _SkOneHotEncoder:
        encoder = _SkOneHotEncoder(categories=[categories], sparse_output=False, dtype=np.uint8)
        return encoder.fit(categories.reshape(-1, 1))

    def _check_known(self, values: np.ndarray, known: np.ndarray, columns: Sequence[str] | None) -> None:
        unknown = ~np.isin(values, known)
        if unknown.any():
            first = tuple(int(i) for i in np.argwhere(unknown)[0])
            where = _label(first, values.shape, columns, "value")
            raise UnknownCategoryError(f"{where}: row {first[0]} has unknown category {values[first].item()!r} "
                                       f"(known: {known.tolist()})")

    def _as_array(self, X: Any, columns: Sequence[str] | None) -> np.ndarray:
        values = np.asarray(X)
        if values.dtype.kind == "f":
            _check_finite(values, columns)
        elif values.dtype.kind not in "iub":
            raise ValueError(f"expected integer categories, got dtype {values.dtype}")
        return values

    def fit(self, X: Any) -> "OneHotEncoder":
        """Learn the categories (or check training data against the declared ones)."""
        values = self._as_array(X, None)
        if self.categories is None:
            known = np.unique(values).astype(np.int64)
        else:
            known = np.asarray(self.categories, dtype=np.int64)
            self._check_known(values, known, None)
        self._sk = self._sk_fitted(known)
        return self

    def transform(self, X: Any, columns: Sequence[str] | None = None) -> np.ndarray:
        """One-hot encode: shape (*X.shape, n_categories), uint8."""
        values = self._as_array(X, columns)
        self._check_known(values, self.categories_, columns)
        flat = values.reshape(-1, 1).astype(np.int64)
        return self._sk.transform(flat).reshape(*values.shape, len(self.categories_))

    def inverse_transform(self, P: Any) -> np.ndarray:
        """Categories from one-hot rows or probabilities (argmax over the last axis)."""
        return self.categories_[np.argmax(np.asarray(P), axis=-1)]

    def to_dict(self) -> dict[str, Any]:
        """Declared and fitted categories as JSON-able data."""
        fitted = self._sk is not None
        return {"type": "OneHotEncoder", "version": self.VERSION, "categories": self.categories,
                "fitted_categories": self.categories_.tolist() if fitted else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "OneHotEncoder":
        """Restore an encoder saved by :meth:`to_dict`."""
        _check_version(data, cls)
        encoder = cls(data["categories"])
        if data["fitted_categories"] is not None:
            encoder._sk = encoder._sk_fitted(np.asarray(data["fitted_categories"], dtype=np.int64))
        return encoder


class CharVocabulary:
    """Fixed-width character one-hot encoding of strings, left-padded with spaces.

    Args:
        width: the fixed string width; None learns the longest training string.
        alphabet: the complete, fixed set of characters (the pad is always added);
            None learns the characters of the training strings.
    """

    VERSION = 1
    PAD = " "

    def __init__(self, width: int | None = None, alphabet: str | None = None):
        self.width = width
        self.alphabet = alphabet
        self.chars_: list[str] | None = None
        self.width_: int | None = None

    def _as_array(self, strings: Any) -> np.ndarray:
        items = list(strings)
        bad = [i for i, s in enumerate(items) if not isinstance(s, str)]
        if bad:
            raise DataError(f"row {bad[0]}: expected a string, got {items[bad[0]]!r}")
        return np.array(items, dtype=str) if items else np.zeros(0, dtype="U1")

    def _codes(self, values: np.ndarray, width: int) -> np.ndarray:
        """Code points of the left-padded strings, shape (n, width); too-long strings raise."""
        lengths = np.char.str_len(values)
        if (lengths > width).any():
            row = int(np.argmax(lengths > width))
            raise DataError(f"row {row}: string {str(values[row])!r} has {int(lengths[row])} characters, "
                            f"more than the fitted width {width}")
        padded = np.char.rjust(values, width).astype(f"U{width}")
        return padded.view(np.uint32).reshape(len(values), width)

    def _lookup(self, values: np.ndarray, codes: np.ndarray, chars: Sequence[str]) -> np.ndarray:
        """Vocabulary index of every code point; a character outside the vocabulary raises."""
        known = np.array([ord(c) for c in chars], dtype=np.uint32)
        index = np.minimum(np.searchsorted(known, codes), len(known) - 1)
        unknown = known[index] != codes
        if unknown.any():
            row, col = (int(i) for i in np.argwhere(unknown)[0])
            raise UnknownCategoryError(f"row {row}: character {chr(codes[row, col])!r} in {str(values[row])!r} "
                                       f"is not in the vocabulary {''.join(chars)!r}")
        return index

    def fit(self, strings: Any) -> "CharVocabulary":
        """Learn the characters and the width of the training strings."""
        values = self._as_array(strings)
        learned = set("".join(values.tolist())) if self.alphabet is None else set(self.alphabet)
        chars = sorted(learned | {self.PAD})
        width = self.width if self.width is not None else int(np.char.str_len(values).max(initial=1))
        self._lookup(values, self._codes(values, width), chars)
        self.chars_, self.width_ = chars, width
        return self

    def indices(self, strings: Any) -> np.ndarray:
        """Vocabulary index of every character, shape (n, width), after left padding."""
        _require(self.chars_ is not None, "CharVocabulary")
        values = self._as_array(strings)
        return self._lookup(values, self._codes(values, self.width_), self.chars_)

    def transform(self, strings: Any) -> np.ndarray:
        """One-hot encode strings: shape (n, width, vocabulary size), uint8."""
        return np.eye(len(self.chars_ or []), dtype=np.uint8)[self.indices(strings)]

    def decode(self, P: Any) -> list[str]:
        """Strings from one-hot rows or probabilities (argmax per character), padding stripped."""
        _require(self.chars_ is not None, "CharVocabulary")
        chars = np.array(self.chars_, dtype="U1")[np.argmax(np.asarray(P), axis=-1)]
        return ["".join(row).strip(self.PAD) for row in chars.tolist()]

    inverse_transform = decode

    def to_dict(self) -> dict[str, Any]:
        """Settings and the fitted vocabulary and width as JSON-able data."""
        return {"type": "CharVocabulary", "version": self.VERSION, "width": self.width,
                "alphabet": self.alphabet, "chars": self.chars_, "fitted_width": self.width_}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CharVocabulary":
        """Restore a vocabulary saved by :meth:`to_dict`."""
        _check_version(data, cls)
        vocabulary = cls(data["width"], data["alphabet"])
        vocabulary.chars_, vocabulary.width_ = data["chars"], data["fitted_width"]
        return vocabulary


TRANSFORMERS: dict[str, type] = {cls.__name__: cls for cls in (MinMaxScaler, OneHotEncoder, CharVocabulary)}


def from_dict(data: dict[str, Any], registry: dict[str, type] | None = None) -> Any:
    """Restore an object saved by its ``to_dict``, choosing the class by its ``type`` key."""
    registry = TRANSFORMERS if registry is None else registry
    kind = data.get("type") if isinstance(data, dict) else None
    if kind not in registry:
        raise ValueError(f"unknown saved type {kind!r} (known: {', '.join(registry)})")
    return registry[kind].from_dict(data)


def save_json(obj: Any, path: Path | str) -> None:
    """Write ``obj.to_dict()`` (which carries ``type`` and ``version``) as strict JSON."""
    data = obj.to_dict()
    if "type" not in data or "version" not in data:
        raise ValueError("to_dict() must carry 'type' and 'version' keys")
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def load_json(path: Path | str, registry: dict[str, type] | None = None) -> Any:
    """Read an object written by :func:`save_json`, restoring the class named by ``type``."""
    return from_dict(json.loads(Path(path).read_text(encoding="utf-8")), registry)
