"""A small but real world for the stakeholder report: registry, store, an update run, monitoring records.

Built with the project's own objects: tiny registered echo versions, predictions and
observations logged on six past days (the previous model in shadow after a promotion),
a real ledger, a pending proposal, the update run's arm results and gate evidence saved
by the update code's own functions from a real gate decision, the assess step run on the
store, and monitoring interval records (one flagged) with an Evidently page beside them.
Shared by the report tests and ``benchmarks/bench_report.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from tiny_bundles import distinct_bundles, repo_root_with_params

PER_DAY = 30
DAYS = 6
REASON = "clearly better after the drift <b>&</b> checked by hand"


@dataclass
class World:
    """Everything a report test needs."""

    root: Path
    settings: Any
    registry: Any
    store: Any
    run_id: str
    proposal_id: int
    days: list[date]


def _log_day(store: Any, day: date, served: int, shadow: int | None, accuracy: float, shadow_accuracy: float,
             rng: np.random.Generator) -> None:
    """One day's echo predictions (with observed outcomes), and the shadow model's outputs on the same requests."""
    at = datetime.combine(day, datetime.min.time()) + timedelta(hours=9)
    ids = [f"{day}-{i}" for i in range(PER_DAY)]
    targets = rng.integers(0, 10, PER_DAY)
    right = rng.random(PER_DAY) < accuracy
    outputs = [int(t) if ok else int((t + 1) % 10) for t, ok in zip(targets, right)]
    store.log_predictions("echo", served, ids, [{"x_0": int(t)} for t in targets], outputs, at=at)
    if shadow is not None:
        shadow_right = rng.random(PER_DAY) < shadow_accuracy
        store.log_shadow("echo", shadow, ids, [int(t) if ok else int((t + 2) % 10)
                                               for t, ok in zip(targets, shadow_right)], at=at)
    store.record_observations("echo", ids, [{"target": int(t)} for t in targets], [at + timedelta(hours=1)] * PER_DAY)


def _monitoring(root: Path, days: list[date]) -> None:
    """Day records of echo as the monitoring check writes them; the fourth day flagged for input drift."""
    from lstmops import paths
    from lstmops.monitoring.checks import IntervalCheck

    for i, day in enumerate(days):
        flagged = i == 3
        page = paths.snapshot_page("echo", "day", day.isoformat(), root)
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("<html><body>Evidently snapshot</body></html>", encoding="utf-8")
        words = ("What the model is asked changed on {d}: x_3 drifted (p < 0.05). Skill holds: its accuracy rose "
                 "from 0.9 to 0.93." if flagged else "Skill holds: its accuracy stayed at 0.9 on {d}.").format(d=day)
        check = IntervalCheck(
            problem="echo", interval="day", period=day.isoformat(), end=(day + timedelta(days=1)).isoformat(),
            champion_version=1 if i < 3 else 2, previous_version=None if i < 3 else 1,
            reference_date=days[0].isoformat(), predictions=PER_DAY, observed=PER_DAY,
            drift={"inputs": {"share": 0.5 if flagged else 0.0, "drifted_count": 1 if flagged else 0,
                              "flagged": flagged, "drifted": ["x_3"] if flagged else [], "columns": []}},
            skill={"metric": "accuracy", "served": 0.93, "shadow": None, "reference": 0.9, "n": PER_DAY,
                   "test": "two-proportion z-test", "p_value": 0.5, "gain": 0.03, "degrading": False},
            flags={"drift": flagged, "skill": False}, flagged=flagged, kind="input drift" if flagged else "none",
            words=words, page=page.relative_to(root).as_posix(), computed_at=f"{day}T23:00:00")
        path = paths.interval_record("echo", "day", day.isoformat(), root)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(check.to_dict(), indent=1), encoding="utf-8")


def _update_run(world_root: Path, settings: Any, registry: Any, store: Any, as_of: date) -> tuple[str, Any]:
    """An update run's records: the assess step for real, each arm-repeat's result and the gate's evidence."""
    from lstmops.update.candidates import ArmResult, arm_matrices, diverged_counts
    from lstmops.update.compare import compare
    from lstmops.update.cycle import UpdateRun, keep_result

    run = UpdateRun(settings, "echo", as_of, world_root, registry, store)
    run.assess()
    rng = np.random.default_rng(3)
    accuracy = {"baseline": 0.3, "a": 0.97, "b": 0.9, "c": 0.6, "d": 0.7}
    repeats, examples = 6, 80
    for arm, p in accuracy.items():
        for r in range(repeats):
            diverged = arm == "c" and r == repeats - 1  # one training of arm c blew up (NaN loss)
            values = [float("nan")] * examples if diverged else (rng.random(examples) < p).astype(float).tolist()
            keep_result(run.folder, ArmResult(arm, r, 100 + r, values, float("nan") if diverged else 0.1 + r / 100,
                                              3, 0.5, diverged))
    results = [r for r in run.results() if r.repeat < repeats]
    deployed = (rng.random(examples) < 0.3).astype(float)
    decision = compare(settings, "echo", deployed, arm_matrices(results), seed=len(results))
    run.save("gate", decision.to_dict() | {"repeats": repeats, "diverged": diverged_counts(results),
                                           "run_id": run.run_id, "problem": "echo"})
    return run.run_id, decision


def build_world(tmp: Path) -> World:
    """The world under ``tmp``: echo with history, a run and a pending proposal; the other problems empty."""
    from lstmops import paths
    from lstmops.config import load_settings
    from lstmops.registry.versions import Registry
    from lstmops.store.records import Store
    from lstmops.update.compare import headline

    root = repo_root_with_params(tmp / "repo")
    settings = load_settings(paths.params_file(root))
    url = f"sqlite:///{tmp / 'lstmops.db'}"
    registry, store = Registry(url, paths.registry_dir(root)), Store(url)
    for folder in distinct_bundles(tmp / "bundles"):
        registry.register("echo", folder)
    registry.promote("echo", 1, reason="first build", actor="build")
    registry.promote("echo", 2, reason=REASON, actor="ann")
    today = date.today()
    days = [today - timedelta(days=DAYS - i) for i in range(DAYS)]
    rng = np.random.default_rng(0)
    for i, day in enumerate(days):
        if i < 3:
            _log_day(store, day, 1, None, 0.9, 0.0, rng)
        else:
            _log_day(store, day, 2, 1, 0.95, 0.5, rng)
    _monitoring(root, days)
    run_id, decision = _update_run(root, settings, registry, store, days[-1])
    folder = paths.update_run_dir("echo", run_id, root)
    proposal = registry.propose(
        "echo", 3, evidence=decision.to_dict() | {"headline": headline("echo", decision), "metric": "accuracy"},
        report_path=str(folder / "gate.json"), weights_only=True, arm=decision.winner,
        expires_at=datetime.combine(today + timedelta(days=30), datetime.min.time()), actor=f"update run {run_id}")
    from lstmops.update.records import save_record

    save_record(proposal.to_dict(), folder / "proposal.json")
    return World(root, settings, registry, store, run_id, proposal.id, days)
