"""Raw rows checked before a model sees them: the data contract, syntax, the fitted ranges.

``predict`` checks the input columns and ``observe`` the target columns against the
data contract of the model's own fitted settings (columns, types, NaN/inf, ranges and
value sets, and the problem module's own ``check_texts``, e.g. addition's expression
syntax), with NumPy and pandas only: fast enough for the predict path, where Great
Expectations' import alone would take seconds. The fitted
preprocessing then applies its own range and vocabulary checks (policy ``reject`` or
``clip``), whose :class:`DataError` messages :func:`reworded` turns into the same one-line form.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

import pandas as pd

from lstmops.errors import BundleError, DataError
from lstmops.modeling.bundle import PREPROCESSING
from lstmops.serving.rawio import InputError, check_columns, column_text, typed_numbers
from lstmops.registry.versions import ModelVersion


def _params(problem: str, data: dict) -> Any:
    from lstmops.problems import get_problem

    return get_problem(problem).Params.model_validate(data)


def version_params(mv: ModelVersion) -> Any:
    """The process parameters a registered model was fitted with (read from its preprocessing JSON)."""
    try:
        data = json.loads((mv.folder / PREPROCESSING).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BundleError(f"{mv.problem} v{mv.version}: cannot read {PREPROCESSING}: {err}") from None
    return _params(mv.problem, data["params"])


def predict_columns(problem: str, params: Any) -> list[str]:
    """Raw columns ``predict`` needs: the input columns, none for a generative problem."""
    from lstmops.problems import get_problem, is_generative

    return [] if is_generative(problem) else get_problem(problem).input_columns(params)


def _typed(problem: str, params: Any, table: pd.DataFrame, columns: list[str], ids: Sequence[str]) -> pd.DataFrame:
    """``columns`` of ``table`` checked against the problem's data contract and typed."""
    from lstmops.problems import get_problem

    module = get_problem(problem)
    contract = module.contract(params)
    numeric = {c: contract.dtypes[c] for c in columns if contract.dtypes[c] in ("int", "float")}
    out = typed_numbers(problem, table, numeric, contract.ranges, contract.value_sets, ids) if numeric else None
    texts = {c: column_text(table[c]).str.replace(r"\s+", "", regex=True) for c in columns if c not in numeric}
    check_texts = getattr(module, "check_texts", None)
    found = check_texts(params, texts) if check_texts and texts else None
    if found is not None:
        row, message = found
        raise InputError(problem, message, row, ids)
    typed = pd.DataFrame(texts) if out is None else out.assign(**texts)
    return typed[columns]


def validate_inputs(problem: str, params: Any, table: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """The input columns of raw rows, checked and typed; a bad row raises :class:`InputError`."""
    from lstmops.problems import get_problem

    columns = predict_columns(problem, params)
    check_columns(problem, table, columns, ["id", *get_problem(problem).target_columns(params)])
    return _typed(problem, params, table, columns, ids)


def validate_targets(problem: str, params: Any, table: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """The true target columns of raw rows (for ``observe``), checked and typed."""
    from lstmops.problems import get_problem

    module = get_problem(problem)
    targets = module.target_columns(params)
    check_columns(problem, table, targets, ["id", "observed_at", *module.input_columns(params)])
    return _typed(problem, params, table, targets, ids)


def reworded(problem: str, err: DataError, ids: Sequence[str]) -> InputError:
    """A preparer's data error (rows counted from 0 in its own words) as a one-line :class:`InputError`.

    Only :class:`DataError` is worded as a bad row: any other exception is a bug, not the input's fault.
    """
    message = str(err)
    found = re.search(r"\brow (\d+)\b", message)
    if not found:
        return InputError(problem, message)
    detail = re.sub(r"^row \d+: ", "", message)
    detail = re.sub(r": row \d+ (has|is) ", r" \1 ", detail)
    return InputError(problem, detail, int(found.group(1)), ids)
