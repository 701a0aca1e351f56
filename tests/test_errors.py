"""One error hierarchy: only :class:`LstmopsError` becomes a one-line user error; anything
else is a bug that keeps its traceback. Fast unit tests, no model is loaded."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from lstmops.errors import BundleError, DataError, DatabaseError, InputError, LstmopsError


def test_stage_run_main_prints_user_errors_and_lets_bugs_propagate(capsys):
    from lstmops.entry import run_main

    def user() -> None:
        raise InputError("echo row 1: column x_0 is 12, outside [0, 9]")

    with pytest.raises(SystemExit) as stopped:
        run_main(user, "stage")
    assert stopped.value.code == 2
    assert capsys.readouterr().err == "stage: error: echo row 1: column x_0 is 12, outside [0, 9]\n"

    for bug in (ValueError("boom"), KeyError("boom"), OSError("boom")):
        def buggy(err: Exception = bug) -> None:
            raise err

        with pytest.raises(type(bug), match="boom"):
            run_main(buggy, "stage")
    assert capsys.readouterr().err == ""


def test_data_errors_of_transformers_and_contracts_are_lstmops_errors():
    from lstmops.data.validation import ContractViolation
    from lstmops.features.transformers import MinMaxScaler, OutOfRangeError, UnknownCategoryError

    assert issubclass(OutOfRangeError, DataError) and issubclass(UnknownCategoryError, DataError)
    assert issubclass(ContractViolation, DataError)
    scaler = MinMaxScaler(policy="reject").fit([[0.0], [1.0]])
    with pytest.raises(OutOfRangeError):
        scaler.transform([[2.0]])
    with pytest.raises(DataError, match="NaN and inf are not allowed"):
        scaler.transform([[float("nan")]])


def test_unknown_problem_is_an_input_error_that_key_error_handlers_still_catch():
    from lstmops.problems import get_problem

    with pytest.raises(InputError) as caught:
        get_problem("nope")
    assert isinstance(caught.value, KeyError)
    assert str(caught.value).startswith("unknown problem 'nope' (known: echo")  # no KeyError quotes


def test_only_data_errors_of_a_preparer_are_worded_as_bad_rows():
    from lstmops.serving.predict import _prepared

    def served(err: Exception) -> SimpleNamespace:
        def inputs(table):
            raise err

        return SimpleNamespace(preparer=SimpleNamespace(inputs=inputs))

    table = pd.DataFrame({"x_0": [1, 2]})
    with pytest.raises(InputError, match=r"^echo row 2 \(id b\): column 'x_0' has value 9"):
        _prepared("echo", served(DataError("column 'x_0': row 1 has value 9")), table, ["a", "b"])
    for bug in (ValueError("row 1: boom"), KeyError("row 1"), IndexError("row 1")):
        with pytest.raises(type(bug)) as caught:
            _prepared("echo", served(bug), table, ["a", "b"])
        assert caught.value is bug  # not reworded, not wrapped


@pytest.mark.parametrize("value", ["99999999999999999999", 99999999999999999999, "9223372036854775807",
                                   "-9223372036854775809", 2**64, "1e30"])
def test_integers_too_large_for_int64_are_input_errors(value):
    from lstmops.serving.rawio import typed_numbers

    table = pd.DataFrame({"id": ["a", "b"], "x": [1, value]}, dtype=object)
    with pytest.raises(InputError, match=r"^p row 2 \(id b\): column x is \S+, too large for an integer$"):
        typed_numbers("p", table, {"x": "int"}, {}, {}, ["a", "b"])
    with pytest.raises(InputError, match=r"^p row 2 \(id b\): column x is \S+, outside \[0, 9\]$"):
        typed_numbers("p", table, {"x": "int"}, {"x": (0, 9)}, {}, ["a", "b"])
    fine = typed_numbers("p", table.iloc[:1], {"x": "int"}, {}, {}, ["a"])
    assert fine["x"].tolist() == [1] and str(fine["x"].dtype) == "int64"


def test_an_addition_term_of_2_to_the_63_is_too_big_not_an_overflow():
    from lstmops.problems.addition import Params, check_texts

    params = Params(largest=10**6)  # wide enough for a 19-digit term to pass the length check
    texts = pd.DataFrame({"expression": ["1+2+3", "9223372036854775808+1+1"]})
    row, message = check_texts(params, texts)
    assert row == 1
    assert message == "expression '9223372036854775808+1+1' has term 9223372036854775808, above 1000000, " \
                      "the largest the model was trained on"
    assert check_texts(params, pd.DataFrame({"expression": ["1000000+0+1"]})) is None


def test_input_files_that_cannot_be_read_are_input_errors(tmp_path):
    from lstmops.serving.rawio import format_of, read_source

    with pytest.raises(InputError, match="no input file"):
        read_source(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="no input file"):
        read_source(tmp_path)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,x\n\xe9,1\n")
    with pytest.raises(InputError, match=f"input file {latin} is not UTF-8 text"):
        read_source(latin)
    with pytest.raises(InputError, match="--format must be one of csv, jsonl, not 'xml'"):
        format_of("rows", "", "xml")


def test_a_failed_write_leaves_the_destination_untouched(tmp_path, monkeypatch):
    from lstmops.serving import rawio

    out = tmp_path / "out.csv"
    out.write_text("old\n")

    def full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rawio.os, "replace", full)
    with pytest.raises(InputError, match=f"^cannot write {out}: No space left on device$"):
        rawio.write_text("new\n", out)
    assert out.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    with pytest.raises(InputError, match="no folder"):
        rawio.check_writable(tmp_path / "missing" / "out.csv")
    with pytest.raises(InputError, match="it is a folder"):
        rawio.check_writable(tmp_path)


def test_cli_shows_user_errors_and_unreachable_databases_only():
    from sqlalchemy.exc import DatabaseError as SqlDatabaseError
    from sqlalchemy.exc import IntegrityError, OperationalError

    from lstmops import cli

    bundle = BundleError("echo v1: model.keras is missing")
    assert cli._user_error(bundle) is bundle
    shown = cli._user_error(OperationalError("SELECT 1", {}, Exception("unable to open database file")))
    assert isinstance(shown, DatabaseError) and isinstance(shown, LstmopsError)
    assert str(shown) == "the database cannot be used: unable to open database file"
    corrupt = cli._user_error(SqlDatabaseError("SELECT 1", {}, Exception("file is not a database")))
    assert str(corrupt) == "the database cannot be used: file is not a database"
    for bug in (ValueError("x"), KeyError("x"), OSError("x"), IntegrityError("INSERT", {}, Exception("dup"))):
        assert cli._user_error(bug) is None
