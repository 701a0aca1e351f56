"""Great Expectations validation of raw tables against their data contracts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from lstmops.problems import echo
from lstmops.problems.contract import Contract
from lstmops.data.validation import (ContractViolation, ValidationReport, require_valid, validate_table,
                                     validate_tables)

CHECK = "target_equals_input_at_out_index"


@pytest.fixture(scope="module")
def contract():
    """The echo contract at reference settings."""
    return echo.contract(echo.Params())


@pytest.fixture(scope="module")
def clean(contract) -> pd.DataFrame:
    """A clean echo table; tests mutate copies only."""
    return echo.generate(echo.Params(), 200, np.random.default_rng(0))


@pytest.fixture(scope="module")
def clean_report(clean, contract) -> ValidationReport:
    """The report of the clean table (also pays the GE import once for the module)."""
    return validate_table(clean, contract, suite_name="echo/train")


def failed(report: ValidationReport) -> set[tuple[str, str | None]]:
    """(expectation, column or check) of every failure."""
    return {(r.expectation, r.check or r.column) for r in report.failures()}


def test_clean_table_passes(clean_report, clean):
    assert clean_report.success, clean_report.summary()
    assert clean_report.failures() == []
    assert clean_report.n_rows == len(clean)
    assert clean_report.summary().startswith("echo/train: all ")
    assert require_valid(clean_report) is clean_report
    kinds = {r.expectation for r in clean_report.results}
    assert {
        "expect_table_columns_to_match_ordered_list", "expect_table_row_count_to_be_between",
        "expect_column_values_to_not_be_null", "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_be_between", "expect_column_values_to_be_in_set",
    } <= kinds
    assert [r.check for r in clean_report.results if r.check] == [CHECK]
    assert clean_report.results[0].expectation == "expect_table_columns_to_match_ordered_list"


def _set(table, row, column, value):
    table.loc[row, column] = value
    return table


def _shifted_target(table, row):
    table.loc[row, "target"] = (table.loc[row, "x_2"] + 1) % 10
    return table


VIOLATIONS = {
    "dropped column": (lambda t: t.drop(columns=["x_3"]),
                       ("expect_table_columns_to_match_ordered_list", None), "missing x_3"),
    "extra column": (lambda t: t.assign(leak=1),
                     ("expect_table_columns_to_match_ordered_list", None), "extra leak"),
    "null": (lambda t: _set(t, 3, "target", np.nan),
             ("expect_column_values_to_not_be_null", "target"), "row 3: None"),
    "float for int": (lambda t: t.astype({"x_1": "float64"}),
                      ("expect_column_values_to_be_in_type_list", "x_1"), "observed float64"),
    "out of range": (lambda t: _set(t, 5, "out_index", 9),
                     ("expect_column_values_to_be_between", "out_index"), "row 5: 9"),
    "outside set": (lambda t: _set(t, 7, "x_0", 12),
                    ("expect_column_values_to_be_in_set", "x_0"), "row 7: 12"),
    "broken label": (lambda t: _shifted_target(t, 4),
                     ("expect_column_values_to_be_in_set", CHECK), f"check {CHECK} (1 row, e.g. row 4)"),
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_each_violation_is_named(case, clean, contract):
    mutate, expected, fragment = VIOLATIONS[case]
    report = validate_table(mutate(clean.copy()), contract, suite_name="echo/train")
    assert not report.success
    assert expected in failed(report), report.summary()
    assert fragment in report.summary()


def test_only_the_broken_thing_fails(clean, contract):
    report = validate_table(_set(clean.copy(), 7, "x_0", 12), contract, suite_name="echo/train")
    assert failed(report) == {("expect_column_values_to_be_in_set", "x_0")}
    (bad,) = report.failures()
    assert (bad.unexpected_count, bad.sample_rows, bad.sample_values) == (1, [7], [12])
    assert report.summary().startswith(f"echo/train: 1 of {len(report.results)} expectations failed: ")


def test_too_few_rows(clean, contract):
    report = validate_table(clean, dataclasses.replace(contract, min_rows=500), suite_name="echo/train")
    assert failed(report) == {("expect_table_row_count_to_be_between", None)}
    assert "observed 200" in report.summary()
    empty = validate_table(clean.head(0), contract, suite_name="echo/train")
    assert ("expect_table_row_count_to_be_between", None) in failed(empty)


def test_check_that_cannot_run_fails_every_row(clean, contract):
    report = validate_table(clean.drop(columns=["target"]), contract, suite_name="echo/train")
    (check,) = [r for r in report.failures() if r.check == CHECK]
    assert check.unexpected_count == len(clean)
    assert check.error.startswith("KeyError")
    assert "missing target" in report.summary()
    # Value expectations on a missing column are skipped, not crashed on.
    assert not [r for r in report.results if r.column == "target"]


def test_caller_table_is_not_mutated(clean, contract):
    table = _set(clean.copy(), 7, "x_0", 12).astype({"x_1": "float64"})
    before = table.copy()
    validate_table(table, contract, suite_name="echo/train")
    pd.testing.assert_frame_equal(table, before)


def test_require_valid_raises_with_summary(clean, contract):
    report = validate_table(_shifted_target(clean.copy(), 4), contract, suite_name="echo/train")
    with pytest.raises(ContractViolation) as caught:
        require_valid(report)
    assert isinstance(caught.value, ValueError)
    assert caught.value.report is report
    assert str(caught.value) == report.summary()


def test_report_dict_is_strict_json(clean, contract):
    table = _set(_set(clean.copy(), 3, "target", np.nan), 5, "out_index", 9)
    report = validate_table(table, contract, suite_name="echo/train")
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert (data["success"], data["n_rows"], data["suite"]) == (False, 200, "echo/train")
    assert data["n_failed"] == len(report.failures()) >= 2
    nulls = [r for r in data["results"] if r["expectation"] == "expect_column_values_to_not_be_null"
             and r["column"] == "target"]
    assert nulls[0]["sample_rows"] == [3] and nulls[0]["sample_values"] == [None]


def test_data_docs_written_when_asked(clean, contract, tmp_path):
    docs = tmp_path / "docs"
    report = validate_table(clean, contract, suite_name="echo/train", docs_dir=docs)
    assert report.docs_index == str((docs / "index.html").resolve())
    assert (docs / "index.html").is_file()
    assert list(docs.glob("validations/**/*.html"))
    assert "echo-train" in (docs / "index.html").read_text()


def test_str_kind_checks_object_values():
    table = pd.DataFrame({"word": ["a", 1, "c"], "n": [1.5, 2.0, 3.0]})
    report = validate_table(table, Contract(dtypes={"word": "str", "n": "str"}), suite_name="words")
    assert failed(report) == {("expect_column_values_to_be_in_type_list", "word"),
                              ("expect_column_values_to_be_in_type_list", "n")}
    word = next(r for r in report.failures() if r.column == "word")
    assert (word.sample_rows, word.sample_values) == ([1], [1])


def test_unknown_dtype_kind_is_a_contract_bug(clean, contract):
    bad = dataclasses.replace(contract, dtypes=contract.dtypes | {"target": "complex"})
    with pytest.raises(ValueError, match="unknown dtype kind 'complex'"):
        validate_table(clean, bad, suite_name="echo/train")


def test_every_problem_clean_table_passes(problem, small_table):
    report = validate_table(small_table, problem.contract(problem.Params()), suite_name="clean")
    assert report.success, report.summary()


def test_tables_side_by_side_match_one_by_one(clean, contract, tmp_path):
    """Forked workers give the reports (and docs) of one-by-one runs, in the tables' order."""
    tables = {"train": clean, "validation": _set(clean.copy(), 7, "x_0", 12), "test": clean.head(50)}
    alone = validate_tables(tables, contract, suite_prefix="echo", docs_dir=tmp_path / "one", workers=1)
    forked = validate_tables(tables, contract, suite_prefix="echo", docs_dir=tmp_path / "two", workers=2)
    assert list(forked) == list(alone) == ["train", "validation", "test"]
    for name in tables:
        assert forked[name].to_dict() == alone[name].to_dict()
        assert alone[name].docs_index.endswith(f"one/{name}/index.html")
        assert forked[name].docs_index.endswith(f"two/{name}/index.html")
        assert (tmp_path / "two" / name / "index.html").is_file()
    assert [r.success for r in forked.values()] == [True, False, True]
    assert forked["validation"].suite == "echo/validation"
    assert forked["test"].n_rows == 50


def test_bug_in_a_worker_keeps_its_traceback(clean, contract):
    """An internal error inside a forked worker is raised in the caller, not swallowed."""
    bad = dataclasses.replace(contract, dtypes=contract.dtypes | {"target": "complex"})
    with pytest.raises(ValueError, match="unknown dtype kind 'complex'") as caught:
        validate_tables({"a": clean, "b": clean}, bad, suite_prefix="echo", workers=2)
    assert "_column_expectations" in str(caught.value.__cause__)  # the child's traceback, as text
