"""Step 2 of the update process: evaluate the deployed model from the store's whole history.

Skill per day and per week, per model version (the champion, the previous model and
any other version that served or shadowed), from the predictions and observations the
store holds up to the run's date. The verdict compares the champion's most recent week
with all its earlier weeks example by example (the problem's ``per_example`` values, so
the test sees examples, not interval means): 0/1 outcomes with a two-sided two-proportion
z-test (Fisher's exact test when an expected count is under 5), continuous values (an
absolute error) with Welch's t-test. The trend is ``degrading`` or ``improving`` when
p < ``update.gate.alpha`` and the change is at least ``update.gate.min_gain[problem]``
in the metric's own units; otherwise ``stable``. A generative problem (rectangles) has
no observations: each day's drawings are scored against a fresh table of the process as
it stood that day (the collect step's evaluation rows of that day, regenerated).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import Enum

import numpy as np
import pandas as pd

from lstmops.config import Settings
from lstmops.update.collect import draw_split, run_time

INTERVALS = ("day", "week")
MIN_EXAMPLES = 30      # fewer examples in the recent or the earlier part: not enough history
FISHER_BELOW = 5       # smallest expected cell count for the z-test's normal approximation


class Trend(str, Enum):
    """Where the deployed model's skill is heading."""

    STABLE = "stable"
    DEGRADING = "degrading"
    IMPROVING = "improving"


@dataclass(frozen=True)
class TrendTest:
    """The champion's most recent interval against its earlier history, example by example."""

    test: str                 # e.g. "two-proportion z-test"
    p_value: float            # two-sided
    effect: float             # recent mean - earlier mean, in the metric's own units
    gain: float               # the effect oriented so that positive is better
    recent_period: str        # start of the most recent interval (YYYY-MM-DD)
    recent_n: int
    earlier_n: int
    recent_mean: float
    earlier_mean: float
    alpha: float
    min_gain: float


@dataclass(frozen=True)
class Assessment:
    """Skill over time of the deployed model and its verdict."""

    problem: str
    as_of: date
    metric: str
    higher_is_better: bool
    champion_version: int | None
    previous_version: int | None
    skill: dict[str, list[dict]]  # "day" / "week" -> rows: period, model_version, role, n, metrics
    verdict: Trend
    test: TrendTest | None
    note: str


def skill_history(store, aliases: dict[str, int], problem: str, as_of: date) -> dict[str, list[dict]]:
    """Skill per day and week of every model version up to ``as_of``, each row with its ``role``."""
    roles = {version: alias for alias, version in aliases.items()}
    until = run_time(as_of) + timedelta(days=1)
    return {interval: [{**row, "role": roles.get(row["model_version"], "other")}
                       for row in store.skill(problem, interval, until=until)]
            for interval in INTERVALS}


def champion_outcomes(settings: Settings, problem: str, version: int, as_of: date, store) -> pd.DataFrame:
    """The champion's per-example values up to ``as_of``: columns ``at`` (prediction time) and ``value``."""
    from lstmops.problems import get_problem, is_generative

    module = get_problem(problem)
    generative = is_generative(problem)
    rows = store.joined(problem, version, until=run_time(as_of) + timedelta(days=1), observed_only=not generative)
    if not rows:
        return pd.DataFrame({"at": pd.Series(dtype="datetime64[ns]"), "value": pd.Series(dtype=float)})
    frame = pd.DataFrame(rows)
    frame["at"] = pd.to_datetime(frame["predicted_at"])
    if not generative:
        values = module.per_example(pd.DataFrame(frame["target"].tolist()), frame["output"].tolist())
        return pd.DataFrame({"at": frame["at"], "value": np.asarray(values, dtype=float)})
    parts = []
    for day, group in frame.groupby(frame["at"].dt.date, sort=True):
        process = draw_split(settings, problem, day, "eval")  # the shapes the process made that day
        parts.append(pd.DataFrame({"at": group["at"], "value": module.per_example(process, group["output"].tolist())}))
    return pd.concat(parts, ignore_index=True)


def split_recent(outcomes: pd.DataFrame, interval: str = "week") -> tuple[str, np.ndarray, np.ndarray]:
    """(start of the most recent interval, its values, the values of all earlier intervals)."""
    period = _period_start(outcomes["at"], interval)
    latest = period.max()
    recent = outcomes["value"][period == latest].to_numpy(dtype=float)
    earlier = outcomes["value"][period < latest].to_numpy(dtype=float)
    return latest.date().isoformat(), recent, earlier


def _period_start(times: pd.Series, interval: str) -> pd.Series:
    """The start of the day or week (from Monday) each time falls in, as the store buckets them."""
    return times.dt.floor("D") if interval == "day" else times.dt.to_period("W-SUN").dt.start_time


def _is_binary(*samples: np.ndarray) -> bool:
    return all(np.isin(s, (0.0, 1.0)).all() for s in samples)


def compare(recent: np.ndarray, earlier: np.ndarray) -> tuple[str, float]:
    """(test name, two-sided p-value) of recent against earlier per-example values."""
    from scipy import stats

    if _is_binary(recent, earlier):
        hits, sizes = np.array([recent.sum(), earlier.sum()]), np.array([len(recent), len(earlier)])
        table = np.array([hits, sizes - hits])
        expected = table.sum(axis=1, keepdims=True) * sizes / sizes.sum()
        if expected.min() < FISHER_BELOW:
            return "Fisher's exact test", float(stats.fisher_exact(table)[1])
        from statsmodels.stats.proportion import proportions_ztest

        p_value = proportions_ztest(hits, sizes)[1] if 0 < hits.sum() < sizes.sum() else 1.0
        return "two-proportion z-test", float(p_value)
    if np.ptp(np.concatenate([recent, earlier])) == 0:
        return "Welch's t-test", 1.0  # every value the same: no evidence of any change
    return "Welch's t-test", float(stats.ttest_ind(recent, earlier, equal_var=False).pvalue)


def trend_test(period: str, recent: np.ndarray, earlier: np.ndarray, higher_is_better: bool, alpha: float,
               min_gain: float) -> TrendTest:
    """The test of the most recent interval against the earlier history, with its effect size."""
    name, p_value = compare(recent, earlier)
    effect = float(recent.mean() - earlier.mean())
    gain = effect if higher_is_better else -effect
    return TrendTest(name, p_value, effect, gain, period, len(recent), len(earlier), float(recent.mean()),
                     float(earlier.mean()), alpha, min_gain)


def verdict_of(test: TrendTest) -> Trend:
    """``improving``/``degrading`` when significant and at least the minimum gain; else ``stable``."""
    if test.p_value >= test.alpha or abs(test.gain) < test.min_gain or test.gain == 0:
        return Trend.STABLE
    return Trend.IMPROVING if test.gain > 0 else Trend.DEGRADING


def assess(settings: Settings, problem: str, as_of: date, *, store, registry, interval: str = "week") -> Assessment:
    """Skill over time of ``problem``'s deployed model and whether it is stable, degrading or improving.

    Args:
        interval: the recent interval tested against all earlier ones (``week`` or ``day``).
    """
    from lstmops.problems import get_problem

    module = get_problem(problem)
    aliases = registry.aliases(problem)
    champion = aliases.get("champion")
    base = dict(problem=problem, as_of=as_of, metric=module.PRIMARY_METRIC,
                higher_is_better=bool(module.HIGHER_IS_BETTER), champion_version=champion,
                previous_version=aliases.get("previous"), skill=skill_history(store, aliases, problem, as_of))
    if champion is None:
        return Assessment(**base, verdict=Trend.STABLE, test=None, note="no deployed model: not enough history")
    outcomes = champion_outcomes(settings, problem, champion, as_of, store)
    if outcomes.empty:
        return Assessment(**base, verdict=Trend.STABLE, test=None, note="not enough history: no scored predictions")
    period, recent, earlier = split_recent(outcomes, interval)
    if min(len(recent), len(earlier)) < MIN_EXAMPLES:
        return Assessment(**base, verdict=Trend.STABLE, test=None,
                          note=f"not enough history: {len(recent)} examples in the {interval} of {period}, "
                               f"{len(earlier)} before (at least {MIN_EXAMPLES} each)")
    gate = settings.update.gate
    test = trend_test(period, recent, earlier, base["higher_is_better"], gate.alpha, gate.min_gain.get(problem, 0.0))
    verdict = verdict_of(test)
    note = (f"{module.PRIMARY_METRIC} {test.recent_mean:.4g} in the {interval} of {period} vs {test.earlier_mean:.4g} "
            f"before ({test.test}, p={test.p_value:.3g}): {verdict.value}")
    return Assessment(**base, verdict=verdict, test=test, note=note)
