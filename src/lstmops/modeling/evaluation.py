"""Scoring fitted models and summarising repeated runs as distributions.

One stochastic fit proves nothing: skill is reported as the mean, spread and
confidence interval of several independent runs, and configurations are compared by
their distributions with statistical tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from lstmops.problems import get_problem
from lstmops.modeling.training import predict


@dataclass(frozen=True)
class Summary:
    """The distribution of one metric over repeated runs."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    min: float
    max: float
    median: float

    def as_dict(self) -> dict[str, float]:
        """Plain numbers, for metrics files."""
        return asdict(self)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Mean, sample standard deviation, Student-t confidence interval, range and median."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to summarise")
    mean, std = float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0
    half = float(stats.t.ppf((1 + confidence) / 2, v.size - 1) * std / np.sqrt(v.size)) if v.size > 1 else 0.0
    return Summary(
        n=int(v.size), mean=mean, std=std, ci_low=mean - half, ci_high=mean + half,
        min=float(v.min()), max=float(v.max()), median=float(np.median(v)),
    )


@dataclass(frozen=True)
class Comparison:
    """Whether two score distributions differ, and by how much."""

    mean_difference: float
    effect_size: float          # Cohen's d (pooled standard deviation)
    welch_p: float              # Welch's t-test (unequal variances)
    mann_whitney_p: float       # rank test: no normality assumption
    significant: bool           # both tests below alpha


def compare(a: Sequence[float], b: Sequence[float], alpha: float = 0.05) -> Comparison:
    """Compare scores ``a`` against ``b`` (difference is a - b)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pooled = np.sqrt(((x.size - 1) * x.var(ddof=1) + (y.size - 1) * y.var(ddof=1)) / (x.size + y.size - 2))
    diff = float(x.mean() - y.mean())
    if pooled == 0:
        same = diff == 0
        return Comparison(diff, 0.0 if same else float("inf") * np.sign(diff), float(same), float(same), not same)
    welch = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    mwu = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return Comparison(diff, diff / float(pooled), welch, mwu, welch < alpha and mwu < alpha)


def _point_predictions(problem_name: str, model: Any, x: np.ndarray) -> np.ndarray:
    """Model outputs as point predictions (a mixture's most likely component mean)."""
    out = predict(model, x)
    if get_problem(problem_name).HEAD == "mixture":
        from lstmops.modeling.architectures import generative

        return generative.mean_prediction(out)
    return out


def score_model(
    problem_name: str, model: Any, preparer: Any, table: pd.DataFrame,
    train_table: pd.DataFrame | None = None, rng: np.random.Generator | None = None, n_shapes: int = 1000,
    temperature: float = 1.0,
) -> dict[str, float]:
    """A problem's skill metrics for ``model`` on a raw ``table`` (fresh test data).

    For a generative problem, ``train_table`` and ``rng`` add the metrics of
    ``n_shapes`` drawn outputs (the module's ``draw_metrics``; for rectangles geometric
    error and coverage of the training widths and heights).
    """
    problem = get_problem(problem_name)
    decoded = preparer.decode(_point_predictions(problem_name, model, preparer.inputs(table)))
    metrics = problem.score(table, decoded)
    if getattr(problem, "GENERATIVE", False) and train_table is not None and rng is not None:
        drawn = problem.draw(model, preparer, n_shapes, rng, temperature)
        metrics |= problem.draw_metrics(drawn, train_table)
    return metrics
