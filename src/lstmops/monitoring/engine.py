"""The one place that calls Evidently: drift tests, interval snapshots, the workspace and its dashboards.

Everything else in lstmops sees the project's own typed results (:class:`DriftResult`,
:class:`ColumnDrift`), with metrics looked up by their type and column name, never by
position in Evidently's output. Evidently 0.7's API (``Report``/``Dataset``/
``DataDefinition``, ``evidently.sdk.panels``) changed a lot from earlier versions; keeping
it behind this module means the next change touches one file.

One interval of one problem is one Evidently snapshot: the drift of each feature group
(inputs, predictions, observed outcomes) against its reference, plus the interval's
values as single-value metrics so dashboards can plot them over time: prediction volume
(``RowCount``), skill of the deployed and the previous model (``MeanValue`` of the
per-example values, NaN where not observed), and the verdict (``MaxValue`` of 0/1 flags).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

VALUE_DRIFT = "evidently:metric_v2:ValueDrift"

# Column-name prefixes of the feature groups inside one snapshot's table.
GROUP_PREFIX = {"inputs": "in.", "predictions": "pred.", "outcomes": "obs.", "world": "world."}
PRIMARY_GROUPS = ("inputs", "world")  # the group whose drift flags an interval
VALUE_COLUMNS = ("skill.served", "skill.shadow", "flag.drift", "flag.skill", "flag.any")


@dataclass(frozen=True)
class ColumnDrift:
    """One feature's drift test."""

    column: str
    method: str          # e.g. "K-S p_value"
    score: float         # the test's score (a p-value for K-S and chi-square)
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """One feature group's drift against its reference."""

    group: str           # inputs, predictions, outcomes or world
    n_current: int
    n_reference: int
    share: float         # share of drifted features
    drifted_count: int
    flagged: bool        # at least ``drift_share`` of the features drifted
    columns: tuple[ColumnDrift, ...] = field(default_factory=tuple)

    @property
    def drifted(self) -> list[str]:
        """Names of the drifted features, most significant first."""
        return [c.column for c in sorted(self.columns, key=lambda c: c.score) if c.drifted]


CATEGORICAL_TEST = "chi2_two_sample"  # registered below: Evidently's own chi-square treats reference shares as exact
NUMERICAL_TEST = "ks"


def _register_tests() -> None:
    """Register a two-sample chi-square test of homogeneity with Evidently's stat-test registry (once).

    Evidently's ``chisquare`` is a goodness-of-fit test that takes the reference's shares
    as the true ones; with a reference of 1,000 and 300 current rows it raised false
    alarms several times as often as its threshold. Both samples are samples, so the test
    here is the contingency-table one (``scipy.stats.chi2_contingency``).
    """
    from evidently.legacy.calculations.stattests.registry import (StatTest, _registered_stat_tests,
                                                                  register_stattest)
    from evidently.legacy.core import ColumnType

    if CATEGORICAL_TEST in _registered_stat_tests:
        return

    def two_sample(reference: pd.Series, current: pd.Series, feature_type: Any, threshold: float) -> tuple:
        import numpy as np
        from scipy.stats import chi2_contingency

        keys = sorted(set(reference.dropna().unique()) | set(current.dropna().unique()), key=str)
        table = np.array([[int((reference == k).sum()) for k in keys], [int((current == k).sum()) for k in keys]])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 1.0, False
        p_value = float(chi2_contingency(table)[1])
        return p_value, p_value < threshold

    register_stattest(StatTest(name=CATEGORICAL_TEST, display_name="chi-square two-sample p_value",
                               allowed_feature_types=[ColumnType.Categorical], default_threshold=0.05),
                      default_impl=two_sample)


def _definition(frame: pd.DataFrame) -> Any:
    from evidently import DataDefinition

    categorical = [c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)]
    numerical = [c for c in frame.columns if c not in categorical]
    return DataDefinition(numerical_columns=numerical, categorical_columns=categorical)


def _labels(column: pd.Series) -> pd.Series:
    """A categorical feature as string labels; whole numbers read back as numbers keep their label ("3")."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().all() and (numbers == numbers.round()).all():
        column = numbers.astype("int64")
    return column.astype(str).astype("category")


def _as_evidently_frame(frame: pd.DataFrame, categorical: set[str]) -> pd.DataFrame:
    """Categories as string labels (Evidently's chi-square compares labels), numbers as floats."""
    out = frame.copy()
    for column in out.columns:
        if column in categorical:
            out[column] = _labels(out[column])
        else:
            out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out


def categorical_columns(frame: pd.DataFrame) -> set[str]:
    """The columns a problem's summary marks as categorical (pandas ``category`` dtype)."""
    return {c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}


@dataclass
class IntervalReport:
    """The Evidently snapshot of one interval and the typed drift results read from it."""

    snapshot: Any
    drift: dict[str, DriftResult]

    def save_html(self, path: Path) -> Path:
        """Evidently's own self-contained HTML page of this snapshot."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))
        return path


def interval_report(current: Mapping[str, pd.DataFrame], reference: Mapping[str, pd.DataFrame],
                    values: pd.DataFrame | None, *, threshold: float, drift_share: float, timestamp: datetime,
                    tags: Sequence[str], metadata: Mapping[str, str]) -> IntervalReport:
    """Run one snapshot: each feature group's drift, current against reference, plus the interval's values.

    Args:
        current, reference: per group (``inputs``, ``predictions``, ``outcomes``, ``world``)
            the summary features, one row per sequence; a group missing from either side,
            or with fewer than two rows, is not tested.
        values: the interval's per-row values (columns of :data:`VALUE_COLUMNS`; NaN where
            none), summarised as single-value metrics for the dashboards. None: the drift
            tests only (a quick run whose verdicts decide the flags a second, kept run carries;
            the value metrics draw plots and cost most of a run).
        threshold: p-value below which a feature has drifted (K-S for numbers, chi-square
            for categories).
        drift_share: share of a group's features that must drift to flag the group.
    """
    from evidently import Dataset, Report
    from evidently.metrics import DriftedColumnsCount, MaxValue, MeanValue, RowCount, ValueDrift

    _register_tests()
    groups = [g for g in GROUP_PREFIX if g in current and g in reference
              and len(current[g]) > 1 and len(reference[g]) > 1 and current[g].shape[1] > 0]
    cur_parts, ref_parts, metrics, tested = [], [], [], []
    primary = next((g for g in PRIMARY_GROUPS if g in groups), None)
    for group in groups:
        prefix = GROUP_PREFIX[group]
        categorical = categorical_columns(current[group]) | categorical_columns(reference[group])
        cur = _as_evidently_frame(current[group], categorical).add_prefix(prefix).reset_index(drop=True)
        ref = _as_evidently_frame(reference[group], categorical).add_prefix(prefix).reset_index(drop=True)
        testable = [c for c in cur.columns if cur[c].notna().sum() > 1 and ref[c].notna().sum() > 1]
        if not testable:  # e.g. an untrained model's answers that are no numbers at all
            continue
        cur, ref = cur[testable], ref[testable]
        tested.append(group)
        cur_parts.append(cur)
        ref_parts.append(ref)
        columns = list(cur.columns)
        if group == primary:  # one count per snapshot, so the dashboards can plot its share
            metrics.append(DriftedColumnsCount(columns=columns, num_method=NUMERICAL_TEST, cat_method=CATEGORICAL_TEST,
                                               threshold=threshold, drift_share=drift_share))
        metrics += [ValueDrift(column=c, method=CATEGORICAL_TEST if c in categorical_columns(cur)
                               else NUMERICAL_TEST, threshold=threshold) for c in columns]
    vals = None
    if values is not None:
        vals = values.reindex(columns=list(VALUE_COLUMNS)).astype(float).reset_index(drop=True)
        metrics += [RowCount()] + [MeanValue(column=c) for c in VALUE_COLUMNS if c.startswith("skill.")
                                   and vals[c].notna().any()]
        metrics += [MaxValue(column=c) for c in VALUE_COLUMNS if c.startswith("flag.")]
    if not metrics:  # nothing testable and no values asked for
        return IntervalReport(None, {})
    current_frame = _side_by_side([*cur_parts], vals)
    reference_frame = _side_by_side([*ref_parts], None, like=current_frame)
    definition = _definition(current_frame)
    report = Report(metrics, include_tests=True)
    snapshot = report.run(Dataset.from_pandas(current_frame, data_definition=definition),
                          Dataset.from_pandas(reference_frame, data_definition=definition),
                          timestamp=timestamp, tags=list(tags), metadata=dict(metadata))
    drift = read_results(snapshot.dict(), tested, {g: len(current[g]) for g in tested},
                         {g: len(reference[g]) for g in tested}, drift_share)
    return IntervalReport(snapshot, drift)


def _side_by_side(parts: list[pd.DataFrame], values: pd.DataFrame | None, like: pd.DataFrame | None = None
                  ) -> pd.DataFrame:
    """Groups of different lengths in one table (shorter ones padded with NaN), with the value columns."""
    frames = [*parts, *([values] if values is not None else [])]
    frame = pd.concat(frames, axis=1) if frames else pd.DataFrame()
    if like is not None:  # the reference must have the current table's columns (values: all NaN but one row)
        for column in like.columns:
            if column not in frame.columns:
                frame[column] = pd.Series([0.0] * max(len(frame), 2), dtype=float) if column.startswith(
                    ("skill.", "flag.")) else pd.Series(dtype=float)
        frame = frame[list(like.columns)]
        for column in like.columns:
            if isinstance(like[column].dtype, pd.CategoricalDtype):
                frame[column] = frame[column].astype("category")
    return frame


def read_results(summary: dict, groups: Sequence[str], n_current: Mapping[str, int],
                 n_reference: Mapping[str, int], drift_share: float) -> dict[str, DriftResult]:
    """The typed drift results of a snapshot's ``dict()``, found by metric type and column."""
    by_column: dict[str, ColumnDrift] = {}
    tests = {t["metric_config"]["metric_id"]: t for t in summary.get("tests", [])}
    for metric in summary["metrics"]:
        config, value = metric["config"], metric["value"]
        if config.get("type") != VALUE_DRIFT:
            continue
        test = tests.get(metric["id"], {})
        method = "chi-square two-sample p_value" if config.get("method") == CATEGORICAL_TEST else "K-S p_value"
        score = float(value) if value is not None else math.nan
        threshold = float(config.get("threshold"))
        drifted = str(test.get("status", "")).endswith("FAIL") if test else bool(score < threshold)
        by_column[config["column"]] = ColumnDrift(config["column"], method, score, threshold, drifted)
    out: dict[str, DriftResult] = {}
    for group in groups:
        prefix = GROUP_PREFIX[group]
        columns = tuple(ColumnDrift(c.column[len(prefix):], c.method, c.score, c.threshold, c.drifted)
                        for name, c in by_column.items() if name.startswith(prefix))
        drifted = sum(c.drifted for c in columns)
        share = drifted / len(columns) if columns else 0.0
        out[group] = DriftResult(group, int(n_current[group]), int(n_reference[group]), share, drifted,
                                 drifted > 0 and share >= drift_share, columns)
    return out


# --- workspace and dashboards -------------------------------------------------------------

_WORKSPACES: dict[tuple, Any] = {}


def open_workspace(path: Path) -> Any:
    """The local Evidently workspace at ``path`` (created if missing), opened once per process.

    Opening reads every stored snapshot (a third of a second for a few, growing by the
    week), so a long-lived process (the monitoring flow's server, a rehearsal worker)
    keeps it open. The key holds the folder's inode and change time: a folder that was
    removed and made again, or that another process added a project to, is opened anew.
    """
    from evidently.ui.workspace import Workspace

    path.mkdir(parents=True, exist_ok=True)
    st = path.stat()
    key = (str(path.resolve()), st.st_dev, st.st_ino, st.st_ctime_ns)
    if key not in _WORKSPACES:
        for stale in [k for k in _WORKSPACES if k[0] == key[0]]:
            del _WORKSPACES[stale]
        _WORKSPACES[key] = Workspace(str(path))
    return _WORKSPACES[key]


def project_for(workspace: Any, problem: str, description: str) -> Any:
    """The workspace's project named ``lstmops/<problem>``, created with its dashboard if missing."""
    name = f"lstmops/{problem}"
    for project in workspace.search_project(name):
        if project.name == name:
            return project
    project = workspace.create_project(name)
    project.description = description
    _add_panels(project)
    project.save()
    return project


def _add_panels(project: Any) -> None:
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel, text_panel

    def metric(kind: str, legend: str, tag: str, **labels: str) -> PanelMetric:
        return PanelMetric(legend=legend, tags=[tag], metric=f"evidently:metric_v2:{kind}", metric_labels=labels)

    dash = project.dashboard
    dash.add_panel(text_panel(title=f"{project.name}: drift and skill per day and week",
                              description="One snapshot per interval (tag day or week), written by the lstmops "
                                          "monitoring flow. A flag is 1 when that interval raised an alarm."),
                   tab="Overview")
    for tag in ("day", "week"):
        dash.add_panel(counter_panel(title=f"Alarm in the latest {tag} (1 = yes)", size="half", aggregation="last",
                                     values=[metric("MaxValue", "alarm", tag, column="flag.any")]), tab="Overview")
        dash.add_panel(line_plot_panel(title=f"Verdict per {tag} (1 = alarm)", size="half",
                                       values=[metric("MaxValue", "drift", tag, column="flag.drift"),
                                               metric("MaxValue", "skill loss", tag, column="flag.skill")]),
                       tab="Overview")
        dash.add_panel(line_plot_panel(title=f"Skill per {tag}: deployed (served) and previous (shadow)",
                                       size="full",
                                       values=[metric("MeanValue", "deployed", tag, column="skill.served"),
                                               metric("MeanValue", "previous", tag, column="skill.shadow")]),
                       tab="Skill")
        dash.add_panel(line_plot_panel(title=f"Share of drifted input features per {tag} (world shapes for "
                                             "a generative problem)", size="full",
                                       values=[metric("DriftedColumnsCount", "share", tag, value_type="share")]),
                       tab="Drift")
        dash.add_panel(line_plot_panel(title=f"Predictions per {tag}", size="half",
                                       values=[metric("RowCount", "predictions", tag)]), tab="Volume")


def add_snapshot(workspace: Any, project: Any, report: IntervalReport, replaces: str | None = None) -> str:
    """Store the snapshot in the project (without its data rows); returns the snapshot's id.

    ``replaces``: the id of an earlier snapshot of the same interval (a re-check once its
    outcomes arrived), removed first so the dashboards keep one point per interval.
    """
    if replaces:
        try:
            workspace.delete_run(project.id, replaces)
        except (OSError, ValueError, KeyError):
            pass  # already gone: nothing to replace
    ref = workspace.add_run(project.id, report.snapshot, include_data=False)
    return str(ref.id)
