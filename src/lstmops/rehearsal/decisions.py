"""Many independent gate decisions in worlds whose truth is known: how often is the gate right?

A *trial* is one update decision of one problem, made exactly as the update flow makes
it (:mod:`lstmops.update.candidates` trains the five arms as replicas, the gate of
:mod:`lstmops.update.compare` decides, an INCONCLUSIVE verdict adds repeats up to
``update.max_repeats``), but with its own root seed: its own collected batch, its own
evaluation rows, its own arm seeds and its own bootstrap. Two worlds:

- **steady**: the decision is made on a date before any drift of the problem starts, so
  the deployed model is as good as it was; a PROMOTE is a false promotion.
- **drift**: the decision is made on the first scheduled update date (a Monday) on which
  the deployed model has measurably degraded, that is lost at least ``DEGRADED_GAINS``
  times the gate's minimum gain on a large fresh sample; failing that, once more one
  update interval later. A PROMOTE within those two decisions counts for power.

Truth is measured apart from the gate: the deployed model and the promoted candidate
are scored on a *holdout* of fresh sequences of the decision date that neither the arms
nor the gate saw, and the candidate's recovery is its holdout skill against the deployed
model's before the drift started (inverted for lower-is-better metrics).

What a trial simplifies, on purpose: its "new" data is the decision day's batch alone
(the flow's window would add earlier weekly batches), and the deployed model is the
registry's champion of the build, never one promoted by an earlier trial.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmops.config import Settings, problem_settings, update_for
from lstmops.seeding import rng_for

DEGRADED_GAINS = 2.0     # a champion counts as degraded once it lost this many minimum gains
HOLDOUT = 2000           # fresh sequences the truth is measured on (moving_square: HOLDOUT_SMALL)
HOLDOUT_SMALL = 500
HORIZON_WEEKS = 16       # how far after a drift's start its degradation date is looked for


@dataclass(frozen=True)
class Champion:
    """The deployed model a trial starts from (picklable, read-only)."""

    folder: str
    version: int
    metadata: dict


@dataclass(frozen=True)
class Trial:
    """One decision (or, in the drift world, up to two: ``days``) of one problem under its own seed."""

    problem: str
    world: str               # "steady" or "drift"
    seed: int
    days: tuple[str, ...]


@dataclass
class TrialResult:
    """What the gate decided in a trial, and what was true."""

    problem: str
    world: str
    seed: int
    decisions: list[dict] = field(default_factory=list)  # per decision: day, verdict, winner, repeats, seconds
    promoted_on: str | None = None
    winner: str | None = None
    champion_skill: float | None = None      # holdout, on the day of the last decision
    candidate_skill: float | None = None     # holdout, the promoted candidate
    pre_drift_skill: float | None = None     # holdout, the champion on the day before the drift started
    true_gain: float | None = None           # candidate against champion on the holdout (metric's direction)
    recovery: float | None = None            # drift world: candidate skill as a share of the pre-drift skill
    seconds: float = 0.0

    @property
    def promoted(self) -> bool:
        return self.promoted_on is not None


def mondays(first: date, last: date) -> list[date]:
    """The scheduled update dates (Mondays, like ``update.schedule``) from ``first`` to ``last``."""
    day = first + timedelta(days=(7 - first.weekday()) % 7)
    out = []
    while day <= last:
        out.append(day)
        day += timedelta(days=7)
    return out


def drift_start(settings: Settings, problem: str) -> date | None:
    """The first date any drift step of ``problem`` starts, or None without drift."""
    steps = problem_settings(settings, problem).drift
    return min(s.start for s in steps) if steps else None


def steady_days(settings: Settings, problem: str, count: int = 8) -> list[date]:
    """Update dates before the problem's drift starts (from the build's ``as_of``)."""
    start = drift_start(settings, problem)
    last = (start - timedelta(days=1)) if start else settings.as_of + timedelta(weeks=count)
    return mondays(settings.as_of, last)[:count]


def holdout(settings: Settings, problem: str, day: date) -> pd.DataFrame:
    """Fresh sequences of ``day`` that no trial trains or decides on (one fixed stream per problem and day)."""
    from lstmops.data.drift import generate_at
    from lstmops.problems import get_problem

    cfg = problem_settings(settings, problem)
    n = HOLDOUT_SMALL if problem == "moving_square" else HOLDOUT
    rng = rng_for(settings.seed, problem, "decision-holdout", day.isoformat())
    return generate_at(get_problem(problem), cfg.process, cfg.drift, n, rng, day)


def skill_on(settings: Settings, problem: str, folder: Path, rows: pd.DataFrame, work: Path) -> float:
    """Mean per-example value of the bundle in ``folder`` on ``rows`` (the gate's own scoring code)."""
    from lstmops.data.io import write_table
    from lstmops.features.preparers import load_preparer
    from lstmops.modeling.bundle import load_model
    from lstmops.problems import is_generative
    from lstmops.update.candidates import UpdateData, _outputs, _values, _write_inputs

    preparer = load_preparer(Path(folder) / "preprocessing.json")
    work.mkdir(parents=True, exist_ok=True)
    generative = is_generative(problem)
    if not generative:
        _write_inputs(preparer, [rows], work / "X_eval.npy")
    write_table(rows.reset_index(drop=True), work / "eval.parquet")
    cfg = problem_settings(settings, problem)
    data = UpdateData(problem, "holdout", str(work), 0, (0, 0), (0, 0), len(rows), generative,
                      int(rng_for(settings.seed, problem, "holdout-draw").integers(2**31)),
                      cfg.model.temperature)
    values = _values(data, _outputs(data, load_model(Path(folder)), preparer), preparer)
    return float(np.mean(values))


def _better(problem: str) -> bool:
    from lstmops.problems import get_problem

    return bool(get_problem(problem).HIGHER_IS_BETTER)


def degradation(settings: Settings, problem: str, champion: Champion, work: Path) -> dict:
    """When the champion has measurably degraded after the drift starts (the drift world's first decision)."""
    start = drift_start(settings, problem)
    if start is None:
        return {"problem": problem, "start": None, "pre_drift": None, "weeks": [], "degraded_on": None}
    min_gain = float(settings.update.gate.min_gain.get(problem, 0.0))
    sign = 1.0 if _better(problem) else -1.0
    pre = skill_on(settings, problem, Path(champion.folder), holdout(settings, problem, start - timedelta(days=1)),
                   work / "pre")
    weeks, found = [], None
    for day in mondays(start, start + timedelta(weeks=HORIZON_WEEKS)):
        now = skill_on(settings, problem, Path(champion.folder), holdout(settings, problem, day), work / day.isoformat())
        loss = sign * (pre - now)
        weeks.append({"day": day.isoformat(), "skill": now, "loss": loss})
        if loss >= DEGRADED_GAINS * min_gain:
            found = day
            break
    return {"problem": problem, "start": start.isoformat(), "pre_drift": pre, "weeks": weeks,
            "degraded_on": found.isoformat() if found else None}


def decide_once(settings: Settings, problem: str, day: date, champion: Champion, root: Path, run_dir: Path
                ) -> tuple[Any, list[Any], Any]:
    """One update decision as the flow makes it: (decision, arm results, prepared data)."""
    from lstmops.seeding import int_seed_for
    from lstmops.update.candidates import (arm_matrices, group_jobs, plan_jobs, prepare_update_data, run_jobs,
                                           score_deployed)
    from lstmops.update.collect import draw_split
    from lstmops.update.compare import compare, needs_more_repeats

    new_rows, eval_rows = draw_split(settings, problem, day, "train"), draw_split(settings, problem, day, "eval")
    data = prepare_update_data(settings, problem, champion, new_rows, eval_rows, root, run_dir,
                               int_seed_for(settings.seed, problem, "update-data", run_dir.name))
    deployed = score_deployed(data)
    results: list[Any] = []
    repeats, cap, up = settings.update.repeats, settings.update.max_repeats, settings.update
    done = 0
    while True:
        jobs = plan_jobs(settings, problem, data, repeats - done, start=done)
        for group in group_jobs(jobs, up.replicas):
            results += run_jobs(group)
        done = repeats
        decision = compare(settings, problem, deployed, arm_matrices(results), seed=len(results))
        if not needs_more_repeats(decision, repeats, cap):
            return decision, results, data
        repeats = min(cap, repeats + max(1, up.repeats // 2))


_CHAMPION_SKILL: dict[tuple[str, str, str], float] = {}


def _champion_skill(settings: Settings, problem: str, folder: str, day: str, work: Path) -> float:
    """The champion's holdout skill on ``day`` (computed once per process)."""
    key = (problem, folder, day)
    if key not in _CHAMPION_SKILL:
        _CHAMPION_SKILL[key] = skill_on(settings, problem, Path(folder),
                                        holdout(settings, problem, date.fromisoformat(day)),
                                        work / f"champion-{problem}-{day}")
    return _CHAMPION_SKILL[key]


def run_trial(settings: Settings, trial: Trial, champion: Champion, root: Path, work: Path,
              pre_drift: float | None = None, keep: bool = False) -> TrialResult:
    """Run ``trial`` (in this process) and score the truth on the holdout of its last decision day."""
    from lstmops.update.candidates import realize
    from lstmops.update.gate import Verdict

    started = time.perf_counter()
    mine = update_for(settings.model_copy(update={"seed": trial.seed}), trial.problem)
    out = TrialResult(trial.problem, trial.world, trial.seed, pre_drift_skill=pre_drift)
    folder = work / f"{trial.problem}-{trial.world}-{trial.seed}"
    sign = 1.0 if _better(trial.problem) else -1.0
    try:
        for text in trial.days:
            day = date.fromisoformat(text)
            t0 = time.perf_counter()
            run_dir = folder / text
            decision, results, data = decide_once(mine, trial.problem, day, champion, root, run_dir)
            repeats = max((r.repeat for r in results), default=-1) + 1
            out.decisions.append({"day": text, "verdict": decision.verdict.value, "winner": decision.winner,
                                  "repeats": repeats, "seconds": round(time.perf_counter() - t0, 1),
                                  "deployed": decision.means.get("deployed")})
            # the truth, on the holdout of this day (the settings' own seed: the same rows for every trial)
            out.champion_skill = _champion_skill(settings, trial.problem, champion.folder, text, work)
            if decision.verdict is Verdict.PROMOTE:
                candidate = realize(mine, trial.problem, decision.winner, results, data, champion, run_dir, {})
                out.promoted_on, out.winner = text, decision.winner
                out.candidate_skill = skill_on(settings, trial.problem, candidate, holdout(settings, trial.problem, day),
                                               run_dir / "holdout")
                out.true_gain = sign * (out.candidate_skill - out.champion_skill)
                if pre_drift is not None:
                    out.recovery = recovery(trial.problem, out.candidate_skill, pre_drift)
                break
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    out.seconds = round(time.perf_counter() - started, 1)
    return out


def recovery(problem: str, skill: float, before: float) -> float:
    """Share of the pre-drift skill a model has: skill/before, or before/skill for a lower-is-better metric."""
    if _better(problem):
        return skill / before if before else math.nan
    return before / skill if skill else math.inf


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (statsmodels)."""
    from statsmodels.stats.proportion import proportion_confint

    if n == 0:
        return (math.nan, math.nan)
    low, high = proportion_confint(successes, n, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def rate(successes: int, n: int) -> dict:
    """A rate with its Wilson 95% interval and its count."""
    low, high = wilson(successes, n)
    return {"rate": successes / n if n else math.nan, "low": low, "high": high, "successes": successes, "n": n}


def summarize(results: list[TrialResult], min_gains: dict[str, float]) -> dict:
    """Decision quality over all trials: false promotion, inconclusive, power, delay, recovery."""
    steady = [r for r in results if r.world == "steady"]
    drift = [r for r in results if r.world == "drift"]
    first = [r.decisions[0]["verdict"] for r in steady if r.decisions]
    out: dict[str, Any] = {
        "steady": {
            "false_promotion": rate(sum(v == "PROMOTE" for v in first), len(first)),
            "inconclusive": rate(sum(v == "INCONCLUSIVE" for v in first), len(first)),
            "no_change": rate(sum(v == "NO-CHANGE" for v in first), len(first)),
            # a promotion whose candidate was not truly better by the minimum gain on the holdout
            "harmful_promotion": rate(sum(r.promoted and (r.true_gain or 0) < min_gains.get(r.problem, 0)
                                          for r in steady), len(steady)),
        },
        "drift": {
            "power_first_interval": rate(sum(bool(r.decisions) and r.decisions[0]["verdict"] == "PROMOTE"
                                             for r in drift), len(drift)),
            "power_within_one_interval": rate(sum(r.promoted for r in drift), len(drift)),
            "recovery_median": float(np.median([r.recovery for r in drift if r.recovery is not None]))
            if any(r.recovery is not None for r in drift) else None,
            "recovered_95": rate(sum((r.recovery or 0) >= 0.95 for r in drift if r.promoted),
                                 sum(r.promoted for r in drift)),
        },
        "per_problem": {},
    }
    for problem in dict.fromkeys(r.problem for r in results):
        s = [r for r in steady if r.problem == problem]
        d = [r for r in drift if r.problem == problem]
        rec = [r.recovery for r in d if r.recovery is not None]
        out["per_problem"][problem] = {
            "steady_decisions": len(s),
            "steady_promote": sum(bool(r.decisions) and r.decisions[0]["verdict"] == "PROMOTE" for r in s),
            "steady_inconclusive": sum(bool(r.decisions) and r.decisions[0]["verdict"] == "INCONCLUSIVE" for r in s),
            "drift_trials": len(d),
            "drift_promoted_first": sum(bool(r.decisions) and r.decisions[0]["verdict"] == "PROMOTE" for r in d),
            "drift_promoted": sum(r.promoted for r in d),
            "recovery_min": min(rec) if rec else None,
            "recovery_median": float(np.median(rec)) if rec else None,
            "seconds_per_decision": float(np.mean([x["seconds"] for r in s + d for x in r.decisions]))
            if s + d else None,
        }
    return out


def as_dict(result: TrialResult) -> dict:
    """A trial's result as JSON-able data."""
    return dataclasses.asdict(result)
