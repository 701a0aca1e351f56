"""Settings parsing (one-line errors naming the key) and drift schedules."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest
import yaml

from lstmops.config import ConfigError, DriftStep, load_settings, parse_settings, problem_settings
from lstmops.data.drift import generate_at
from lstmops.problems import cumulative_sum, damped_sine, echo, rectangles

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def raw() -> dict:
    """The project's own params.yaml as a plain mapping, to be broken by each test."""
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_parse(raw):
    settings = parse_settings(raw)
    assert set(settings.problems) == {"echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles"}
    assert settings.problems["echo"].process == echo.Params()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["problems"].update(nope={}), "problems.nope: unknown problem"),
        (lambda r: r["problems"]["echo"]["process"].update(out_index=5), "problems.echo.process: out_index (5) must be < length (5)"),
        (lambda r: r["problems"]["echo"]["sizes"].update(train=0), "problems.echo.sizes.train: Input should be greater than 0"),
        (lambda r: r["problems"]["addition"]["sizes"].update(test=-3), "problems.addition.sizes.test: Input should be greater than 0"),
        (lambda r: r["problems"]["moving_square"]["process"].update(size=0), "problems.moving_square.process.size"),
        (lambda r: r["problems"]["damped_sine"]["process"].update(decay_min=0.5), "decay_min (0.5) must be <= decay_max"),
        (lambda r: r["problems"]["rectangles"]["process"].update(height_min=2.0), "height_min (2.0) must be < height_max"),
        (lambda r: r["problems"]["echo"]["drift"][0].update(kind="sideways"), "problems.echo.drift.0.kind"),
        (lambda r: r["problems"]["echo"]["drift"][0].update(set={"out_index": 9}), "problems.echo.drift.0.set: out_index (9) must be < length"),
        (lambda r: r["problems"]["echo"]["drift"][0].update(set={"colour": 1}), "problems.echo.drift.0.set.colour: not a parameter"),
        (lambda r: r["problems"]["damped_sine"]["drift"][0].update(end="2026-01-01"), "gradual step needs an 'end' date after 'start'"),
        (lambda r: r["problems"]["echo"]["process"].update(speed=3), "problems.echo.process.speed: Extra inputs are not permitted"),
        (lambda r: r["prepare"].update(out_of_range="ignore"), "prepare.out_of_range"),
        (lambda r: r.pop("seed"), "seed: Field required"),
    ],
)
def test_invalid_params_fail_with_one_line_naming_the_key(raw, mutate, message):
    mutate(raw)
    with pytest.raises(ConfigError) as info:
        parse_settings(raw)
    text = str(info.value)
    assert "\n" not in text and text.startswith("params.yaml: ")
    assert message in text


def test_unreadable_or_malformed_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_settings(bad)


def test_unknown_problem_lookup(raw):
    with pytest.raises(ConfigError, match="unknown problem 'nope'"):
        problem_settings(parse_settings(raw), "nope")


def test_drift_share_sudden_and_gradual():
    sudden = DriftStep(kind="sudden", start=date(2027, 1, 1), set={"out_index": 3})
    assert sudden.share(date(2026, 12, 31)) == 0.0 and sudden.share(date(2027, 1, 1)) == 1.0
    gradual = DriftStep(kind="gradual", start=date(2027, 1, 1), end=date(2027, 1, 11), set={"x": 1})
    assert gradual.share(date(2027, 1, 6)) == pytest.approx(0.5)
    assert gradual.share(date(2027, 2, 1)) == 1.0


def test_sudden_concept_drift_moves_echo_target():
    schedule = (DriftStep(kind="sudden", start=date(2027, 1, 15), set={"out_index": 3}),)
    before = generate_at(echo, echo.Params(), schedule, 500, np.random.default_rng(0), date(2027, 1, 14))
    after = generate_at(echo, echo.Params(), schedule, 500, np.random.default_rng(0), date(2027, 1, 15))
    assert (before["target"] == before["x_2"]).all() and (after["target"] == after["x_3"]).all()
    assert (after["out_index"] == 3).all()


def test_gradual_drift_mixes_old_and_new_process():
    schedule = (DriftStep(kind="gradual", start=date(2027, 1, 1), end=date(2027, 3, 2), set={"period_min": 20, "period_max": 40}),)
    rng = np.random.default_rng(1)
    mid = generate_at(damped_sine, damped_sine.Params(), schedule, 4000, rng, date(2027, 1, 31))
    share_new = (mid["period"] > 20).mean() / (20 / 21)  # periods 21..40 only come from the new process
    assert 0.4 < share_new < 0.6
    late = generate_at(damped_sine, damped_sine.Params(), schedule, 1000, rng, date(2027, 6, 1))
    assert late["period"].between(20, 40).all()


def test_drift_generation_is_deterministic_and_keeps_labels_right():
    schedule = (DriftStep(kind="gradual", start=date(2027, 1, 1), end=date(2027, 1, 31), set={"threshold_fraction": 1 / 3}),)
    args = (cumulative_sum, cumulative_sum.Params(), schedule, 800)
    a = generate_at(*args, np.random.default_rng(5), date(2027, 1, 16))
    b = generate_at(*args, np.random.default_rng(5), date(2027, 1, 16))
    assert a.equals(b)
    assert set(np.round(a["threshold"], 4)) == {2.5, 3.3333}
    assert cumulative_sum.contract(cumulative_sum.Params()).checks["labels_agree_with_threshold"](a).all()


def test_rectangle_width_range_shrinks():
    schedule = (DriftStep(kind="sudden", start=date(2027, 1, 1), set={"width_min": 0.5}),)
    table = generate_at(rectangles, rectangles.Params(), schedule, 500, np.random.default_rng(2), date(2027, 2, 1))
    assert table["width"].min() >= 0.5


def test_update_overrides_give_a_problem_its_own_sizes_and_unknown_names_fail():
    from lstmops.config import update_for

    base = {"seed": 1, "as_of": "2026-11-01",
            "problems": {"echo": {"architecture": "vanilla", "sizes": {"train": 10, "validation": 5, "test": 5}}},
            "update": {"batch_size": 100, "overrides": {"echo": {"batch_size": 7, "repeats": 3}}}}
    settings = parse_settings(base)
    assert update_for(settings, "echo").update.batch_size == 7 and update_for(settings, "echo").update.repeats == 3
    assert settings.update.batch_size == 100  # the shared settings are untouched
    bad = {**base, "update": {"overrides": {"nope": {"batch_size": 7}}}}
    with pytest.raises(ConfigError, match=r"update.overrides.nope: not a problem of this file"):
        parse_settings(bad)
    capped = {**base, "update": {"overrides": {"echo": {"repeats": 50}}}}
    with pytest.raises(ConfigError, match=r"update.overrides.echo.*max_repeats \(20\) must be >= repeats \(50\)"):
        parse_settings(capped)
