"""The daily monitoring run: check each problem's intervals and decide whether to trigger its update.

For the day ``D`` being monitored (the Prefect flow's default: yesterday, UTC):

- optionally play ``D``'s simulated traffic first (:mod:`lstmops.monitoring.traffic`);
- check day ``D`` (drift of that day's requests), and day ``D - observation_lag_days``
  again, now that its outcomes have arrived (skill);
- on a Sunday, check the whole week (Monday to ``D``): a week has seven times the
  rows, so slower or smaller changes show there first.

A flagged check *triggers* the problem's update, unless an update was triggered within
``monitoring.cooldown_days`` before (its candidates are still being judged), a proposal
of the problem is already waiting for a person, or the alarm is drift alone (the inputs
or the world changed, skill holds) and an update run has already judged this drift: it
collected data on or after the first day of the unbroken run of alarms, the deployed
model it judged is still deployed, and it found nothing better (NO-CHANGE). Skill loss,
concept drift and a worse-than-previous model always trigger; the weekly scheduled
update keeps judging a drift that goes on. Every decision, triggered or declined, is
appended with its reason to ``monitoring/triggers.jsonl``; the Prefect flow
(``flows/monitor.py``) starts the triggered update deployments and emits an event.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from lstmops import paths
from lstmops.config import Settings


@dataclass
class Trigger:
    """Whether a problem's update is triggered by a day's monitoring, and why."""

    problem: str
    day: str                      # the monitored day
    triggered: bool
    reason: str                   # the flagged findings, in words
    declined: str | None = None   # why no update was triggered although something was flagged
    decided_at: str = ""
    flow_run: str | None = None   # the update run the flow started (filled in by the flow)


@dataclass
class ProblemDay:
    """One problem's monitoring on one day: its checks and the trigger decision (None when nothing flagged)."""

    problem: str
    day: str
    checks: list[dict] = field(default_factory=list)  # interval, period, kind, flagged, words
    trigger: Trigger | None = None
    traffic: dict | None = None
    seconds: float = 0.0


def intervals_to_check(day: date, lag: int) -> list[tuple[str, date]]:
    """(interval, any day in it) pairs checked when monitoring ``day``."""
    todo = [("day", day)]
    if lag > 0:
        todo.append(("day", day - timedelta(days=lag)))
    if day.weekday() == 6:  # Sunday: the week is complete
        todo.append(("week", day))
    return todo


def past_triggers(root: Path | None = None) -> list[dict]:
    """Every trigger decision so far, oldest first."""
    path = paths.triggers_file(root)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_trigger(trigger: Trigger, root: Path | None = None) -> None:
    """Add one decision to ``monitoring/triggers.jsonl`` (one line, appended whole)."""
    path = paths.triggers_file(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(trigger), sort_keys=True) + "\n")


def decide(settings: Settings, problem: str, day: date, flagged: list[dict], *, registry,
           root: Path | None = None) -> Trigger:
    """Trigger the update of ``problem`` for the flagged checks, or say why not."""
    reason = " ".join(f"[{c['interval']} {c['period']}: {c['kind']}] {c['words']}" for c in flagged)
    now = datetime.now().replace(microsecond=0).isoformat()
    cooldown = settings.monitoring.cooldown_days
    recent = [t for t in past_triggers(root) if t["problem"] == problem and t["triggered"]
              and 0 <= (day - date.fromisoformat(t["day"])).days < cooldown]
    if recent:
        return Trigger(problem, day.isoformat(), False, reason, declined=(
            f"an update was triggered on {recent[-1]['day']}, under monitoring.cooldown_days ({cooldown}) ago; "
            "its candidates are still being judged"), decided_at=now)
    pending = registry.proposals(problem, status="pending")
    if pending:
        return Trigger(problem, day.isoformat(), False, reason, declined=(
            f"proposal {pending[0].id} (v{pending[0].candidate_version}) is already waiting for a person: "
            f"lstmops approve {problem} {pending[0].id} --reason ... or lstmops reject {problem} {pending[0].id} "
            "--reason ..."),
            decided_at=now)
    judged = _drift_already_judged(problem, day, flagged, registry=registry, root=root)
    if judged:
        return Trigger(problem, day.isoformat(), False, reason, declined=judged, decided_at=now)
    return Trigger(problem, day.isoformat(), True, reason, decided_at=now)


DRIFT_ONLY = ("input drift", "world drift")  # the check kinds that say nothing about skill


def alarm_streak_start(problem: str, day: date, root: Path | None = None) -> date:
    """The first day of the unbroken run of flagged days of ``problem`` that ends at ``day``."""
    flagged_days = {date.fromisoformat(t["day"]) for t in past_triggers(root) if t["problem"] == problem}
    start = day
    while start - timedelta(days=1) in flagged_days:
        start -= timedelta(days=1)
    return start


def _drift_already_judged(problem: str, day: date, flagged: list[dict], *, registry,
                          root: Path | None = None) -> str | None:
    """Why a drift-only alarm needs no update run (an earlier run judged this drift), or None."""
    from lstmops.update.gate import Verdict
    from lstmops.update.records import load_record

    if not flagged or any(c["kind"] not in DRIFT_ONLY for c in flagged):
        return None
    champion = registry.aliases(problem).get("champion")
    start = alarm_streak_start(problem, day, root)
    runs = paths.update_run_dir(problem, "-", root).parent
    if champion is None or not runs.is_dir():
        return None
    for folder in sorted(runs.iterdir(), reverse=True):
        try:
            run_day = date.fromisoformat(folder.name)
        except ValueError:
            continue
        if run_day < start or run_day > day + timedelta(days=1):
            continue
        collected, gate = load_record(folder / "collect.json"), load_record(folder / "gate.json")
        if not collected or not gate or collected.get("champion_version") != champion:
            continue
        if gate.get("verdict") == Verdict.NO_CHANGE.value:
            return (f"drift alone (skill holds), and the update run of {run_day} already judged it: it collected "
                    f"data of this drift (alarms since {start}) and found nothing better than the deployed "
                    f"v{champion} (NO-CHANGE); skill loss would still trigger, and the weekly update goes on")
    return None


def monitor_problem(settings: Settings, problem: str, day: date, *, registry, store, root: Path | None = None,
                    workspace: Any = None, simulate: bool = False, html: bool = True) -> ProblemDay:
    """Monitor one problem on ``day`` (see the module docstring); the trigger decision is recorded."""
    import time

    from lstmops.monitoring.checks import check_interval
    from lstmops.monitoring.traffic import simulate_day

    started = time.perf_counter()
    out = ProblemDay(problem, day.isoformat())
    if simulate:
        out.traffic = asdict(simulate_day(settings, problem, day, registry=registry, store=store))
    lag = settings.monitoring.traffic.observation_lag_days
    flagged = []
    for interval, when in intervals_to_check(day, lag):
        check = check_interval(settings, problem, interval, when, store=store, registry=registry, root=root,
                               workspace=workspace, html=html)
        summary = {"interval": interval, "period": check.period, "kind": check.kind, "flagged": check.flagged,
                   "words": check.words}
        out.checks.append(summary)
        if check.flagged:
            flagged.append(summary)
    if flagged:
        out.trigger = decide(settings, problem, day, flagged, registry=registry, root=root)
        append_trigger(out.trigger, root)
    out.seconds = time.perf_counter() - started
    return out
