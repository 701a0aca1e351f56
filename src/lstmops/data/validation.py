"""Check a raw table against its problem's :class:`Contract` with Great Expectations.

This is the only module that imports great_expectations, and it does so lazily: the
import costs about 3 s, which paths that never validate (CLI ``--help``, ``predict``)
should not pay. Callers get the project's own :class:`ValidationReport`, built from
GE's result objects by key and expectation id, never by position, so a change in
GE's result layout breaks here and nowhere else.

Each call builds a fresh ephemeral GE context: nothing is written anywhere unless
``docs_dir`` is given, in which case a static Data Docs site (``index.html``) for this
one validation is built there; use one directory per validated table.
:func:`validate_tables` validates several tables (a problem's splits) side by side in
forked processes: GE's run is pure Python, bound by its per-expectation bookkeeping.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmops.errors import DataError
from lstmops.problems.contract import Contract, RowCheck

CHECK_PREFIX = "check__"
SAMPLE_SIZE = 5

# Dtype names as GE's ExpectColumnValuesToBeInTypeList resolves them in 1.24: numpy
# names through np.dtype, pandas nullable dtypes only through their class names
# (``getattr(pd, name)``), so "Int64" would silently match nothing. Object columns are
# checked value by value instead, which is why "str" lists the python type name.
_TYPE_LISTS: dict[str, list[str]] = {
    "int": [*(f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)),
            *(f"{s}Int{b}Dtype" for s in ("", "U") for b in (8, 16, 32, 64))],
    "float": ["float16", "float32", "float64", "Float32Dtype", "Float64Dtype"],
    "str": ["str", "StringDtype"],
}

_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": SAMPLE_SIZE}
# A column of the wrong type must fail its expectation, not abort the whole run
# (GE's default differs between expectation classes).
_SAFE = {"catch_exceptions": True}


class ContractViolation(DataError):
    """A table broke its data contract; ``report`` holds the details."""

    def __init__(self, report: "ValidationReport") -> None:
        super().__init__(report.summary())
        self.report = report


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation, in the project's terms.

    Attributes:
        expectation: GE expectation type, e.g. ``expect_column_values_to_be_between``.
        column: the column it applies to (for a check, the derived ``check__`` column).
        check: the contract check name, for row checks; else None.
        success: whether it passed.
        unexpected_count: offending rows; None for whole-table or whole-column checks.
        sample_rows: up to five offending row labels.
        sample_values: the values in those rows, JSON-serialisable.
        observed: GE's observed value for aggregate expectations (dtype, row count...).
        error: why it could not be evaluated (GE exception or a raising check), if so.
    """

    expectation: str
    column: str | None
    check: str | None
    success: bool
    unexpected_count: int | None = None
    sample_rows: list = field(default_factory=list)
    sample_values: list = field(default_factory=list)
    observed: Any = None
    error: str | None = None

    def describe(self) -> str:
        """One phrase naming this expectation and what went wrong."""
        name = f"check {self.check}" if self.check else self.expectation
        if self.column and not self.check:
            name += f" on {self.column}"
        detail = _detail(self)
        return f"{name} ({detail})" if detail else name


@dataclass(frozen=True)
class ValidationReport:
    """Everything a validation found, looked up from GE's results by name."""

    success: bool
    suite: str
    n_rows: int
    results: list[ExpectationResult]
    docs_index: str | None = None

    def failures(self) -> list[ExpectationResult]:
        """The expectations that failed, in suite order."""
        return [r for r in self.results if not r.success]

    def to_dict(self) -> dict:
        """A JSON-serialisable form of the report.

        Leaves out ``docs_index``: an absolute path differs per machine, and this dict is
        written to a DVC output that later stages depend on.
        """
        return {
            "suite": self.suite,
            "success": self.success,
            "n_rows": self.n_rows,
            "n_expectations": len(self.results),
            "n_failed": len(self.failures()),
            "results": [_jsonable(vars(r)) for r in self.results],
        }

    def summary(self) -> str:
        """One line: how many expectations failed, which, and sample bad values."""
        failed = self.failures()
        total = len(self.results)
        if not failed:
            return f"{self.suite}: all {total} expectations passed ({self.n_rows} rows)"
        parts = "; ".join(r.describe() for r in failed)
        return f"{self.suite}: {len(failed)} of {total} expectations failed: {parts}"


def require_valid(report: ValidationReport) -> ValidationReport:
    """Return ``report`` if it passed, else raise :class:`ContractViolation`."""
    if not report.success:
        raise ContractViolation(report)
    return report


def validate_table(
    table: pd.DataFrame, contract: Contract, *, suite_name: str, docs_dir: Path | None = None
) -> ValidationReport:
    """Validate ``table`` against ``contract`` with Great Expectations.

    Args:
        table: the raw table, one row per sequence; never modified.
        contract: what the table must satisfy.
        suite_name: names the suite and the report, e.g. ``"echo/train"``.
        docs_dir: if given, a static Data Docs site for this validation is built here.

    Returns:
        The report; it is produced even when columns are missing or checks raise.
    """
    gx = _import_gx()
    data, check_errors = _with_check_columns(table, contract)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", suite_name)  # GE file stores reject "/"
    context = _context(gx, docs_dir)
    # One add of the whole suite: suite.add_expectation re-serialises the stored suite
    # each time, which is quadratic (5 s for the ~170 expectations of a 57-column table).
    suite = context.suites.add(
        gx.ExpectationSuite(name=name, expectations=_expectations(contract, table.columns))
    )
    batch = (
        context.data_sources.add_pandas("lstmops")
        .add_dataframe_asset(name)
        .add_batch_definition_whole_dataframe("whole_table")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    outcome = definition.run(batch_parameters={"dataframe": data}, result_format=_RESULT_FORMAT)
    docs_index = _build_docs(context, docs_dir)
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    ge_results = sorted(outcome.results, key=lambda r: order.get(r.expectation_config.id, len(order)))
    results = [_convert(r, check_errors) for r in ge_results]
    return ValidationReport(
        success=bool(outcome.success), suite=suite_name, n_rows=len(table),
        results=results, docs_index=docs_index,
    )


# The tables and settings of the running validate_tables call, read by its forked children
# (inherited with the parent's memory, not pickled: contracts hold plain functions).
_PENDING: dict[str, Any] = {}


def validate_tables(
    tables: Mapping[str, pd.DataFrame], contract: Contract, *, suite_prefix: str,
    docs_dir: Path | None = None, workers: int = 1,
) -> dict[str, ValidationReport]:
    """:func:`validate_table` for each named table, up to ``workers`` at a time.

    Each table gets the suite name ``<suite_prefix>/<name>`` and, with ``docs_dir``, its
    own Data Docs site in ``docs_dir/<name>``. With ``workers`` > 1 (and where ``fork``
    exists) the tables are validated in forked child processes, which inherit Great
    Expectations already imported; the reports are the same as one by one, in the order
    of ``tables``. An error inside a child is raised here with its traceback.
    """
    names = list(tables)
    workers = max(1, min(workers, len(names)))
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        return {name: _validate_named(name, tables, contract, suite_prefix, docs_dir) for name in names}
    _import_gx()  # once, before forking
    _PENDING.update(tables=tables, contract=contract, suite_prefix=suite_prefix, docs_dir=docs_dir)
    try:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            futures = {name: pool.submit(_validate_pending, name) for name in names}
            return {name: future.result() for name, future in futures.items()}
    finally:
        _PENDING.clear()


def _validate_named(name: str, tables: Mapping[str, pd.DataFrame], contract: Contract, suite_prefix: str,
                    docs_dir: Path | None) -> ValidationReport:
    return validate_table(tables[name], contract, suite_name=f"{suite_prefix}/{name}",
                          docs_dir=None if docs_dir is None else Path(docs_dir) / name)


def _validate_pending(name: str) -> ValidationReport:
    """In a forked child: validate one table of the parent's :func:`validate_tables` call."""
    return _validate_named(name, _PENDING["tables"], _PENDING["contract"], _PENDING["suite_prefix"],
                           _PENDING["docs_dir"])


def _import_gx():
    """Import GE with analytics off (it reads the variable at import time)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _context(gx, docs_dir: Path | None):
    """A fresh ephemeral context, without progress bars, with at most our docs site."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # The ephemeral context ships a default site in a fresh temp dir that nobody
    # cleans up: drop it so building docs writes only where we were asked to.
    for site in list(context.list_data_docs_sites()):
        context.delete_data_docs_site(site)
    if docs_dir is not None:
        Path(docs_dir).mkdir(parents=True, exist_ok=True)
        context.add_data_docs_site("lstmops", {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(Path(docs_dir).resolve()),
            },
        })
    return context


def _build_docs(context, docs_dir: Path | None) -> str | None:
    """Render the stored suite and result into ``docs_dir``; the index path, if built."""
    if docs_dir is None:
        return None
    context.build_data_docs()
    return str(Path(docs_dir).resolve() / "index.html")


def _with_check_columns(table: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, dict[str, str]]:
    """A copy of ``table`` with one boolean ``check__<name>`` column per row check."""
    data = table.copy()
    outcomes = {name: _run_check(check, data) for name, check in contract.checks.items()}
    for name, (passed, _) in outcomes.items():
        data[CHECK_PREFIX + name] = passed
    return data, {name: err for name, (_, err) in outcomes.items() if err}


def _run_check(check: RowCheck, data: pd.DataFrame) -> tuple[np.ndarray, str | None]:
    """Per-row verdict of one check; every row fails if the check cannot run."""
    try:
        verdict = pd.array(np.asarray(check(data)), dtype="boolean")
        if len(verdict) != len(data):
            raise ValueError(f"returned {len(verdict)} values for {len(data)} rows")
        return verdict.fillna(False).to_numpy(dtype=bool), None
    # Checks run on untrusted tables (missing columns, wrong dtypes): any failure to
    # evaluate is a failed contract, reported, not a crash.
    except Exception as exc:  # noqa: BLE001
        return np.zeros(len(data), dtype=bool), f"{type(exc).__name__}: {exc}"


def _expectations(contract: Contract, present: pd.Index) -> list:
    """The GE expectations for ``contract``; value checks only on columns present."""
    import great_expectations.expectations as gxe

    checks = [CHECK_PREFIX + name for name in contract.checks]
    found = [
        # Derived check columns are appended to the copy, so they close the expected list.
        gxe.ExpectTableColumnsToMatchOrderedList(column_list=[*contract.dtypes, *checks], **_SAFE),
        gxe.ExpectTableRowCountToBeBetween(min_value=contract.min_rows, **_SAFE),
    ]
    for column, kind in contract.dtypes.items():
        if column in present:  # a missing column already fails the column list
            found += _column_expectations(gxe, contract, column, kind)
    for name, column in zip(contract.checks, checks):
        found.append(gxe.ExpectColumnValuesToBeInSet(
            column=column, value_set=[True], meta={"check": name}, **_SAFE))
    return found


def _column_expectations(gxe, contract: Contract, column: str, kind: str) -> list:
    """Not-null, dtype kind, range and value-set expectations for one column."""
    if kind not in _TYPE_LISTS:
        raise ValueError(f"column {column!r}: unknown dtype kind {kind!r} (known: {', '.join(_TYPE_LISTS)})")
    found = [
        gxe.ExpectColumnValuesToNotBeNull(column=column, **_SAFE),
        gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=_TYPE_LISTS[kind], **_SAFE),
    ]
    low, high = contract.ranges.get(column, (None, None))
    if low is not None or high is not None:
        found.append(gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=_jsonable(low), max_value=_jsonable(high), **_SAFE))
    if column in contract.value_sets:
        found.append(gxe.ExpectColumnValuesToBeInSet(
            column=column, value_set=_jsonable(list(contract.value_sets[column])), **_SAFE))
    return found


def _convert(ge_result, check_errors: dict[str, str]) -> ExpectationResult:
    """Our result from one GE ExpectationValidationResult, read by key."""
    config = ge_result.expectation_config
    check = (config.meta or {}).get("check")
    result = ge_result.result or {}
    return ExpectationResult(
        expectation=config.type,
        column=config.kwargs.get("column"),
        check=check,
        success=bool(ge_result.success),
        unexpected_count=result.get("unexpected_count"),
        sample_rows=_jsonable(_row_labels(result.get("partial_unexpected_index_list")))[:SAMPLE_SIZE],
        sample_values=_jsonable(result.get("partial_unexpected_list") or [])[:SAMPLE_SIZE],
        observed=_observed(config, result),
        error=check_errors.get(check) or _exception_message(ge_result),
    )


def _row_labels(index_list) -> list:
    """Row labels from GE's index list (plain labels, or dicts when index columns are named)."""
    return [next(iter(i.values())) if isinstance(i, dict) else i for i in index_list or []]


def _observed(config, result: dict) -> Any:
    """GE's observed value; for the column list, what is missing, extra or out of order."""
    observed = result.get("observed_value")
    if config.type == "expect_table_columns_to_match_ordered_list" and observed is not None:
        expected = list(config.kwargs.get("column_list") or [])
        return {
            "columns": _jsonable(observed),
            "missing": [c for c in expected if c not in observed],
            "extra": _jsonable([c for c in observed if c not in expected]),
        }
    return _jsonable(observed)


def _exception_message(ge_result) -> str | None:
    """The first exception message GE recorded for this expectation, if any."""
    info = ge_result.exception_info or {}
    # GE keeps one dict per failed metric, or a single flat dict for some failures.
    entries = [info] if "raised_exception" in info else list(info.values())
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = entry.get("exception_message") or "unknown error"
            return message.strip().splitlines()[-1]
    return None


def _detail(result: ExpectationResult) -> str:
    """The parenthesised part of a failure's description."""
    if result.check and result.error:
        return f"{result.unexpected_count} rows, check raised {result.error}"
    if result.error:
        return f"error: {result.error}"
    if result.unexpected_count:
        return _sample_phrase(result)
    observed = result.observed
    if isinstance(observed, dict) and "missing" in observed:
        missing, extra = observed["missing"], observed["extra"]
        if missing or extra:
            return "; ".join(p for p in (
                missing and f"missing {', '.join(map(str, missing))}",
                extra and f"extra {', '.join(map(str, extra))}") if p)
        return "order differs"
    return "" if observed is None else f"observed {observed}"


def _sample_phrase(result: ExpectationResult) -> str:
    """E.g. ``3 rows, e.g. row 7: 12`` (check values are all False, so rows only)."""
    n = result.unexpected_count
    rows = result.sample_rows[:3]
    head = f"{n} row{'s' if n != 1 else ''}"
    if not rows:
        return head
    if result.check:
        return f"{head}, e.g. row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))}"
    pairs = ", ".join(f"row {r}: {v!r}" for r, v in zip(rows, result.sample_values))
    return f"{head}, e.g. {pairs}"


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types: numpy scalars unwrapped, NaN as None, inf as text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray, pd.Index)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
