"""The ``lstmops`` command line: help, sample -> predict -> observe -> skill for every problem,
one-line errors for every class of bad input with nothing logged, and the models commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lstmops import cli
from lstmops.problems import PROBLEMS
from lstmops.registry.versions import Registry
from lstmops.store.records import Store
from tiny_bundles import bundle_copy, repo_root_with_params, save_tiny_bundle, tiny_bundles

HEAVY = ("keras", "jax", "pandas", "sklearn", "great_expectations", "tensorflow", "scipy")


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """A repository root with the tiny params.yaml and every problem's tiny model registered as champion."""
    root = repo_root_with_params(tmp_path_factory.mktemp("repo"))
    url = f"sqlite:///{root / 'registry' / 'lstmops.db'}"
    registry = Registry(url, root / "registry")
    for name, folder in tiny_bundles().items():
        registry.register(name, folder)
        registry.promote(name, 1, reason="tiny test model")
    for policy in ("reject", "clip"):  # cumulative_sum v2 and v3: fitted on [0, 0.5] only
        registry.register("cumulative_sum", save_tiny_bundle("cumulative_sum", root / f"narrow-{policy}",
                                                             narrow=True, policy=policy))
    return {"LSTMOPS_ROOT": str(root), "LSTMOPS_DB_URL": url, "LSTMOPS_JAX_CACHE": str(root / "jax-cache")}


def run(env: dict[str, str], *args: str, input: str | None = None):
    return CliRunner().invoke(cli.app, list(args), env=env, input=input, catch_exceptions=False,
                             prog_name="lstmops")


def predictions(env: dict[str, str], problem: str) -> int:
    return Store(env["LSTMOPS_DB_URL"]).counts(problem)["predictions"]


def test_problem_names_are_the_registered_ones():
    assert set(cli.PROBLEM_NAMES) == set(PROBLEMS) and set(cli.TASKS) == set(PROBLEMS)


def test_help_answers_without_heavy_imports():
    code = ("import sys\nfrom lstmops import cli\nsys.argv = ['lstmops', '--help']\ntry:\n    cli.main()\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in %r if m in sys.modules))" % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "predict" in out.stdout and out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


@pytest.mark.parametrize("command", [[], ["problems"], ["sample"], ["predict"], ["observe"], ["skill"],
                                     ["models"], ["models", "list"], ["models", "show"], ["models", "rollback"],
                                     ["proposals"], ["proposals", "list"], ["approve"], ["reject"]])
def test_every_command_has_help(command, env):
    result = run(env, *command, "--help")
    assert result.exit_code == 0 and "Usage: lstmops" in result.stdout


def test_problems_lists_architectures_and_champions(env):
    rows = json.loads(run(env, "problems", "--json").stdout)
    assert [r["problem"] for r in rows] == list(cli.PROBLEM_NAMES)
    assert all(r["champion"] == 1 and r["versions"] >= 1 for r in rows)
    assert {r["problem"]: r["architecture"] for r in rows}["addition"] == "encoder_decoder"
    assert "encoder_decoder" in run(env, "problems").stdout


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_sample_predict_observe_skill(problem, env, tmp_path):
    rows = tmp_path / "rows.csv"
    assert run(env, "sample", problem, "-n", "4", "--seed", "3", "--with-targets", "-o", str(rows)).exit_code == 0
    assert rows.read_text().splitlines()[0].startswith("id")
    assert run(env, "sample", problem, "-n", "4", "--seed", "3", "--with-targets").stdout == rows.read_text()
    result = run(env, "predict", problem, "--input", str(rows), "--json")
    assert result.exit_code == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and {line["model_version"] for line in lines} == {1}
    assert f"{problem}: 4 prediction(s) by model v1, logged" in result.stderr
    observed = run(env, "observe", problem, "--input", str(rows))
    skill = json.loads(run(env, "skill", problem, "--json").stdout)
    if problem == "rectangles":  # a drawing has no true outcome: scored from the shapes themselves
        assert observed.exit_code == 2 and "no true outcome" in observed.stderr
        assert all(len(line["prediction"]) == 4 for line in lines)
        assert skill[-1]["n"] >= 4 and "geometric_error" in skill[-1]
    else:
        assert observed.exit_code == 0 and "4 observation(s) recorded" in observed.stdout
        metric = PROBLEMS[problem].PRIMARY_METRIC
        assert skill[-1]["n"] >= 4 and 0 <= skill[-1][metric] <= (1 if metric != "mae" else 10)


def test_readable_outputs_and_result_files(env, tmp_path):
    sums = tmp_path / "sums.jsonl"
    sums.write_text('{"id": "s1", "expression": "10+2+7"}\n{"id": "s2", "expression": "1+1+1"}\n')
    text = run(env, "predict", "addition", "-i", str(sums)).stdout.splitlines()
    assert text[0].startswith("s1  10+2+7 → ")
    for suffix in ("csv", "jsonl", "txt"):
        out = tmp_path / f"out.{suffix}"
        rows = tmp_path / f"rows-{suffix}.csv"
        run(env, "sample", "damped_sine", "-n", "2", "-o", str(rows))
        assert run(env, "predict", "damped_sine", "-i", str(rows), "-o", str(out)).exit_code == 0
        body = out.read_text()
        if suffix == "csv":
            assert body.splitlines()[0] == "id,model_version,y_0,y_1,y_2,text"
        elif suffix == "jsonl":
            assert len(json.loads(body.splitlines()[0])["prediction"]) == 3
        else:
            assert body.count("→") == 2
    piped = run(env, "predict", "echo", "-i", "-", input="x_0,x_1,x_2,x_3,x_4\n3,1,7,0,2\n")
    assert piped.exit_code == 0 and " 3 1 7 0 2 → " in piped.stdout
    drawn = run(env, "predict", "rectangles", "--n", "2", "--seed", "1")
    assert drawn.exit_code == 0 and drawn.stdout.count("(0.00, 0.00)") == 2
    direction = run(env, "predict", "moving_square", "-i", "-",
                    input=",".join([f"r_{i}" for i in range(8)] + [f"c_{i}" for i in range(8)]) + "\n"
                    + ",".join(["3"] * 8 + [str(i) for i in range(8)]) + "\n")
    assert direction.stdout.rstrip().endswith(("right", "left"))


ECHO = "id,x_0,x_1,x_2,x_3,x_4\n"
BAD = [  # problem, input text, expected fragment of the one-line error
    ("echo", ECHO + "a,1,2,3,4,5\nb,1,2,12,3,4\n", "echo row 2 (id b): column x_2 is 12, outside [0, 9]"),
    ("echo", "id,x_0,x_1,x_2,x_3\na,1,2,3,4\n", "echo: wrong sequence length: the model takes x_0..x_4 (5 steps)"),
    ("echo", ECHO.replace("\n", ",x_5\n") + "a,1,2,3,4,5,6\n", "the input has x_0..x_5 (6)"),
    ("echo", ECHO.replace("\n", ",colour\n") + "a,1,2,3,4,5,red\n", "echo: unknown column colour"),
    ("echo", "id,x_0,x_1,x_2,x_4\na,1,2,3,4\n", "echo: wrong sequence length"),
    ("echo", "id\na\n", "echo: missing columns x_0..x_4 (expected id, x_0..x_4)"),
    ("echo", ECHO + "a,1,2,nan,4,5\n", "echo row 1 (id a): column x_2 is nan; NaN and inf are not allowed"),
    ("echo", ECHO + "a,1,2,3,4,inf\n", "echo row 1 (id a): column x_4 is inf; NaN and inf"),
    ("echo", ECHO + "a,1,2,three,4,5\n", "echo row 1 (id a): column x_2 is 'three', not a number"),
    ("echo", ECHO + "a,1,2,3.5,4,5\n", "column x_2 is 3.5, not an integer"),
    ("echo", ECHO + "a,1,2,,4,5\n", "echo row 1 (id a): column x_2 is missing"),
    ("echo", ECHO + "a,1,2,3,4\n", "echo row 1: 5 values, but the header names 6 columns"),
    ("echo", ECHO + "a,1,2,3,4,5\na,1,2,3,4,5\n", "echo row 2: id a repeats row 1"),
    ("echo", ECHO, "echo: the input holds no rows"),
    ("echo", "", "echo: the input holds no rows"),
    ("echo", '{"id": "a", "x_0": 1}\n{oops\n', "echo row 2: not valid JSON"),
    ("echo", '{"id": "a", "x_0": 1, "x_1": 1, "x_2": NaN, "x_3": 1, "x_4": 1}\n', "column x_2 is nan"),
    ("echo", '{"id": "a", "x_0": true, "x_1": 1, "x_2": 1, "x_3": 1, "x_4": 1}\n',
     "column x_0 is 'True', not a number"),
    ("cumulative_sum@2", "x_" + ",x_".join(map(str, range(10))) + "\n" + ",".join(["0.1"] * 9 + ["0.9"]) + "\n",
     "cumulative_sum row 1: column 'x_9' has value 0.9, outside the fitted range"),
    ("cumulative_sum", "x_" + ",x_".join(map(str, range(10))) + "\n" + ",".join(["0.1"] * 9 + ["1.5"]) + "\n",
     "cumulative_sum row 1: column x_9 is 1.5, outside [0.0, 1.0]"),
    ("addition", "id,expression\na,1+2+3\nb,1*2+3\n",
     "addition row 2 (id b): expression '1*2+3' has unknown character '*'"),
    ("addition", "id,expression\na,1+2\n", "addition row 1 (id a): expression '1+2' is malformed: expected 3"),
    ("addition", "id,expression\na,1++2\n", "is malformed"),
    ("addition", "id,expression\na,1+2+99\n", "has term 99, above 10, the largest the model was trained on"),
    ("addition", "id,expression\na,\n", "addition row 1 (id a): column expression is empty"),
    ("moving_square", ",".join([f"r_{i}" for i in range(8)] + [f"c_{i}" for i in range(8)]) + "\n"
     + ",".join(["3"] * 8 + ["0"] * 8) + "\n", "moving_square row 1: the c_* columns must light each image column"),
    ("moving_square", ",".join([f"r_{i}" for i in range(8)] + [f"c_{i}" for i in range(8)]) + "\n"
     + ",".join(["9"] * 8 + [str(i) for i in range(8)]) + "\n", "moving_square row 1: column r_0 is 9, outside [0, 7]"),
    ("nonsense", ECHO + "a,1,2,3,4,5\n", "unknown problem 'nonsense'"),
    # integers too large for int64: an input error naming row and column, never an overflow or a wrap
    ("addition", "id,expression\na,1+2+3\nb,9223372036854775808+1+1\n",
     "addition row 2 (id b): expression '9223372036854775808+1+1' is 23 characters long"),
    ("addition", '{"id": "a", "expression": "9223372036854775808+1+1"}\n',
     "addition row 1 (id a): expression '9223372036854775808+1+1' is 23 characters long"),
    ("echo", ECHO + "a,99999999999999999999,2,3,4,5\n", "echo row 1 (id a): column x_0 is 99999999999999999999, "
     "outside [0, 9]"),
    ("echo", '{"id": "a", "x_0": 99999999999999999999, "x_1": 1, "x_2": 1, "x_3": 1, "x_4": 1}\n',
     "echo row 1 (id a): column x_0 is 99999999999999999999, outside [0, 9]"),
    ("echo", ECHO + "a,1,2,3,4,-9223372036854775809\n", "column x_4 is -9223372036854775809, outside [0, 9]"),
    ("moving_square", ",".join([f"r_{i}" for i in range(8)] + [f"c_{i}" for i in range(8)]) + "\n"
     + ",".join(["3"] * 7 + ["18446744073709551616"] + [str(i) for i in range(8)]) + "\n",
     "moving_square row 1: column r_7 is 18446744073709551616, outside [0, 7]"),
]


@pytest.mark.parametrize("problem,text,expected", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_input_is_one_line_exit_2_and_nothing_logged(problem, text, expected, env, tmp_path):
    source = tmp_path / ("rows.jsonl" if text.startswith("{") else "rows.csv")
    source.write_text(text)
    problem, _, version = problem.partition("@")
    before = predictions(env, problem) if problem in PROBLEMS else 0
    result = run(env, "predict", problem, "--input", str(source), "--model", version or "champion")
    assert result.exit_code == 2
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("lstmops predict: error: ") and expected in result.stderr, result.stderr
    assert problem not in PROBLEMS or predictions(env, problem) == before


def test_out_of_range_policy_clip_accepts_what_reject_refuses(env, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("x_" + ",x_".join(map(str, range(10))) + "\n" + ",".join(["0.1"] * 9 + ["0.9"]) + "\n")
    assert run(env, "predict", "cumulative_sum", "-i", str(rows), "--model", "2").exit_code == 2
    clipped = run(env, "predict", "cumulative_sum", "-i", str(rows), "--model", "3")
    assert clipped.exit_code == 0 and "by model v3" in clipped.stderr


def test_drifted_shape_and_reused_ids_are_rejected(env, tmp_path):
    drifted = tmp_path / "drifted.csv"
    run(env, "sample", "damped_sine", "-n", "3", "--as-of", "2030-06-01", "-o", str(drifted))
    result = run(env, "predict", "damped_sine", "-i", str(drifted))
    assert result.exit_code == 2 and "wrong sequence length: the model takes x_0..x_9 (10 steps)" in result.stderr
    rows = tmp_path / "rows.csv"
    run(env, "sample", "echo", "-n", "3", "--seed", "99", "-o", str(rows))
    assert run(env, "predict", "echo", "-i", str(rows)).exit_code == 0
    again = run(env, "predict", "echo", "-i", str(rows))
    assert again.exit_code == 2 and "was already predicted" in again.stderr
    assert run(env, "sample", "echo", "-n", "1", "--as-of", "soon").stderr.strip().endswith("(YYYY-MM-DD)")


def test_observe_rejects_bad_rows_and_records_nothing(env, tmp_path):
    rows = tmp_path / "rows.csv"
    run(env, "sample", "echo", "-n", "2", "--seed", "7", "--with-targets", "-o", str(rows))
    assert run(env, "predict", "echo", "-i", str(rows)).exit_code == 0
    first_id = rows.read_text().splitlines()[1].split(",")[0]
    cases = [(f"id,target\n{first_id},12\n", "echo row 1 (id {}): column target is 12, outside [0, 9]"),
             ("id,target\nnever-predicted,1\n", "echo row 1 (id never-predicted): no prediction with id"),
             ("target\n1\n", "echo: missing column id"),
             (f"id,target,observed_at\n{first_id},1,yesterday\n", "column observed_at is 'yesterday'")]
    store = Store(env["LSTMOPS_DB_URL"])
    before = store.counts("echo")["observations"]
    for text, expected in cases:
        (tmp_path / "obs.csv").write_text(text)
        result = run(env, "observe", "echo", "-i", str(tmp_path / "obs.csv"))
        assert result.exit_code == 2 and expected.format(first_id) in result.stderr, result.stderr
    assert store.counts("echo")["observations"] == before
    assert run(env, "observe", "echo", "-i", str(rows)).exit_code == 0
    again = run(env, "observe", "echo", "-i", str(rows))
    assert again.exit_code == 2 and "already has an observation" in again.stderr
    assert run(env, "observe", "echo", "-i", str(rows), "--replace").exit_code == 0


def test_missing_models_and_tampered_files_are_one_line_errors(env, tmp_path):
    rows = tmp_path / "rows.csv"
    run(env, "sample", "echo", "-n", "2", "-o", str(rows))
    empty = env | {"LSTMOPS_DB_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    result = run(empty, "predict", "echo", "-i", str(rows))
    assert result.exit_code == 2 and "no registered model for echo" in result.stderr
    missing = run(env, "predict", "echo", "-i", str(rows), "--model", "7")
    assert missing.exit_code == 2 and "echo has no version 7" in missing.stderr
    assert "no previous model" in run(env, "predict", "echo", "-i", str(rows), "--model", "previous").stderr
    assert "no input file" in run(env, "predict", "echo", "-i", str(tmp_path / "nope.csv")).stderr

    url = f"sqlite:///{tmp_path / 'tamper.db'}"
    registry = Registry(url, tmp_path / "tamper-registry")
    mv = registry.register("echo", tiny_bundles()["echo"]).version
    registry.promote("echo", 1, reason="first")
    prep = mv.folder / "preprocessing.json"
    prep.write_text(prep.read_text().replace('"policy": "reject"', '"policy": "clip"'))
    tampered = run(env | {"LSTMOPS_DB_URL": url}, "predict", "echo", "-i", str(rows))
    assert tampered.exit_code == 2 and "echo v1: preprocessing.json does not match the checksum" in tampered.stderr
    assert Store(url).counts("echo")["predictions"] == 0
    shown = json.loads(run(env | {"LSTMOPS_DB_URL": url}, "models", "show", "echo", "--json").stdout)
    assert shown["integrity"].startswith("FAILED")


def test_models_list_show_and_rollback(tmp_path):
    url = f"sqlite:///{tmp_path / 'models.db'}"
    registry = Registry(url, tmp_path / "registry")
    registry.register("addition", tiny_bundles()["addition"])
    second = bundle_copy("addition", tmp_path / "second")
    (second / "model.weights.h5").write_bytes((second / "model.weights.h5").read_bytes())  # same bytes: idempotent
    assert not registry.register("addition", second).created
    from tiny_bundles import save_tiny_bundle

    registry.register("addition", save_tiny_bundle("addition", tmp_path / "other", seed=1))
    registry.promote("addition", 1, reason="first", actor="ann")
    registry.promote("addition", 2, reason="better", actor="bob", evidence="report.html")
    env = {"LSTMOPS_DB_URL": url}
    listed = json.loads(run(env, "models", "list", "addition", "--json").stdout)
    assert [(v["version"], v["aliases"]) for v in listed] == [(1, ["previous"]), (2, ["champion"])]
    assert "champion" in run(env, "models", "list").stdout
    via_option = json.loads(run({}, "--db", url, "models", "show", "addition", "--json").stdout)
    assert via_option["integrity"] == "ok"  # the database knows where its version folders are
    shown = json.loads(run(env, "models", "show", "addition", "--json").stdout)
    assert shown["version"] == 2 and shown["integrity"] == "ok" and shown["ledger"][0]["evidence"] == "report.html"
    text = run(env, "models", "show", "addition", "1").stdout
    assert "addition v1 (previous)" in text and "integrity: ok" in text and "by bob: better" in text
    back = run(env, "models", "rollback", "addition", "--reason", "v2 is worse on live data", "--json")
    assert json.loads(back.stdout)["champion"] == 1 and registry.aliases("addition") == {"champion": 1, "previous": 2}
    again = run(env, "models", "rollback", "addition", "--reason", "v1 was fine after all")
    assert "champion is v2 again, previous v1" in again.stdout
    assert "needs a reason" in run(env, "models", "rollback", "addition", "--reason", "").stderr
    assert run(env, "models", "show", "echo").exit_code == 2


def test_a_real_process_prints_no_traceback(env, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(ECHO + "a,1,2,12,3,4\n")
    out = subprocess.run([sys.executable, "-m", "lstmops", "predict", "echo", "-i", str(bad)],
                         env=os.environ | env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.strip() == "lstmops predict: error: echo row 1 (id a): column x_2 is 12, outside [0, 9]"


def test_input_files_and_options_the_user_got_wrong_are_one_line_errors(env, tmp_path):
    latin, good = tmp_path / "latin.csv", tmp_path / "good.csv"
    latin.write_bytes(ECHO.encode() + b"\xe9,1,2,3,4,5\n")
    good.write_text(ECHO + "a,1,2,3,4,5\n")
    for args, expected in [(["-i", str(latin)], f"input file {latin} is not UTF-8 text"),
                           (["-i", str(tmp_path)], f"no input file {tmp_path}"),
                           (["-i", str(good), "--format", "xml"], "--format must be one of csv, jsonl, not 'xml'"),
                           (["-i", str(good), "--n", "2"], "give either --input or --n, not both"),
                           (["-i", str(good), "-o", str(tmp_path)], f"cannot write {tmp_path}: it is a folder")]:
        result = run(env, "predict", "echo", *args)
        assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("lstmops predict: error: ") and expected in result.stderr, result.stderr


@pytest.mark.parametrize("bug", [ValueError("row 0: boom"), KeyError("boom")], ids=["ValueError", "KeyError"])
def test_an_internal_bug_is_not_worded_as_a_bad_row(bug, env, tmp_path, monkeypatch):
    from lstmops.problems import echo

    def broken(self, table):
        raise bug

    monkeypatch.setattr(echo.PREPARER, "inputs", broken)
    rows = tmp_path / "rows.csv"
    rows.write_text(ECHO + "a,1,2,3,4,5\n")
    before = predictions(env, "echo")
    result = CliRunner().invoke(cli.app, ["predict", "echo", "-i", str(rows)], env=env, prog_name="lstmops")
    assert result.exit_code == 1 and result.exception is bug  # a traceback (exit 1), not "error: echo row 1"
    assert "error:" not in result.stderr
    assert predictions(env, "echo") == before


def test_a_real_process_shows_the_traceback_of_a_bug(env, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text(ECHO + "a,1,2,3,4,5\n")
    code = ("import sys\nfrom lstmops import cli\nfrom lstmops.problems import echo\n"
            "def broken(self, table):\n    raise ValueError('row 0: boom')\n"
            "echo.PREPARER.inputs = broken\n"
            f"sys.argv = ['lstmops', 'predict', 'echo', '-i', {str(rows)!r}]\ncli.main()\n")
    out = subprocess.run([sys.executable, "-c", code], env=os.environ | env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1 and "Traceback (most recent call last)" in out.stderr, out.stderr
    assert out.stderr.strip().endswith("ValueError: row 0: boom") and "lstmops predict: error" not in out.stderr


def test_a_database_that_cannot_be_reached_is_one_line(env, monkeypatch, tmp_path):
    from sqlalchemy.exc import OperationalError

    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"not a database, just notes " * 100)
    foreign = run(env | {"LSTMOPS_DB_URL": f"sqlite:///{garbage}"}, "models", "list")
    assert foreign.exit_code == 2
    assert foreign.stderr == "lstmops models list: error: the database cannot be used: file is not a database\n"

    def locked(self, problem):
        raise OperationalError("SELECT ...", {}, Exception("database is locked"))

    monkeypatch.setattr(Registry, "versions", locked)
    result = run(env, "problems")
    assert result.exit_code == 2
    assert result.stderr == "lstmops problems: error: the database cannot be used: database is locked\n"


def test_a_failed_delivery_logs_nothing_and_the_same_ids_can_be_retried(env, tmp_path, monkeypatch):
    from lstmops.serving import rawio

    rows = tmp_path / "rows.csv"
    run(env, "sample", "echo", "-n", "3", "--seed", "1234", "-o", str(rows))
    before = predictions(env, "echo")
    missing = tmp_path / "no-such-folder" / "out.csv"
    result = run(env, "predict", "echo", "-i", str(rows), "-o", str(missing))
    assert result.exit_code == 2 and f"cannot write {missing}: no folder" in result.stderr
    assert predictions(env, "echo") == before

    out = tmp_path / "out.csv"

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:  # the write itself fails, after the predictions were made
        patch.setattr(rawio.os, "replace", disk_full)
        failed = run(env, "predict", "echo", "-i", str(rows), "-o", str(out))
    assert failed.exit_code == 2
    assert failed.stderr == f"lstmops predict: error: cannot write {out}: No space left on device\n"
    assert predictions(env, "echo") == before and not out.exists()

    retried = run(env, "predict", "echo", "-i", str(rows), "-o", str(out))
    assert retried.exit_code == 0 and "3 prediction(s) by model v1, logged, written to" in retried.stderr
    assert predictions(env, "echo") == before + 3 and len(out.read_text().splitlines()) == 4
    assert "already predicted" in run(env, "predict", "echo", "-i", str(rows)).stderr


def test_the_library_logs_only_after_delivery(env, tmp_path):
    from lstmops.serving.predict import predict
    from lstmops.serving.rawio import read_rows

    rows = tmp_path / "rows.csv"
    run(env, "sample", "echo", "-n", "2", "--seed", "4321", "-o", str(rows))
    registry, store = Registry(env["LSTMOPS_DB_URL"]), Store(env["LSTMOPS_DB_URL"])
    before = store.counts("echo")["predictions"]
    seen = []

    def deliver(batch):
        seen.append(store.counts("echo")["predictions"])
        raise InputError("cannot write out.csv: No space left on device")

    from lstmops.errors import InputError

    with pytest.raises(InputError):
        predict("echo", read_rows("echo", rows), registry, store, deliver=deliver)
    assert seen == [before] and store.counts("echo")["predictions"] == before
    batch = predict("echo", read_rows("echo", rows), registry, store, deliver=seen.append)
    assert seen[-1] is batch and store.counts("echo")["predictions"] == before + 2


def test_sample_json_writes_rows_or_a_summary_of_the_file(env, tmp_path):
    lines = run(env, "sample", "echo", "-n", "3", "--seed", "5", "--json").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 3 and list(rows[0]) == ["id", "x_0", "x_1", "x_2", "x_3", "x_4"]
    csv_ids = [line.split(",")[0] for line in run(env, "sample", "echo", "-n", "3", "--seed", "5").stdout.splitlines()]
    assert [r["id"] for r in rows] == csv_ids[1:]
    out = tmp_path / "rows.csv"
    summary = json.loads(run(env, "sample", "echo", "-n", "3", "--seed", "5", "--with-targets", "-o", str(out),
                             "--json").stdout)
    assert summary == {"problem": "echo", "rows": 3, "columns": ["id", "x_0", "x_1", "x_2", "x_3", "x_4", "target"],
                       "output": str(out), "format": "csv", "note": None}
    assert len(out.read_text().splitlines()) == 4
    drawn = json.loads(run(env, "sample", "rectangles", "-n", "2", "--with-targets", "-o", str(tmp_path / "r.jsonl"),
                           "--json").stdout)
    assert drawn["format"] == "jsonl" and "no true target" in drawn["note"]
    clash = run(env, "sample", "echo", "-n", "1", "--json", "--format", "csv")
    assert clash.exit_code == 2 and "--json writes JSON lines" in clash.stderr


def test_rollback_takes_the_champion_the_caller_saw(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'rollback.db'}"
    registry = Registry(url, tmp_path / "registry")
    registry.register("echo", tiny_bundles()["echo"])
    registry.register("echo", save_tiny_bundle("echo", tmp_path / "other", seed=1))
    registry.promote("echo", 1, reason="first")
    registry.promote("echo", 2, reason="second")
    env = {"LSTMOPS_DB_URL": url}
    first = run(env, "models", "rollback", "echo", "--reason", "v2 is worse", "--expect-champion", "v2")
    assert first.exit_code == 0 and "champion is v1 again, previous v2" in first.stdout
    again = run(env, "models", "rollback", "echo", "--reason", "v2 is worse", "--expect-champion", "v2")
    assert again.exit_code == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "the champion is v1, not v2 as expected" in again.stderr and "nothing was changed" in again.stderr
    assert registry.aliases("echo") == {"champion": 1, "previous": 2}
    bad = run(env, "models", "rollback", "echo", "--reason", "x", "--expect-champion", "two")
    assert bad.exit_code == 2 and "--expect-champion 'two' is not a version" in bad.stderr

    calls = []
    real = Registry.rollback

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("expect_champion"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Registry, "rollback", spy)
    assert run(env, "models", "rollback", "echo", "--reason", "v1 was fine after all").exit_code == 0
    assert calls == [1] and registry.aliases("echo") == {"champion": 2, "previous": 1}


def test_each_command_help_imports_nothing_heavy():
    commands = [["sample"], ["predict"], ["observe"], ["skill"], ["problems"], ["models", "rollback"],
                ["models", "show"], ["models", "list"], ["proposals", "list"], ["approve"], ["reject"]]
    code = ("import sys\nfrom lstmops import cli\nfor args in %r:\n    sys.argv = ['lstmops', *args, '--help']\n"
            "    try:\n        cli.main()\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in %r if m in sys.modules))" % (commands, HEAVY + ("sqlalchemy", "prefect")))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--expect-champion" in out.stdout and out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr
