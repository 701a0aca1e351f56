"""The stakeholder report: one self-contained HTML page per update run, and an index.

The people who approve promotions are not the people who train models, so each page
says in plain words first what is deployed, how well it does, what monitoring found
and what awaits a decision (with the exact command), and gives the numbers second:
skill over time with promotions and drift marked, the arms' scores, each gate rule
passed or failed, the ledger. Pages open offline from disk: charts are inline SVG, the
style sheet is inline, there are no scripts, and the only links are relative ones to
sibling pages and to Evidently's own snapshot pages.

Everything is read from what the rest of the project saved: the registry (aliases,
ledger, proposals), the prediction store (skill per day), the update runs' records
(``updates/<problem>/<run_id>/``) and the monitoring records. Nothing here decides.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from lstmops import paths
from lstmops.config import Settings
from lstmops.errors import InputError
from lstmops.monitoring import pages as h
from lstmops.update.records import load_record

INDEX = "index.html"
ARM_ORDER = ("deployed", "baseline", "a", "b", "c", "d")
SHORT_TITLES = {"deployed": "deployed now", "baseline": "fair baseline", "a": "a: deployed + new data",
                "b": "b: deployed + old & new", "c": "c: fresh on new data", "d": "d: fresh on old & new"}


@dataclass(frozen=True)
class RunRecords:
    """What one update run saved under ``updates/<problem>/<run_id>/`` (each part None until that step ran)."""

    problem: str
    run_id: str
    collect: dict | None
    assess: dict | None
    gate: dict | None
    proposal: dict | None
    results: list[dict] = field(default_factory=list)   # one finished arm-repeat each (``ArmResult``)

    @classmethod
    def load(cls, problem: str, run_id: str, root: Path | None = None) -> "RunRecords":
        """The run's saved records, whichever exist."""
        folder = paths.update_run_dir(problem, run_id, root)
        results = [load_record(p) for p in sorted((folder / "results").glob("*.json"))]
        return cls(problem, run_id, *(load_record(folder / f"{step}.json")
                                      for step in ("collect", "assess", "gate", "proposal")), results)

    @property
    def page(self) -> str:
        """The run page's file name, beside the index."""
        return f"{self.problem}-{self.run_id}.html"

    def arm_scores(self) -> dict[str, list[float]]:
        """Each arm's score per finished, non-diverged repeat the gate used, deployed first."""
        limit = (self.gate or {}).get("repeats")
        scores: dict[str, list[float]] = {}
        for r in sorted(self.results, key=lambda r: (r["arm"], r["repeat"])):
            if limit is not None and r["repeat"] >= limit:
                continue
            scores.setdefault(r["arm"], [])
            if not r.get("diverged") and r.get("values"):
                scores[r["arm"]].append(sum(r["values"]) / len(r["values"]))
        deployed = ((self.gate or {}).get("means") or {}).get("deployed")
        if deployed is not None:
            scores["deployed"] = [float(deployed)]
        return {arm: scores[arm] for arm in (*ARM_ORDER, *sorted(scores)) if arm in scores}


@dataclass(frozen=True)
class ProblemState:
    """One problem as the registry, the store and monitoring see it now."""

    problem: str
    metric: str
    higher_is_better: bool
    champion: int | None
    previous: int | None
    skill: list[dict]          # store.skill(problem, "day")
    ledger: list[Any]          # registry Promotion rows, newest first
    pending: list[Any]         # pending Proposals, newest first
    checks: list[dict]         # monitoring day records (week records when there are none), oldest first
    runs: list[str]            # update run ids, newest first

    def latest_skill(self) -> dict | None:
        """The deployed model's most recent served day, or None."""
        mine = [r for r in self.skill if r["role"] == "served" and r["model_version"] == self.champion
                and r.get(self.metric) is not None]
        return mine[-1] if mine else None

    def latest_finding(self, days: int = 7) -> dict | None:
        """The check to lead with: the newest flagged one of the last ``days`` checked, else the newest.

        The newest day often has no outcomes yet (they arrive a day later), so its "none"
        must not hide yesterday's skill loss.
        """
        if not self.checks:
            return None
        recent = self.checks[-days:]
        flagged = [c for c in recent if c.get("flagged")]
        return flagged[-1] if flagged else self.checks[-1]

    def shadow_on(self, period: str) -> dict | None:
        """The previous model's shadow skill on ``period``, or None."""
        return next((r for r in self.skill if r["role"] == "shadow" and r["period"] == period
                     and r["model_version"] == self.previous and r.get(self.metric) is not None), None)


def update_runs(problem: str, root: Path | None = None) -> list[str]:
    """The ids of ``problem``'s update runs (their folders), newest first."""
    folder = paths.update_run_dir(problem, "x", root).parent
    return sorted((p.name for p in folder.iterdir() if p.is_dir()), reverse=True) if folder.is_dir() else []


def problem_state(problem: str, *, registry: Any, store: Any, root: Path | None = None) -> ProblemState:
    """Everything the pages show about ``problem`` besides one run's records."""
    from lstmops.monitoring.checks import load_checks
    from lstmops.problems import get_problem

    module = get_problem(problem)
    aliases = registry.aliases(problem)
    registry.expire_due()  # an overdue proposal can no longer be approved: do not offer its command
    checks = load_checks(problem, "day", root) or load_checks(problem, "week", root)
    return ProblemState(problem, module.PRIMARY_METRIC, bool(module.HIGHER_IS_BETTER), aliases.get("champion"),
                        aliases.get("previous"), store.skill(problem, "day"), registry.ledger(problem),
                        registry.proposals(problem, "pending"), checks, update_runs(problem, root))


def _problems(settings: Settings, problems: Sequence[str] | None) -> list[str]:
    known = list(settings.problems)
    for name in problems or ():
        if name not in known:
            raise InputError(f"report: unknown problem {name!r} (known: {', '.join(known)})")
    return list(problems) if problems else known


REHEARSAL_FILE = "rehearsal.json"  # in a rehearsal's root: what is rehearsed, and its decisions so far


def _write(path: Path, text: str) -> Path:
    """Write a page atomically, so a browser never opens half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
    return path


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _evidently_link(check: dict, root: Path | None) -> str | None:
    """Evidently's page of ``check``, relative to the reports folder, when it exists."""
    page = check.get("page")
    if not page:
        return None
    base = root or paths.repo_root()
    target = base / page
    if not target.is_file():
        return None
    return Path(os.path.relpath(target, paths.reports_dir(root))).as_posix()


def run_page(settings: Settings, problem: str, run_id: str, *, registry: Any, store: Any,
             root: Path | None = None, state: ProblemState | None = None) -> Path:
    """Write the page of one update run (``<problem>-<run_id>.html``) and return its path."""
    _problems(settings, [problem])
    if not paths.update_run_dir(problem, run_id, root).is_dir():
        raise InputError(f"report: {problem} has no update run {run_id!r}")
    state = state or problem_state(problem, registry=registry, store=store, root=root)
    run = RunRecords.load(problem, run_id, root)
    body = h.run_body(state, run, _evidently_link(state.latest_finding(), root) if state.checks else None, _now())
    return _write(paths.reports_dir(root) / run.page, h.page(f"{problem}: update run {run_id}", body))


def current_page(state: ProblemState, root: Path | None = None) -> Path:
    """Write the page of a problem with no update run yet (``<problem>.html``) and return its path."""
    link = _evidently_link(state.latest_finding(), root) if state.checks else None
    body = h.run_body(state, None, link, _now())
    return _write(paths.reports_dir(root) / f"{state.problem}.html", h.page(f"{state.problem}: current state", body))


def build_report(settings: Settings, *, registry: Any, store: Any, root: Path | None = None,
                 problems: list[str] | None = None) -> Path:
    """Write the pages of ``problems`` (default: all) and the index of every problem; returns the index path.

    The index always lists every problem of ``settings``, so the update flow can refresh
    one problem's pages after its run without dropping the others from the index.
    """
    chosen = _problems(settings, problems)
    states = {}
    for problem in settings.problems:
        state = problem_state(problem, registry=registry, store=store, root=root)
        states[problem] = state
        if problem not in chosen:
            continue
        for run_id in state.runs:
            run_page(settings, problem, run_id, registry=registry, store=store, root=root, state=state)
        if not state.runs:
            current_page(state, root)
    verdicts = {p: {r: (load_record(paths.update_run_dir(p, r, root) / "gate.json") or {}).get("verdict")
                    for r in s.runs}
                for p, s in states.items()}  # the gate's file only: a run's arm results are many files
    folder = paths.reports_dir(root)
    present = {p.name for p in folder.glob("*.html")} if folder.is_dir() else set()
    rehearsal = load_record((root or paths.repo_root()) / REHEARSAL_FILE)
    title = "lstmops: models and decisions" + (" (rehearsal)" if rehearsal else "")
    return _write(folder / INDEX, h.page(title, h.index_body(list(states.values()), verdicts, present, _now(),
                                                             rehearsal)))


def day_of(value: Any) -> date:
    """A ``date`` from a datetime, a date or an ISO string."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
