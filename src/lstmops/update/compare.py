"""Step 4: compare the arms robustly and say, in the problem's own terms, what the gate found.

Glue between the candidates' per-example results and the pure gate
(:mod:`lstmops.update.gate`): the rules come from ``params.yaml``, the arms' names and
weights-only flags from :data:`ARM_TITLES`, and the verdict is worded for people.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lstmops.config import Settings
from lstmops.errors import DataError
from lstmops.problems import get_problem
from lstmops.update.candidates import CANDIDATES
from lstmops.update.gate import BASELINE, DEPLOYED, Arm, Decision, GateRules, Verdict, decide

# Every arm keeps the deployed model's architecture and fitted preprocessing (fresh arms only
# start from new weights), so each is a weights-only update; an arm that changed structure
# (another architecture or preprocessing) would not be, and the gate would prefer the others.
WEIGHTS_ONLY = CANDIDATES
ARM_TITLES = {
    "a": "the deployed model trained on with new data only",
    "b": "the deployed model trained on with old and new data",
    "c": "a fresh model trained on new data only",
    "d": "a fresh model trained on old and new data",
    BASELINE: "the deployed model trained on with old data only (fair baseline)",
    DEPLOYED: "the deployed model as it is",
}


def gate_rules(settings: Settings, problem: str) -> GateRules:
    """The gate's rules for ``problem`` as ``params.yaml`` writes them."""
    gate = settings.update.gate
    module = get_problem(problem)
    return GateRules(min_gain=float(gate.min_gain.get(problem, 0.0)), alpha=gate.alpha,
                     confidence=gate.confidence, min_repeats=gate.min_repeats, bootstrap=gate.bootstrap,
                     higher_is_better=bool(module.HIGHER_IS_BETTER))


def compare(settings: Settings, problem: str, deployed: np.ndarray, arms: Mapping[str, np.ndarray],
            seed: int = 0) -> Decision:
    """The gate's decision on per-example matrices (``repeats × examples``) of every arm.

    Args:
        deployed: the deployed model's per-example values (one row, or a vector).
        arms: ``baseline`` and the candidates ``a``..``d`` that produced results.
    """
    rules = gate_rules(settings, problem)
    if BASELINE not in arms or len(arms[BASELINE]) == 0:
        raise DataError(f"{problem}: every repeat of the fair baseline diverged (NaN loss); no comparison is "
                        "possible — lower update.lr_factor or look at the deployed model")
    # a candidate whose every repeat diverged has nothing to compare; the evidence counts its divergences
    candidates = [Arm(name, np.asarray(arms[name]), name in WEIGHTS_ONLY) for name in CANDIDATES
                  if name in arms and len(arms[name])]
    if not candidates:
        raise DataError(f"{problem}: every repeat of every candidate diverged (NaN loss); nothing to propose")
    return decide(Arm(DEPLOYED, np.atleast_2d(np.asarray(deployed, dtype=np.float64))),
                  Arm(BASELINE, np.asarray(arms[BASELINE])), candidates, rules, seed=seed)


def needs_more_repeats(decision: Decision, repeats: int, max_repeats: int) -> bool:
    """An INCONCLUSIVE verdict may add repeats, up to ``update.max_repeats`` per arm."""
    return decision.verdict is Verdict.INCONCLUSIVE and repeats < max_repeats


def headline(problem: str, decision: Decision) -> str:
    """One line for logs and ``make run``: the verdict, the winner and its effect in the metric's units."""
    module = get_problem(problem)
    metric = module.PRIMARY_METRIC
    deployed = decision.means[DEPLOYED]
    if decision.winner is None:
        best = max(decision.candidates, key=lambda r: r.tests[DEPLOYED].p_improve)
        return (f"{problem}: {decision.verdict.value}, best candidate ({best.name}) {metric} {best.mean:.4g} vs "
                f"deployed {deployed:.4g}, P(better) {best.tests[DEPLOYED].p_improve:.2f}")
    win = next(r for r in decision.candidates if r.name == decision.winner)
    return (f"{problem}: PROMOTE candidate ({win.name}), {metric} {win.mean:.4g} vs champion {deployed:.4g}, "
            f"P(better) {win.tests[DEPLOYED].p_improve:.2f}")


def effect_in_words(problem: str, decision: Decision) -> str:
    """The winner's effect in the problem's own terms, e.g. "answers 87 more sums in 100 correctly"."""
    if decision.winner is None:
        return "no candidate is better than the deployed model by the minimum gain, beyond chance"
    module = get_problem(problem)
    win = next(r for r in decision.candidates if r.name == decision.winner)
    gain = win.tests[DEPLOYED].gain
    if module.HIGHER_IS_BETTER:
        return f"gets {100 * gain:.0f} more in 100 right ({module.PRIMARY_METRIC} +{gain:.3f})"
    return f"cuts the {module.PRIMARY_METRIC} by {gain:.4g} ({100 * gain / max(decision.means[DEPLOYED], 1e-12):.0f}%)"
