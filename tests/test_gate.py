"""The promotion gate's decision rule on synthetic score distributions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstmops.errors import InputError
from lstmops.update.gate import Arm, GateRules, Verdict, decide, prob_improvement

N = 400  # shared evaluation examples


def correct(rng, accuracies, n=N) -> np.ndarray:
    """Per-example 1/0 correctness, one row per repeat with the given accuracy."""
    return (rng.random((len(accuracies), n)) < np.asarray(accuracies)[:, None]).astype(float)


def arms(rng, deployed, baseline, n=N, **candidates):
    cands = [Arm(name, correct(rng, accs, n), weights_only=name in ("a", "b")) for name, accs in candidates.items()]
    return Arm("deployed", correct(rng, [deployed], n)), Arm("baseline", correct(rng, baseline, n)), cands


RULES = GateRules(min_gain=0.02, bootstrap=1000, min_repeats=5)


def test_clear_win_promotes_and_prefers_a_weights_only_update():
    rng = np.random.default_rng(1)
    d, b, c = arms(rng, 0.60, [0.61] * 10, a=[0.90] * 10, c=[0.93] * 10, d=[0.62] * 10)
    decision = decide(d, b, c, RULES)
    assert decision.verdict is Verdict.PROMOTE
    assert decision.winner == "a"  # (c) is even better, but a weights-only update is preferred
    passed = {r.name: r.passed for r in decision.candidates}
    assert passed == {"a": True, "c": True, "d": False}
    json.dumps(decision.to_dict())  # the evidence is JSON-able


def test_clear_loss_and_tie_say_no_change():
    rng = np.random.default_rng(2)
    d, b, c = arms(rng, 0.90, [0.90] * 10, a=[0.70] * 10, b=[0.60] * 10)
    assert decide(d, b, c, RULES).verdict is Verdict.NO_CHANGE
    perfect = np.ones((10, N))
    tie = decide(Arm("deployed", np.ones((1, N))), Arm("baseline", perfect), [Arm("a", perfect)], RULES)
    assert tie.verdict is Verdict.NO_CHANGE and tie.candidates[0].tests["deployed"].p_improve == 0.5


def test_one_lucky_seed_does_not_promote():
    rng = np.random.default_rng(3)
    d, b, c = arms(rng, 0.80, [0.80] * 10, a=[0.99] + [0.78] * 9)
    decision = decide(d, b, c, RULES)
    assert decision.verdict is not Verdict.PROMOTE
    assert not decision.candidates[0].rules["P(better than deployed) significant"]


def test_a_gain_the_fair_baseline_also_gets_is_not_credited_to_new_data():
    rng = np.random.default_rng(4)
    d, b, c = arms(rng, 0.70, [0.90] * 10, b=[0.90] * 10)
    decision = decide(d, b, c, RULES)
    result = decision.candidates[0]
    assert result.rules["P(better than deployed) significant"]
    assert not result.rules["P(better than baseline) significant"]
    assert decision.verdict is Verdict.NO_CHANGE


def test_a_real_but_too_small_gain_is_not_promoted():
    rng = np.random.default_rng(5)
    values = lambda acc, r: correct(rng, [acc] * r, n=20000)  # noqa: E731 - large n makes 1% significant
    decision = decide(Arm("deployed", values(0.90, 1)), Arm("baseline", values(0.90, 20)),
                      [Arm("a", values(0.91, 20), weights_only=True)], RULES)
    result = decision.candidates[0]
    assert result.rules["P(better than deployed) significant"]
    assert not result.rules["gain over deployed at least 0.02"]
    assert decision.verdict is Verdict.NO_CHANGE


def test_too_few_repeats_never_promote_and_noise_is_inconclusive():
    rng = np.random.default_rng(6)
    d, b, c = arms(rng, 0.60, [0.60] * 3, a=[0.95] * 3)
    assert decide(d, b, c, RULES).verdict is not Verdict.PROMOTE
    d, b, c = arms(rng, 0.60, [0.60] * 6, a=[0.63, 0.58, 0.66, 0.61, 0.64, 0.59], n=60)
    assert decide(d, b, c, RULES).verdict is Verdict.INCONCLUSIVE


def test_holm_correction_makes_the_rule_stricter_with_more_candidates():
    rng = np.random.default_rng(7)
    d, b, c = arms(rng, 0.70, [0.70] * 6, a=[0.74, 0.75, 0.73, 0.76, 0.72, 0.75], n=300)
    alone = decide(d, b, c, RULES)
    crowd = decide(d, b, [*c, Arm("c", correct(rng, [0.70] * 6, 300)), Arm("d", correct(rng, [0.69] * 6, 300))], RULES)
    p_alone = alone.candidates[0].tests["deployed"].p_adjusted
    p_crowd = crowd.candidates[0].tests["deployed"].p_adjusted
    assert p_crowd >= p_alone


def test_lower_is_better_metrics_are_oriented():
    rng = np.random.default_rng(8)
    errors = lambda mean, r: np.abs(rng.normal(mean, 0.005, size=(r, 200)))  # noqa: E731
    rules = GateRules(min_gain=0.002, higher_is_better=False, bootstrap=500)
    decision = decide(Arm("deployed", errors(0.05, 1)), Arm("baseline", errors(0.05, 8)),
                      [Arm("a", errors(0.01, 8), weights_only=True)], rules)
    assert decision.verdict is Verdict.PROMOTE
    assert decision.candidates[0].tests["deployed"].gain > 0.03


def test_the_decision_is_reproducible_from_its_seed():
    rng = np.random.default_rng(9)
    d, b, c = arms(rng, 0.70, [0.71] * 6, a=[0.74] * 6)
    assert decide(d, b, c, RULES, seed=3).to_dict() == decide(d, b, c, RULES, seed=3).to_dict()


def test_probability_of_improvement_counts_ties_half():
    assert prob_improvement(np.array([1.0, 2.0]), np.array([1.0])) == 0.75
    assert prob_improvement(np.array([1.0, 2.0]), np.array([1.0]), higher_is_better=False) == 0.25


@pytest.mark.parametrize("bad, message", [
    (np.full((2, N), np.nan), "NaN"),
    (np.ones((2, N - 1)), "shape"),
])
def test_bad_arms_are_named(bad, message):
    with pytest.raises(InputError, match=message):
        decide(Arm("deployed", np.ones((1, N))), Arm("baseline", np.ones((3, N))), [Arm("a", bad)], RULES)
