"""Update step 2 (assess): skill over time of the deployed model from synthetic store histories,
and the verdict's test on per-example outcomes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from lstmops.config import parse_settings
from lstmops.problems import get_problem
from lstmops.store.records import Store
from lstmops.update.assess import Trend, assess, compare, trend_test, verdict_of
from lstmops.update.collect import draw_split
from lstmops.update.records import load_record, save_record

AS_OF = date(2027, 2, 1)           # a Monday
WEEKS = [AS_OF - timedelta(weeks=k) for k in (3, 2, 1, 0)]


class Aliases:
    """The registry as assess sees it: only the aliases."""

    def __init__(self, **aliases: int):
        self._aliases = aliases

    def aliases(self, problem: str) -> dict[str, int]:
        return dict(self._aliases)


def make_settings(rectangles_drift: tuple = ()):
    """Tiny settings of echo, damped_sine and rectangles (with ``rectangles_drift``)."""
    sizes = {"train": 20, "validation": 10, "test": 10}
    return parse_settings({
        "seed": 5, "as_of": "2026-11-01",
        "problems": {
            "echo": {"architecture": "vanilla", "sizes": sizes},
            "damped_sine": {"architecture": "stacked", "process": {"length": 10, "n_out": 3}, "sizes": sizes},
            "rectangles": {"architecture": "generative", "sizes": sizes, "drift": list(rectangles_drift)}},
        "update": {"batch_size": 40, "eval_size": 60,
                   "gate": {"min_gain": {"echo": 0.01, "damped_sine": 0.0005, "rectangles": 0.002}}}})


SETTINGS = make_settings()


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'lstmops.db'}")


def log_echo(store: Store, version: int, day: date, accuracy: float, n: int = 200, tag: str = "") -> None:
    """``n`` echo predictions of ``version`` on ``day``, the first ``accuracy`` share right, all observed."""
    when = datetime.combine(day, datetime.min.time())
    ids = [f"{day}-v{version}{tag}-{i}" for i in range(n)]
    right = np.arange(n) < round(accuracy * n)
    outputs = [1 if ok else 2 for ok in right]
    store.log_predictions("echo", version, ids, [{"x_0": 1}] * n, outputs, at=when)
    store.record_observations("echo", ids, [{"target": 1}] * n, [when] * n)


def history(store: Store, accuracies: list[float], version: int = 2) -> None:
    for day, accuracy in zip(WEEKS, accuracies):
        log_echo(store, version, day, accuracy)


@pytest.mark.parametrize("accuracies, verdict", [([0.9, 0.9, 0.9, 0.9], Trend.STABLE),
                                                 ([0.9, 0.9, 0.9, 0.6], Trend.DEGRADING),
                                                 ([0.6, 0.6, 0.6, 0.9], Trend.IMPROVING)])
def test_verdict_of_an_echo_champion(store, accuracies, verdict):
    history(store, accuracies)
    found = assess(SETTINGS, "echo", AS_OF, store=store, registry=Aliases(champion=2, previous=1))
    assert found.verdict == verdict
    assert found.test.test == "two-proportion z-test" and found.test.recent_period == str(AS_OF)
    assert found.test.recent_n == 200 and found.test.earlier_n == 600
    assert found.test.effect == pytest.approx(accuracies[-1] - np.mean(accuracies[:-1]))
    assert (found.test.p_value < 0.05) == (verdict != Trend.STABLE)
    assert [r["period"] for r in found.skill["week"]] == [str(d) for d in WEEKS]


def test_an_assessment_saves_as_a_record(store, tmp_path):
    history(store, [0.9, 0.9, 0.9, 0.6])
    found = assess(SETTINGS, "echo", AS_OF, store=store, registry=Aliases(champion=2))
    saved = load_record(save_record(found, tmp_path / "assess.json"))
    assert saved["verdict"] == "degrading" and saved["as_of"] == str(AS_OF)
    assert saved["test"]["test"] == "two-proportion z-test" and saved["skill"]["week"][-1]["role"] == "champion"


def test_champion_and_previous_side_by_side(store):
    history(store, [0.9, 0.9, 0.9, 0.9])
    log_echo(store, 1, AS_OF, 0.5, tag="shadow")  # the previous model's shadow predictions of the same week
    log_echo(store, 2, AS_OF + timedelta(days=1), 0.0)  # after the run's date: not part of this assessment
    found = assess(SETTINGS, "echo", AS_OF, store=store, registry=Aliases(champion=2, previous=1))
    last_day = [r for r in found.skill["day"] if r["period"] == str(AS_OF)]
    assert {(r["role"], r["model_version"], r["accuracy"]) for r in last_day} == {("champion", 2, 0.9),
                                                                                   ("previous", 1, 0.5)}
    assert found.verdict == Trend.STABLE and found.champion_version == 2 and found.previous_version == 1
    assert max(r["period"] for r in found.skill["day"]) == str(AS_OF)


def test_a_significant_change_below_the_minimum_gain_is_stable():
    recent, earlier = np.r_[np.ones(99_000), np.zeros(1000)], np.r_[np.ones(98_500), np.zeros(1500)]
    test = trend_test("2027-02-01", recent, earlier, True, alpha=0.05, min_gain=0.01)
    assert test.p_value < 0.05 and test.gain == pytest.approx(0.005) and verdict_of(test) == Trend.STABLE


def test_small_counts_use_fishers_exact_test():
    name, p_value = compare(np.r_[np.zeros(38), np.ones(2)], np.r_[np.zeros(40), np.ones(0)])
    assert name == "Fisher's exact test" and 0 < p_value <= 1


def test_too_little_history_is_stable_with_a_note(store):
    log_echo(store, 2, AS_OF, 0.2)
    found = assess(SETTINGS, "echo", AS_OF, store=store, registry=Aliases(champion=2))
    assert found.verdict == Trend.STABLE and found.test is None and "not enough history" in found.note
    empty = assess(SETTINGS, "echo", AS_OF, store=Store(store.url), registry=Aliases())
    assert empty.verdict == Trend.STABLE and "not enough history" in empty.note


def test_a_degrading_forecaster_by_welchs_t_test(store):
    rng = np.random.default_rng(0)
    for day, error in zip(WEEKS, [0.01, 0.01, 0.01, 0.05]):
        when, ids = datetime.combine(day, datetime.min.time()), [f"{day}-{i}" for i in range(100)]
        outputs = [list(v) for v in rng.normal(0, error, size=(100, 3))]
        store.log_predictions("damped_sine", 3, ids, [{}] * 100, outputs, at=when)
        store.record_observations("damped_sine", ids, [{"y_0": 0.0, "y_1": 0.0, "y_2": 0.0}] * 100, [when] * 100)
    found = assess(SETTINGS, "damped_sine", AS_OF, store=store, registry=Aliases(champion=3))
    assert found.verdict == Trend.DEGRADING and found.test.test == "Welch's t-test"
    assert found.test.effect > 0 > found.test.gain and found.metric == "mae" and not found.higher_is_better


def test_a_generator_that_still_draws_vanished_shapes_degrades(store):
    """Rectangles: drawings scored against the process of their day (widths shrink to [0.5, 1] here)."""
    module = get_problem("rectangles")
    drifting = make_settings([{"kind": "sudden", "start": str(AS_OF), "set": {"width_min": 0.5}}])
    for day in WEEKS:
        table = draw_split(SETTINGS, "rectangles", WEEKS[0], "eval")  # shapes of the process before drift
        points = module.corners(table["width"].to_numpy(), table["height"].to_numpy()).reshape(-1, 4, 2)
        ids = [f"{day}-{i}" for i in range(len(points))]
        store.log_predictions("rectangles", 1, ids, [{}] * len(ids), points.tolist(),
                              at=datetime.combine(day, datetime.min.time()))
    found = assess(drifting, "rectangles", AS_OF, store=store, registry=Aliases(champion=1))
    assert found.verdict == Trend.DEGRADING and found.test.recent_n == found.test.earlier_n / 3 == 60
    assert [r["model_version"] for r in found.skill["week"]] == [1, 1, 1, 1]
