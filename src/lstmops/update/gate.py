"""The promotion gate: is a candidate really better than the deployed model and the fair baseline?

Every arm (the deployed model, the fair baseline, the candidates) is scored on the same
recent evaluation data that no arm trained on. An arm is a matrix of per-example values
(``repeats × examples``: 1/0 for a correct answer, an absolute error, ...), so that the
arm's score in a repeat is the mean of its row, and both sources of variance can be
resampled: the training seed (rows) and the evaluation sample (columns).

For each candidate and each reference (deployed, baseline) the gate estimates the
probability of improvement P(candidate > reference) — the Mann–Whitney statistic
U / (n_a n_b), ties counting one half — and its distribution under a two-level bootstrap
(evaluation examples resampled with the same indices for every arm, then repeats resampled
within each arm). A one-sided bootstrap p-value for "P > 0.5" is Holm-corrected across the
candidates, per reference. A candidate passes when, against both references, its corrected p-value is
below ``alpha`` and its mean gain in the problem's own metric is at least ``min_gain``.

Verdicts: PROMOTE (some candidate passes), NO-CHANGE (no candidate can reach the minimum
gain over both references: the upper end of every candidate's gain interval falls short),
INCONCLUSIVE (anything else: more repeats may decide). Among passing candidates a
weights-only update is preferred, then the larger probability of improvement over the
deployed model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Mapping, Sequence

import numpy as np

from lstmops.errors import InputError

DEPLOYED, BASELINE = "deployed", "baseline"


class Verdict(str, Enum):
    """The gate's answer."""

    PROMOTE = "PROMOTE"
    NO_CHANGE = "NO-CHANGE"
    INCONCLUSIVE = "INCONCLUSIVE"


@dataclass(frozen=True)
class GateRules:
    """The decision rule, as written in ``params.yaml`` (``update.gate``)."""

    min_gain: float = 0.0          # smallest improvement worth a promotion, in the metric's own units
    alpha: float = 0.05            # family-wise error rate over the candidates (Holm)
    confidence: float = 0.95       # two-sided level of the reported intervals
    min_repeats: int = 5           # fewer repeats than this never promote (P(A>B) "passes" on one run)
    bootstrap: int = 2000          # bootstrap iterations
    higher_is_better: bool = True


@dataclass(frozen=True)
class Arm:
    """One arm's per-example values on the shared evaluation data (``repeats × examples``).

    ``weights_only`` marks a candidate that keeps the deployed architecture (a weights update).
    """

    name: str
    values: np.ndarray
    weights_only: bool = False

    @property
    def scores(self) -> np.ndarray:
        """The arm's score per repeat (row means)."""
        return self.values.mean(axis=1)


@dataclass(frozen=True)
class Test:
    """One candidate against one reference."""

    reference: str
    p_improve: float               # P(candidate > reference) on the observed data
    p_interval: tuple[float, float]
    gain: float                    # mean score difference, oriented so that positive is better
    gain_interval: tuple[float, float]
    p_value: float                 # one-sided bootstrap p-value for P(candidate > reference) > 0.5
    p_adjusted: float = float("nan")  # after Holm's correction across candidates


@dataclass(frozen=True)
class CandidateResult:
    """Everything the gate found about one candidate, and each rule passed or failed."""

    name: str
    weights_only: bool
    repeats: int
    mean: float
    tests: dict[str, Test]
    rules: dict[str, bool]

    @property
    def passed(self) -> bool:
        """All rules hold."""
        return all(self.rules.values())

    hopeless: bool                 # the gain interval's upper end misses the minimum gain over a reference


@dataclass(frozen=True)
class Decision:
    """The gate's verdict with its evidence."""

    verdict: Verdict
    winner: str | None
    rules: GateRules
    means: dict[str, float]
    candidates: list[CandidateResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-able evidence."""
        out = asdict(self)
        out["verdict"] = self.verdict.value
        for cand, result in zip(out["candidates"], self.candidates):
            cand["passed"] = result.passed
        return out


def _matrix(arm: Arm, n_examples: int) -> np.ndarray:
    values = np.asarray(arm.values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] != n_examples:
        raise InputError(f"gate: arm {arm.name} has values of shape {values.shape}; expected (repeats, "
                         f"{n_examples}) on the shared evaluation data")
    if not np.isfinite(values).all():
        raise InputError(f"gate: arm {arm.name} has NaN or infinite scores (did its training diverge?)")
    return values


def prob_improvement(a: np.ndarray, b: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """P(A > B) over the last axis of both (Mann–Whitney U / (n_a n_b), ties half), batched over the rest."""
    diff = a[..., :, None] - b[..., None, :]
    if not higher_is_better:
        diff = -diff
    return (diff > 0).mean(axis=(-2, -1)) + 0.5 * (diff == 0).mean(axis=(-2, -1))


def _bootstrap_scores(arms: Mapping[str, np.ndarray], iterations: int, rng: np.random.Generator) -> dict:
    """Per arm, ``iterations × repeats`` scores with examples and then repeats resampled."""
    n = next(iter(arms.values())).shape[1]
    counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(iterations)]) / n
    out = {}
    for name, values in arms.items():
        per_repeat = counts @ values.T                      # examples resampled, same indices for every arm
        r = values.shape[0]
        pick = rng.integers(0, r, size=(iterations, r))     # then repeats resampled within the arm
        out[name] = np.take_along_axis(per_repeat, pick, axis=1)
    return out


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def _test(cand: str, ref: str, observed: Mapping[str, np.ndarray], boot: Mapping[str, np.ndarray],
          rules: GateRules) -> Test:
    sign = 1.0 if rules.higher_is_better else -1.0
    p_obs = float(prob_improvement(observed[cand], observed[ref], rules.higher_is_better))
    p_boot = prob_improvement(boot[cand], boot[ref], rules.higher_is_better)
    gain_obs = sign * float(observed[cand].mean() - observed[ref].mean())
    gain_boot = sign * (boot[cand].mean(axis=1) - boot[ref].mean(axis=1))
    p_value = float((1 + np.sum(p_boot <= 0.5)) / (1 + len(p_boot)))
    return Test(ref, p_obs, _interval(p_boot, rules.confidence), gain_obs,
                _interval(gain_boot, rules.confidence), p_value)


def _holm(p_values: Sequence[float]) -> list[float]:
    from statsmodels.stats.multitest import multipletests

    return [float(p) for p in multipletests(list(p_values), method="holm")[1]] if p_values else []


def decide(deployed: Arm, baseline: Arm, candidates: Sequence[Arm], rules: GateRules,
           seed: int = 0) -> Decision:
    """The verdict on ``candidates`` against the deployed model and the fair baseline.

    Args:
        deployed: the deployed model (usually one row: it is one trained model).
        baseline: the deployed model trained on for the same extra epochs on old data only.
        candidates: the candidate arms, each with ``repeats`` rows.
        seed: seed of the bootstrap, so a decision can be recomputed exactly.
    """
    if not candidates:
        raise InputError("gate: no candidate to compare")
    n = np.asarray(deployed.values).shape[-1]
    arms = {a.name: _matrix(a, n) for a in (deployed, baseline, *candidates)}
    if len(arms) != 2 + len(candidates):
        raise InputError("gate: arm names must be unique")
    observed = {name: v.mean(axis=1) for name, v in arms.items()}
    boot = _bootstrap_scores(arms, rules.bootstrap, np.random.default_rng(seed))
    raw = {c.name: {ref: _test(c.name, ref, observed, boot, rules) for ref in (deployed.name, baseline.name)}
           for c in candidates}
    # Holm across the candidates, per reference; beating both references is an intersection-union
    # test, which needs no further correction
    for ref in (deployed.name, baseline.name):
        adjusted = _holm([raw[c.name][ref].p_value for c in candidates])
        for c, p_adj in zip(candidates, adjusted):
            raw[c.name][ref] = Test(**{**asdict(raw[c.name][ref]), "p_adjusted": p_adj})
    results = [_result(c, raw[c.name], observed[c.name], rules) for c in candidates]
    means = {name: float(s.mean()) for name, s in observed.items()}
    winner = _pick([r for r in results if r.passed], deployed.name)
    if winner is not None:
        return Decision(Verdict.PROMOTE, winner.name, rules, means, results)
    verdict = Verdict.NO_CHANGE if all(r.hopeless for r in results) else Verdict.INCONCLUSIVE
    return Decision(verdict, None, rules, means, results)


def _result(arm: Arm, tests: dict[str, Test], scores: np.ndarray, rules: GateRules) -> CandidateResult:
    checks = {"enough repeats": len(scores) >= rules.min_repeats}
    for ref, t in tests.items():
        checks[f"P(better than {ref}) significant"] = t.p_adjusted < rules.alpha
        checks[f"gain over {ref} at least {rules.min_gain:g}"] = t.gain >= rules.min_gain and t.gain > 0
    floor = rules.min_gain if rules.min_gain > 0 else 1e-12  # with no minimum, "no gain at all" is hopeless
    hopeless = any(t.gain_interval[1] < floor for t in tests.values())
    return CandidateResult(arm.name, arm.weights_only, len(scores), float(scores.mean()), tests, checks, hopeless)


def _pick(passing: list[CandidateResult], deployed: str) -> CandidateResult | None:
    """Weights-only updates first, then the larger effect: the gain over the deployed model in the metric's
    own units (P(better) saturates at 1 on clear wins, so it only breaks ties)."""
    if not passing:
        return None
    return max(passing, key=lambda r: (r.weights_only, r.tests[deployed].gain, r.tests[deployed].p_improve))
