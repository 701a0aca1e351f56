"""One update run of one problem on one date: the five steps over saved records.

Every step writes its typed result under ``updates/<problem>/<date>/`` (and each
arm-repeat its own ``arms/<arm>/r<k>.json``), and reads it back when it is there: a run
that died anywhere is re-run with the same problem and date, and carries on from the
last saved step without repeating finished trainings, registering a model twice or
proposing it twice. Prefect flows (``flows/update.py``) only call these methods; the
fan-out of :meth:`UpdateRun.jobs` over processes or a Dask cluster is theirs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from lstmops import paths
from lstmops.config import Settings
from lstmops.errors import InputError
from lstmops.update.records import load_record, save_record

def parse_day(text: str | date | None, settings: Settings) -> date:
    """The run's date: a ``date``, ``YYYY-MM-DD``, ``today``, or None for the build's ``as_of``."""
    if isinstance(text, date):
        return text
    if text is None:
        return settings.as_of
    if text == "today":
        return date.today()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"update: {text!r} is not a date (YYYY-MM-DD or today)") from None


@dataclass
class UpdateRun:
    """The saved state of one problem's update run on ``as_of``."""

    settings: Settings
    problem: str
    as_of: date
    root: Path
    registry: Any
    store: Any

    @property
    def run_id(self) -> str:
        """One run per problem and date: re-running the date resumes it."""
        return self.as_of.isoformat()

    @property
    def folder(self) -> Path:
        """Where this run's records and arm weights live."""
        return paths.update_run_dir(self.problem, self.run_id, self.root)

    def record(self, step: str) -> dict | None:
        """The saved result of ``step``, or None."""
        return load_record(self.folder / f"{step}.json")

    def save(self, step: str, result: Any) -> None:
        """Save the result of ``step`` (atomically)."""
        save_record(result, self.folder / f"{step}.json")

    # --- steps 1 and 2 ------------------------------------------------------------------

    def collect(self) -> dict:
        """Step 1: the day's batch, versioned, replayed as traffic (saved; a saved one is reused)."""
        from lstmops.update.collect import collect

        done = self.record("collect")
        if done is None:
            done = collect(self.settings, self.problem, self.as_of, root=self.root, registry=self.registry,
                           store=self.store)
            self.save("collect", done)
            done = self.record("collect")
        return done

    def assess(self) -> dict:
        """Step 2: the deployed model's skill over time and its trend (recomputed: the store moves on)."""
        from lstmops.update.assess import assess

        found = assess(self.settings, self.problem, self.as_of, store=self.store, registry=self.registry)
        self.save("assess", found)
        return self.record("assess")

    # --- step 3 ---------------------------------------------------------------------------

    def data(self) -> Any:
        """The arms' prepared data (old, new, evaluation), made once per run."""
        from lstmops.seeding import int_seed_for
        from lstmops.update.candidates import UpdateData, prepare_update_data
        from lstmops.update.collect import select_training_rows

        found = UpdateData.load(self.folder)
        if found is not None:
            return found
        champion = self.registry.resolve(self.problem, "champion")
        collected = self.record("collect")
        eval_rows = _read_table(self.root / collected["folder"] / "eval.parquet")
        new_rows = select_training_rows(self.settings, self.problem, self.as_of, self.root)
        seed = int_seed_for(self.settings.seed, self.problem, "update-data", self.run_id)
        return prepare_update_data(self.settings, self.problem, champion, new_rows, eval_rows, self.root,
                                   self.folder, seed)

    def results(self) -> list[Any]:
        """Every arm-repeat finished so far (a re-run trains only the others)."""
        from lstmops.update.candidates import ArmResult

        found = []
        for path in sorted((self.folder / "results").glob("*.json")):
            found.append(ArmResult(**json.loads(path.read_text(encoding="utf-8"))))
        return found

    def keep(self, result: Any) -> None:
        """Save one finished arm-repeat."""
        keep_result(self.folder, result)

    def jobs(self, data: Any, repeats: int) -> list[Any]:
        """The arm-repeats still to train for ``repeats`` per arm."""
        from lstmops.update.candidates import plan_jobs

        done = {(r.arm, r.repeat) for r in self.results()}
        return [job for job in plan_jobs(self.settings, self.problem, data, repeats) if (job.arm, job.repeat) not in done]

    # --- step 4 ---------------------------------------------------------------------------

    def decide(self, data: Any, repeats: int) -> Any:
        """Step 4: the gate's decision on everything trained so far (saved with its evidence)."""
        from lstmops.update.candidates import arm_matrices, diverged_counts, score_deployed
        from lstmops.update.compare import compare

        results = [r for r in self.results() if r.repeat < repeats]
        deployed = score_deployed(data)
        decision = compare(self.settings, self.problem, deployed, arm_matrices(results), seed=len(results))
        evidence = decision.to_dict() | {"repeats": repeats, "diverged": diverged_counts(results),
                                         "run_id": self.run_id, "problem": self.problem}
        self.save("gate", evidence)
        return decision

    # --- step 5 ---------------------------------------------------------------------------

    def propose(self, decision: Any, data: Any, flow_run_id: str | None = None) -> dict | None:
        """Register the winner (the median-validation repeat) and propose it for approval, once."""
        from lstmops.update.candidates import realize
        from lstmops.update.compare import WEIGHTS_ONLY, headline

        done = self.record("proposal")
        if done is not None or decision.winner is None:
            return done
        champion = self.registry.resolve(self.problem, "champion")
        evidence = self.record("gate") | {"headline": headline(self.problem, decision),
                                          "gate_path": str(self.folder / "gate.json")}
        folder = realize(self.settings, self.problem, decision.winner, self.results(), data, champion,
                         self.folder, _summary(evidence))
        version = self.registry.register(self.problem, folder, actor=f"update run {self.run_id}").version.version
        expires = datetime.combine(self.as_of, datetime.min.time()) + timedelta(days=self.settings.update.approval_days)
        proposal = self.registry.propose(
            self.problem, version, evidence=_summary(evidence), report_path=str(self.folder / "gate.json"),
            weights_only=decision.winner in WEIGHTS_ONLY, arm=decision.winner, expires_at=expires,
            flow_run_id=flow_run_id, actor=f"update run {self.run_id}")
        self.save("proposal", proposal.to_dict())
        return self.record("proposal")


def keep_result(run_dir: Path, result: Any) -> None:
    """Save one finished arm-repeat under its run (where :meth:`UpdateRun.results` finds it)."""
    save_record(result, Path(run_dir) / "results" / f"{result.arm}-r{result.repeat:03d}.json")


def _summary(evidence: dict) -> dict:
    """The part of the gate's evidence a proposal and the ledger carry (the full JSON stays on disk)."""
    keep = ("verdict", "winner", "means", "repeats", "diverged", "headline", "gate_path", "run_id")
    return {k: evidence[k] for k in keep if k in evidence}


def _read_table(path: Path) -> Any:
    from lstmops.data.io import read_table

    return read_table(path)

