"""The data-generating processes: discovery, the members every module defines, determinism, shapes, targets."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from lstmops.features.preparers import Preparer
from lstmops.problems import (PROBLEMS, addition, cumulative_sum, damped_sine, echo, get_problem, is_generative,
                              moving_square, problem_names, rectangles)

HEAVY = ("keras", "jax", "pandas", "numpy", "sklearn", "pydantic")


def test_registry_lists_the_six_problems():
    assert set(PROBLEMS) == {"echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles"}
    with pytest.raises(KeyError, match="unknown problem 'nope'"):
        get_problem("nope")


def test_discovery_keeps_the_reference_order_and_skips_helper_modules():
    assert problem_names() == ("echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles")
    assert list(PROBLEMS) == list(problem_names())
    for helper in ("contract", "wording"):  # modules of the package without Params and generate
        with pytest.raises(KeyError, match=f"unknown problem '{helper}'"):
            get_problem(helper)


def test_problem_names_and_tasks_are_read_without_importing_heavy_libraries():
    code = ("import json, sys\nfrom lstmops.problems import problem_names, problem_tasks\n"
            "print(json.dumps([problem_names(), problem_tasks(), sorted(m for m in %r if m in sys.modules)]))"
            % (HEAVY,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    names, tasks, heavy = json.loads(out.stdout)
    assert names == list(PROBLEMS) and heavy == []
    assert tasks == {name: module.TASK for name, module in PROBLEMS.items()}


def test_every_module_defines_the_problem_members(problem_name, problem):
    for member in ("Params", "generate", "input_columns", "target_columns", "contract", "PREPARER", "HEAD", "LOSS",
                   "PRIMARY_METRIC", "HIGHER_IS_BETTER", "score"):
        assert hasattr(problem, member), member
    assert isinstance(problem.TASK, str) and problem.TASK and "\n" not in problem.TASK
    assert issubclass(problem.PREPARER, Preparer) and problem.PREPARER.name == problem_name
    if getattr(problem, "GENERATIVE", False):
        assert all(callable(getattr(problem, m, None)) for m in ("draw", "score_outputs", "draw_metrics"))
    assert is_generative(problem_name) == (problem_name == "rectangles")


def test_readable_defaults_apply_where_a_module_has_no_wording():
    from lstmops.serving.readable import as_targets, describe

    assert describe("rectangles", {}, [(0.0, 0.0), (1.0, 0.0)]) == "(0.00, 0.00) (1.00, 0.00)"  # no input: output only
    assert describe("echo", {"x_0": 3, "x_1": 1}, 3) == "3 1 → 3"
    assert as_targets("damped_sine", [0.5, 0.25]) == {"y_0": 0.5, "y_1": 0.25}
    assert as_targets("moving_square", "right") == {"direction": 1}


def test_same_seed_gives_identical_table(problem):
    a = problem.generate(problem.Params(), 300, np.random.default_rng(123))
    b = problem.generate(problem.Params(), 300, np.random.default_rng(123))
    pd.testing.assert_frame_equal(a, b)
    c = problem.generate(problem.Params(), 300, np.random.default_rng(124))
    assert not a.equals(c)


def test_columns_match_contract_and_checks_pass(problem, small_table):
    params = problem.Params()
    contract = problem.contract(params)
    assert list(small_table.columns) == list(contract.dtypes)
    for column in problem.input_columns(params) + problem.target_columns(params):
        assert column in small_table.columns
    for name, check in contract.checks.items():
        assert check(small_table).all(), name
    assert not small_table.isna().any().any()


def test_echo_target_is_input_at_out_index():
    table = echo.generate(echo.Params(length=7, n_features=4, out_index=5), 500, np.random.default_rng(0))
    assert (table["target"] == table["x_5"]).all()
    assert table.filter(like="x_").isin(range(4)).all().all()


def test_damped_sine_matches_formula_and_ranges():
    params = damped_sine.Params()
    table = damped_sine.generate(params, 400, np.random.default_rng(1))
    row = table.iloc[3]
    i = np.arange(55)
    expected = 0.5 + 0.5 * np.sin(2 * np.pi * i / row["period"]) * np.exp(-row["decay"] * i)
    values = row[[f"x_{k}" for k in range(50)] + [f"y_{k}" for k in range(5)]].to_numpy(float)
    np.testing.assert_allclose(values, expected)
    assert table["period"].between(10, 20).all() and table["decay"].between(0.01, 0.1).all()
    assert set(table["period"]) == set(range(10, 21))


def test_damped_sine_values_are_the_c_librarys_bit_for_bit():
    """The raw data must not depend on which SIMD kernel NumPy picks on this CPU."""
    import math

    table = damped_sine.generate(damped_sine.Params(), 50, np.random.default_rng(4))
    for _, row in table.iterrows():
        period, decay = float(row["period"]), float(row["decay"])
        libm = [0.5 + 0.5 * math.sin(2.0 * math.pi * float(i) / period) * math.exp(-decay * float(i))
                for i in range(55)]
        assert row.iloc[:55].tolist() == libm


def test_moving_square_paths_step_by_at_most_max_step():
    params = moving_square.Params(size=12, max_step=2)
    table = moving_square.generate(params, 2000, np.random.default_rng(2))
    rows = table.filter(like="r_").to_numpy()
    steps = np.diff(rows, axis=1)
    assert rows.min() >= 0 and rows.max() <= 11
    assert np.abs(steps).max() == 2
    assert set(table["direction"]) == {0, 1}


def test_addition_answer_is_the_sum_and_fits_widths():
    params = addition.Params()
    table = addition.generate(params, 3000, np.random.default_rng(3))
    sums = table["expression"].map(lambda s: sum(int(t) for t in s.split("+")))
    assert (sums == table["answer"]).all()
    assert table["expression"].str.len().max() <= addition.input_width(params) == 8
    assert addition.output_width(params) == 2
    terms = table["expression"].str.split("+").explode().astype(int)
    assert terms.min() == 1 and terms.max() == 10


def test_cumulative_sum_labels_follow_threshold():
    params = cumulative_sum.Params(n_timesteps=10, threshold_fraction=0.25)
    table = cumulative_sum.generate(params, 1000, np.random.default_rng(4))
    x = table.filter(like="x_").to_numpy()
    y = table.filter(like="y_").to_numpy()
    np.testing.assert_array_equal(y, (np.cumsum(x, axis=1) >= 2.5).astype(int))
    assert (np.diff(y, axis=1) >= 0).all()  # once reached, stays reached


def test_rectangles_are_clockwise_from_origin():
    table = rectangles.generate(rectangles.Params(), 100, np.random.default_rng(5))
    r = table.iloc[0]
    assert (r["x_0"], r["y_0"]) == (0.0, 0.0)
    assert (r["x_1"], r["y_1"]) == (r["width"], 0.0)
    assert (r["x_2"], r["y_2"]) == (r["width"], r["height"])
    assert (r["x_3"], r["y_3"]) == (0.0, r["height"])


@pytest.mark.parametrize(
    ("module", "bad", "fragment"),
    [
        (echo, {"out_index": 5}, "out_index (5) must be < length (5)"),
        (echo, {"length": 0}, "greater than 0"),
        (damped_sine, {"period_min": 30}, "period_min (30) must be <= period_max (20)"),
        (moving_square, {"max_step": 50}, "max_step (50) must be < size (50)"),
        (addition, {"smallest": 11}, "smallest (11) must be <= largest (10)"),
        (cumulative_sum, {"threshold_fraction": 0}, "greater than 0"),
        (rectangles, {"width_min": 1.0}, "width_min (1.0) must be < width_max (1.0)"),
    ],
)
def test_impossible_parameters_are_refused(module, bad, fragment):
    with pytest.raises(ValueError, match=".*" + fragment.replace("(", r"\(").replace(")", r"\)")):
        module.Params(**bad)


def test_generative_hooks_draw_score_and_picture_rectangles(tmp_path):
    from lstmops.modeling.architectures import ModelSpec
    from lstmops.modeling.bundle import load_bundle
    from lstmops.modeling.evaluation import score_model
    from lstmops.store.records import score_outputs
    from tiny_bundles import fit_table, save_tiny_bundle

    model, preparer, _ = load_bundle(save_tiny_bundle("rectangles", tmp_path / "bundle"))
    drawn = rectangles.draw(model, preparer, 5, np.random.default_rng(1), 0.4)
    assert drawn.shape == (5, 4, 2) and np.all(drawn[:, 0] == 0)
    assert set(score_outputs("rectangles", drawn.tolist(), None)) == {"geometric_error", "width_std", "height_std"}
    table = fit_table("rectangles")
    metrics = score_model("rectangles", model, preparer, table, table, np.random.default_rng(2), 20, 0.4)
    assert {"next_point_mae", "geometric_error", "width_coverage", "height_coverage"} <= set(metrics)
    rectangles.after_finalize(model, preparer, ModelSpec(temperature=0.4), np.random.default_rng(3), tmp_path)
    assert (tmp_path / "generated.png").stat().st_size > 1000


@pytest.mark.parametrize("name", ["echo", "damped_sine", "moving_square", "addition", "cumulative_sum"])
def test_per_example_values_average_to_the_primary_metric(name):
    problem = PROBLEMS[name]
    table = problem.generate(problem.Params(), 60, np.random.default_rng(0))
    truth = _decoded_truth(name, table)
    wrong = problem.generate(problem.Params(), 60, np.random.default_rng(1))
    mixed = truth[:30] + _decoded_truth(name, wrong)[30:]  # half right (by chance some more)
    for predicted in (truth, mixed):
        values = problem.per_example(table, predicted)
        assert values.shape == (60,)
        assert values.mean() == pytest.approx(problem.score(table, predicted)[problem.PRIMARY_METRIC])


def test_rectangles_per_example_penalises_shapes_the_process_no_longer_makes():
    table = rectangles.generate(rectangles.Params(width_min=0.5), 200, np.random.default_rng(0))
    inside = [[[0, 0], [0.7, 0], [0.7, 0.4], [0, 0.4]]]
    outside = [[[0, 0], [0.2, 0], [0.2, 0.4], [0, 0.4]]]
    assert rectangles.per_example(table, inside)[0] == pytest.approx(0, abs=1e-9)
    assert rectangles.per_example(table, outside)[0] > 0.25


def _decoded_truth(name, table):
    if name == "echo":
        return table["target"].tolist()
    if name == "moving_square":
        return ["right" if d == 1 else "left" for d in table["direction"]]
    if name == "addition":
        return table["answer"].tolist()
    return table.filter(regex=r"^y_\d+$").to_numpy().tolist()
