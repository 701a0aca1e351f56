"""Check one interval (a day or a week) of one problem: drift of inputs, predictions and outcomes, and skill.

Each deployed model version has a *reference profile* (:func:`reference_profile`): a
sample of ``monitoring.reference_size`` sequences from the process as it stood on the
date the version's data was drawn (``as_of`` of a ``dvc repro`` build, the run date of an
update), the version's predictions on them, and its per-example skill. Sequences are
described by the problem module's summary features (``input_summary``,
``outcome_summary``), since Evidently has no sequence methods.

An interval's check compares, with Evidently (:mod:`lstmops.monitoring.engine`):

- ``inputs``: the interval's requests against the reference inputs. Drift here is a
  change in what the model is asked; it flags the interval.
- ``predictions``: what the model answered against what it answered on the reference.
- ``outcomes``: the observed outcomes (once they arrive) against the reference outcomes.
- ``world`` (generative problems, which have no inputs): the shapes the process makes in
  the interval against those of the reference date; it flags, and the *gap* (Wasserstein
  distance of the drawings to the process now, against the same at the reference) says
  how far the drawings are from what the world now makes.

Skill: the deployed model's per-example values on the interval's observed rows against
its reference values (two-proportion z-test or Fisher's exact test for 0/1 values,
Welch's t-test otherwise, as the update flow's assess step), at ``monitoring.alpha`` and
at least the problem's ``update.gate.min_gain``. Skill loss with undrifted inputs is
*concept drift*: the relation between inputs and outcomes changed, and the record says so.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmops import paths
from lstmops.config import Settings, problem_settings
from lstmops.errors import StoreError
from lstmops.seeding import int_seed_for, rng_for
from lstmops.update.records import load_record, save_record

INTERVALS = ("day", "week")
SHADOW_COLUMN = "skill.shadow"


@dataclass(frozen=True)
class SkillCheck:
    """The interval's skill against the model's reference skill."""

    metric: str
    higher_is_better: bool
    served: float            # the deployed model's skill in the interval (mean of per-example values)
    shadow: float | None     # the previous model's, on the same requests, while it runs in shadow
    reference: float         # the deployed model's skill on its reference profile
    n: int                   # observed examples in the interval
    test: str
    p_value: float
    gain: float              # served - reference, oriented so that positive is better
    min_gain: float
    alpha: float
    degrading: bool
    # The deployed model against the previous one running in shadow on the same requests
    # (same test, alpha and minimum gain): significantly worse means "roll back".
    shadow_p_value: float | None = None
    worse_than_previous: bool = False


@dataclass
class IntervalCheck:
    """What monitoring found in one interval of one problem."""

    problem: str
    interval: str            # day or week
    period: str              # first day of the interval (YYYY-MM-DD)
    end: str                 # first day after it
    champion_version: int | None
    previous_version: int | None
    reference_date: str | None
    predictions: int
    observed: int
    drift: dict[str, dict] = field(default_factory=dict)   # group -> engine.DriftResult as a dict
    gap: dict | None = None  # generative problems: distance of the drawings to the world, now and at reference
    skill: dict | None = None
    flags: dict[str, bool] = field(default_factory=dict)   # drift, skill
    flagged: bool = False
    kind: str = "none"       # input drift, world drift, concept drift, skill loss, drift and skill loss, none, ...
    words: str = ""
    snapshot_id: str | None = None
    page: str | None = None  # Evidently's own HTML page of the snapshot, relative to the root
    computed_at: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def interval_bounds(interval: str, period: date) -> tuple[date, date]:
    """The first day of the interval holding ``period`` and the first day after it (weeks start on Monday)."""
    if interval not in INTERVALS:
        raise StoreError(f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
    if interval == "day":
        return period, period + timedelta(days=1)
    start = period - timedelta(days=period.weekday())
    return start, start + timedelta(days=7)


def data_date(settings: Settings, meta: dict) -> date:
    """The date the version's training data was drawn at: a build's ``as_of``, or its update run's date."""
    for value in ((meta.get("update") or {}).get("run_id"), meta.get("as_of")):
        try:
            return date.fromisoformat(str(value)[:10])
        except ValueError:
            continue
    return settings.as_of


def _targets_frame(module: Any, outputs: list) -> pd.DataFrame:
    return pd.DataFrame([module.as_targets(o) for o in outputs])


def reference_profile(settings: Settings, problem: str, version: int, registry, root: Path | None = None
                      ) -> pd.DataFrame:
    """The version's reference profile (cached per version under ``monitoring/reference``).

    Columns ``in.*`` (input features), ``pred.*`` (features of its predictions), ``obs.*``
    (features of the true outcomes; for a generative problem the process's shapes, the
    world), ``value`` (per-example skill) and the ``reference_date`` in the frame's attrs.
    """
    from lstmops.data.drift import generate_at
    from lstmops.problems import get_problem, is_generative
    from lstmops.serving.predict import predict

    path = paths.reference_profile(problem, version, root)
    mv = registry.resolve(problem, version)
    when = data_date(settings, mv.metadata)
    if path.is_file():
        frame = pd.read_parquet(path)
        frame.attrs["reference_date"] = when.isoformat()
        return frame
    module = get_problem(problem)
    cfg = problem_settings(settings, problem)
    from lstmops.serving.inputs import version_params

    params = version_params(mv)
    n = settings.monitoring.reference_size
    table = generate_at(module, cfg.process, cfg.drift, n, rng_for(settings.seed, problem, "monitoring-reference",
                                                                    version), when)
    if is_generative(problem):
        outputs = predict(problem, None, registry, None, ref=version, n=n,
                          seed=int_seed_for(settings.seed, problem, "monitoring-reference-draw", version)).outputs
    else:
        columns = module.input_columns(params)
        outputs = predict(problem, table[columns], registry, None, ref=version).outputs
    parts = [module.input_summary(table, params).add_prefix("in."),
             module.outcome_summary(_targets_frame(module, outputs), params).add_prefix("pred."),
             module.outcome_summary(table, params).add_prefix("obs.")]
    frame = pd.concat([p.reset_index(drop=True) for p in parts], axis=1)
    frame["value"] = np.asarray(module.per_example(table, list(outputs)), dtype=float)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame.to_parquet(partial, index=False)
    partial.replace(path)
    frame.attrs["reference_date"] = when.isoformat()
    return frame


def _group(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    return frame[[c for c in frame.columns if c.startswith(prefix)]].rename(columns=lambda c: c[len(prefix):])


def _wasserstein(a: pd.DataFrame, b: pd.DataFrame) -> float:
    from scipy.stats import wasserstein_distance

    return float(np.mean([wasserstein_distance(a[c].to_numpy(float), b[c].to_numpy(float)) for c in a.columns]))


def check_interval(settings: Settings, problem: str, interval: str, period: date, *, store, registry,
                   root: Path | None = None, workspace: Any = None, html: bool = True,
                   save: bool = True) -> IntervalCheck:
    """Check the interval of ``problem`` holding ``period`` (see the module docstring); saves its record.

    Args:
        workspace: an open Evidently workspace to add the snapshot to (None: not added).
        html: also write Evidently's own HTML page of the snapshot.
    """
    from lstmops.monitoring import engine
    from lstmops.monitoring.traffic import world_sample
    from lstmops.problems import get_problem, is_generative
    from lstmops.serving.inputs import version_params
    from lstmops.update.assess import Trend, trend_test, verdict_of

    module = get_problem(problem)
    start, end = interval_bounds(interval, period)
    aliases = registry.aliases(problem)
    champion, previous = aliases.get("champion"), aliases.get("previous")
    check = IntervalCheck(problem, interval, start.isoformat(), end.isoformat(), champion, previous, None, 0, 0,
                          computed_at=datetime.now().replace(microsecond=0).isoformat())
    if champion is None:
        check.kind, check.words = "no model", f"{problem} has no deployed model to monitor."
        return _finish(check, save, root)
    rows = store.joined(problem, since=datetime.combine(start, time(0)), until=datetime.combine(end, time(0)),
                        observed_only=False, shadow=True)
    # Only what the deployed model served counts as its traffic (an interval that spans a promotion or a
    # rollback also holds the other model's), and only the previous model's outputs as the shadow.
    served = [r for r in rows if r["role"] == "served" and r["model_version"] == champion]
    shadow = [r for r in rows if r["role"] == "shadow" and r["model_version"] == previous]
    check.predictions = len(served)
    check.observed = sum(r["target"] is not None for r in served)
    cfg = settings.monitoring
    if len(served) < cfg.min_rows:
        check.kind = "no traffic"
        check.words = (f"Only {len(served)} predictions between {start} and {end - timedelta(days=1)}: too few to "
                       f"test (at least {cfg.min_rows}).")
        return _finish(check, save, root)
    profile = reference_profile(settings, problem, champion, registry, root)
    check.reference_date = profile.attrs.get("reference_date")
    params = version_params(registry.resolve(problem, champion))
    generative = is_generative(problem)
    current: dict[str, pd.DataFrame] = {}
    reference: dict[str, pd.DataFrame] = {}
    inputs = pd.DataFrame([r["input"] for r in served])
    if not generative:
        current["inputs"] = module.input_summary(inputs, params)
        reference["inputs"] = _group(profile, "in.")
    current["predictions"] = module.outcome_summary(_targets_frame(module, [r["output"] for r in served]), params)
    reference["predictions"] = _group(profile, "pred.")
    observed = [r for r in served if r["target"] is not None]
    values = pd.DataFrame({"skill.served": np.full(len(served), np.nan)})
    if generative:
        days = sorted({r["predicted_at"].date() for r in served})
        per_day = max(1, math.ceil(len(served) / len(days)))
        world = pd.concat([world_sample(settings, problem, d, per_day) for d in days], ignore_index=True)
        world = world.head(len(served))
        current["world"] = module.outcome_summary(world, params)
        reference["world"] = _group(profile, "obs.")
        drawn = current["predictions"]
        now, then = _wasserstein(drawn, current["world"]), _wasserstein(_group(profile, "pred."), reference["world"])
        check.gap = {"now": now, "at_reference": then, "features": list(drawn.columns)}
        skill_values = np.asarray(module.per_example(world, [r["output"] for r in served]), dtype=float)
        values["skill.served"] = skill_values
    elif observed:
        current["outcomes"] = module.outcome_summary(pd.DataFrame([r["target"] for r in observed]), params)
        reference["outcomes"] = _group(profile, "obs.")
        skill_values = np.asarray(module.per_example(pd.DataFrame([r["target"] for r in observed]),
                                                     [r["output"] for r in observed]), dtype=float)
        values.loc[: len(skill_values) - 1, "skill.served"] = skill_values
    else:
        skill_values = np.array([])
    shadow_values = _shadow_values(module, shadow)
    values[SHADOW_COLUMN] = np.nan
    if len(shadow_values):
        values.loc[: min(len(shadow_values), len(values)) - 1, SHADOW_COLUMN] = shadow_values[: len(values)]
    # Skill test against the reference (reference per-example values of the same version).
    skill = None
    if len(skill_values) >= cfg.min_rows:
        test = trend_test(start.isoformat(), skill_values, profile["value"].to_numpy(float),
                          bool(module.HIGHER_IS_BETTER), cfg.alpha, settings.update.gate.min_gain.get(problem, 0.0))
        versus = None
        if len(shadow_values) >= cfg.min_rows:
            versus = trend_test(start.isoformat(), skill_values, shadow_values, bool(module.HIGHER_IS_BETTER),
                                cfg.alpha, settings.update.gate.min_gain.get(problem, 0.0))
        skill = SkillCheck(module.PRIMARY_METRIC, bool(module.HIGHER_IS_BETTER),
                           test.recent_mean, float(shadow_values.mean()) if versus is not None else None,
                           test.earlier_mean, test.recent_n, test.test, test.p_value, test.gain, test.min_gain,
                           test.alpha, verdict_of(test) is Trend.DEGRADING,
                           versus.p_value if versus is not None else None,
                           versus is not None and verdict_of(versus) is Trend.DEGRADING)
        check.skill = asdict(skill)
    flags = {"drift": False, "skill": bool(skill and skill.degrading),
             "rollback": bool(skill and skill.worse_than_previous)}

    def snapshot(values: pd.DataFrame | None) -> Any:
        return engine.interval_report(current, reference, values, threshold=cfg.threshold,
                                      drift_share=cfg.drift_share, timestamp=datetime.combine(start, time(0)),
                                      tags=[interval], metadata={"problem": problem, "interval": interval,
                                                                 "period": start.isoformat(), "champion": f"v{champion}"})

    report = snapshot(None)  # the drift tests alone decide the drift flag; the kept snapshot also carries the flags
    check.drift = {group: {**asdict(result), "drifted": result.drifted} for group, result in report.drift.items()}
    primary = "world" if generative else "inputs"
    flags["drift"] = bool(primary in report.drift and report.drift[primary].flagged)
    check.flags = flags
    check.flagged = any(flags.values())
    check.kind, check.words = _in_words(problem, module, check, report.drift, skill, start, end)
    if workspace is not None or html:
        report = snapshot(values.assign(**{"flag.drift": float(flags["drift"]), "flag.skill": float(flags["skill"]),
                                           "flag.any": float(check.flagged)}))
    if workspace is not None:
        project = engine.project_for(workspace, problem, f"{problem}: {module.TASK}")
        check.snapshot_id = engine.add_snapshot(workspace, project, report, replaces=_saved_snapshot(check, root))
    if html:
        page = paths.snapshot_page(problem, interval, start.isoformat(), root)
        report.save_html(page)
        check.page = str(page.relative_to(paths.monitoring_dir(root).parent))
    return _finish(check, save, root)


def _saved_snapshot(check: IntervalCheck, root: Path | None) -> str | None:
    """The snapshot id of the interval's earlier check, if one was saved."""
    saved = load_record(paths.interval_record(check.problem, check.interval, check.period, root))
    return (saved or {}).get("snapshot_id")


def _shadow_values(module: Any, shadow: list[dict]) -> np.ndarray:
    observed = [r for r in shadow if r["target"] is not None]
    if not observed or getattr(module, "GENERATIVE", False):
        return np.array([])
    return np.asarray(module.per_example(pd.DataFrame([r["target"] for r in observed]),
                                         [r["output"] for r in observed]), dtype=float)


def _in_words(problem: str, module: Any, check: IntervalCheck, drift: dict, skill: SkillCheck | None, start: date,
              end: date) -> tuple[str, str]:
    """The kind of finding and a plain sentence for it."""
    span = f"on {start}" if check.interval == "day" else f"in the week of {start}"
    primary = drift.get("world") or drift.get("inputs")
    drifted = primary is not None and primary.flagged
    loss = skill is not None and skill.degrading
    parts = []
    if drifted and primary.group == "world":
        gap = check.gap or {}
        parts.append(f"The shapes the process makes changed ({', '.join(primary.drifted)}): the drawings are now "
                     f"{gap.get('now', float('nan')):.3f} from them on average, against "
                     f"{gap.get('at_reference', float('nan')):.3f} when the model was trained.")
    elif drifted:
        parts.append(f"What the model is asked changed {span}: {', '.join(primary.drifted)} drifted "
                     f"(p < {primary.columns[0].threshold:g}).")
    if skill is not None:
        direction = "fell" if skill.gain < 0 else "rose"
        change = (f"its {skill.metric} {direction} from {skill.reference:.4g} to {skill.served:.4g} "
                  f"({skill.test}, p = {skill.p_value:.2g}, {skill.n} observed)")
        parts.append(("Skill loss: " if loss else "Skill holds: ") + change + ".")
        if skill.worse_than_previous:
            parts.append(f"The previous model v{check.previous_version}, in shadow on the same requests, does "
                         f"better ({skill.metric} {skill.shadow:.4g}, p = {skill.shadow_p_value:.2g}): roll back "
                         f"with `{rollback_command(problem)}`.")
    elif not module.__dict__.get("GENERATIVE", False):
        parts.append("No outcomes observed yet: skill not tested.")
    hints = _weak_signs(primary)
    if skill is not None and skill.worse_than_previous:
        kind = "worse than previous"
    elif loss and not drifted and not hints:
        kind = "concept drift"
        parts.append("The inputs look as they did in training, so the relation between inputs and outcomes "
                     "changed (concept drift), unless the inputs changed too little to show yet: the week's "
                     "check has seven times the rows.")
    elif loss and not drifted:
        kind = "skill loss"
        parts.append(f"The inputs show early signs of change below the alarm threshold ({hints}): the loss may "
                     "come from inputs the model was not trained on rather than from concept drift.")
    elif loss and drifted:
        kind = "drift and skill loss"
    elif drifted:
        kind = "world drift" if primary.group == "world" else "input drift"
    else:
        kind = "none"
    outcomes = drift.get("outcomes")
    if outcomes is not None and outcomes.flagged:
        parts.append(f"The observed outcomes drifted too ({', '.join(outcomes.drifted)}).")
    if not parts:
        parts.append("Nothing changed.")
    return kind, " ".join(parts)


def rollback_command(problem: str) -> str:
    """The command that restores the previous model."""
    return f'lstmops models rollback {problem} --reason "worse than the previous model in shadow"'


def recommends_rollback(check: dict) -> bool:
    """Whether a saved check found the deployed model worse than the previous one in shadow."""
    return bool((check.get("flags") or {}).get("rollback"))


UNCHANGED_P = 0.05  # family-wise: inputs count as unchanged when no feature's p-value times their number is below


def _weak_signs(result: Any) -> str:
    """Features whose drift is not flagged but not negligible either (Bonferroni p < 0.05), in words."""
    if result is None or not result.columns:
        return ""
    k = len(result.columns)
    weak = [c for c in result.columns if not c.drifted and c.score * k < UNCHANGED_P]
    return ", ".join(f"{c.column} p = {c.score:.2g}" for c in sorted(weak, key=lambda c: c.score))


def _finish(check: IntervalCheck, save: bool, root: Path | None) -> IntervalCheck:
    if save:
        save_record(check, paths.interval_record(check.problem, check.interval, check.period, root))
    return check


def load_checks(problem: str, interval: str, root: Path | None = None) -> list[dict]:
    """Every saved check of ``problem`` per ``interval``, oldest first."""
    folder = paths.interval_record(problem, interval, "x", root).parent
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        out.append(load_record(path))
    return out
