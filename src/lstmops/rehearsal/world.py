"""A rehearsal's own world: a root folder with its own database, registry, git + DVC, Prefect tags.

``rehearsals/<name>/`` (git-ignored in the real repository) holds everything a rehearsal
writes: ``params.yaml`` (the real one with a ``rehearsal.yaml`` preset merged over it),
its own SQLite database and registry folder (``registry/``) starting from copies of the
real champions, its own git + DVC repository and local DVC remote (the update flow
versions every collected batch there), the build's training splits the arms use as old
data, monitoring records, the Evidently workspace and the stakeholder report. The real
registry, store and repository are only ever read (the champions' bundles and the
training splits). ``rehearsal.json`` marks the folder as a rehearsal and, as days pass,
holds its decisions; the database's registry id is recorded there too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from pathlib import Path

import yaml

from lstmops import paths
from lstmops.database import CLOCK_ENV, set_clock
from lstmops.errors import InputError
from lstmops.monitoring.report import REHEARSAL_FILE
from lstmops.update.records import load_record, save_record

REHEARSALS_DIR = "rehearsals"
ACTOR = "rehearsal"          # the actor of everything a rehearsal does on its own (approvals, rollbacks)
APPROVE = ("auto", "never")


@dataclass
class Plan:
    """What a rehearsal rehearses (saved as ``rehearsal.json`` with its decisions)."""

    name: str
    first: str                 # YYYY-MM-DD, the first simulated day
    last: str                  # the last simulated day (inclusive)
    problems: list[str]
    approve: str = "auto"      # auto: approve every proposal on its day; never: let them expire
    sizes: str = "quick"       # a preset of rehearsal.yaml
    bad: list[dict] = field(default_factory=list)   # deliberately bad approved candidates: {problem, day}
    workers: int = 2           # processes the problems are spread over
    decisions: list[dict] = field(default_factory=list)

    @property
    def days(self) -> list[date]:
        from datetime import timedelta

        first, last = date.fromisoformat(self.first), date.fromisoformat(self.last)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def to_json(self) -> dict:
        return asdict(self) | {"from": self.first, "to": self.last}


def rehearsal_root(name: str, root: Path | None = None) -> Path:
    """Where the rehearsal ``name`` lives, under the real repository."""
    return (root or paths.repo_root()) / REHEARSALS_DIR / name


def env_for(folder: Path) -> dict[str, str]:
    """The environment that points lstmops (and DVC, GX, Prefect's tags) at the rehearsal's world."""
    return {"LSTMOPS_ROOT": str(folder), "LSTMOPS_DB_URL": f"sqlite:///{folder / 'registry' / 'lstmops.db'}",
            "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}


def check_plan(plan: Plan, source: Path) -> None:
    """Bad names, dates, policies and presets fail here, in one line, before anything is written."""
    from lstmops.config import load_settings, problem_settings
    from lstmops.rehearsal.presets import load_presets

    settings = load_settings(paths.params_file(source))
    for problem in plan.problems:
        problem_settings(settings, problem)
    for text in (plan.first, plan.last, *(b["day"] for b in plan.bad)):
        try:
            date.fromisoformat(text)
        except (TypeError, ValueError):
            raise InputError(f"{text!r} is not a date (YYYY-MM-DD)") from None
    if plan.last < plan.first:
        raise InputError(f"--to {plan.last} is before --from {plan.first}")
    if plan.approve not in APPROVE:
        raise InputError(f"--approve must be one of {', '.join(APPROVE)}, not {plan.approve!r}")
    if plan.sizes not in load_presets(source):
        raise InputError(f"no preset {plan.sizes!r} in rehearsal.yaml "
                         f"(known: {', '.join(sorted(load_presets(source)))})")
    for bad in plan.bad:
        if bad["problem"] not in plan.problems:
            raise InputError(f"--bad-candidate {bad['problem']}: not one of the rehearsed problems")
        if not plan.first <= bad["day"] <= plan.last:
            raise InputError(f"--bad-candidate day {bad['day']} is outside {plan.first}..{plan.last}")
    if not plan.name or "/" in plan.name or plan.name.startswith("."):
        raise InputError(f"{plan.name!r} is not a usable rehearsal name")


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(args, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed in {cwd}: {(done.stderr or done.stdout).strip()[-500:]}")


def create(plan: Plan, source: Path, replace: bool = False) -> Path:
    """Make the rehearsal's root from the real repository at ``source``; returns it.

    Raises:
        InputError: the rehearsal exists (and ``replace`` is false), or a problem has no champion.
    """
    from lstmops.rehearsal.presets import rehearsal_params
    from lstmops.registry import Registry

    folder = rehearsal_root(plan.name, source)
    if folder.exists():
        if not replace:
            raise InputError(f"{folder} exists; give another --name, or --replace to start it over")
        if load_record(folder / REHEARSAL_FILE) is None:
            raise InputError(f"{folder} is not a rehearsal (no {REHEARSAL_FILE}); not replacing it")
        shutil.rmtree(folder)
    real = Registry(url=paths.database_url(source), folder=paths.registry_dir(source))
    champions = {}
    for problem in plan.problems:
        champions[problem] = real.resolve(problem, "champion")  # NoModelError names the problem
        if not paths.raw_split(problem, "train", source).is_file():
            raise InputError(f"{problem} has no training split at "
                             f"{paths.raw_split(problem, 'train', source)}; run `dvc repro` (or dvc pull) first")
    raw = yaml.safe_load(paths.params_file(source).read_text(encoding="utf-8"))
    merged = rehearsal_params(raw, plan.sizes, source)  # a broken preset stops here, before anything is written
    folder.mkdir(parents=True)
    merged["problems"] = {p: merged["problems"][p] for p in plan.problems}
    merged["update"]["overrides"] = {p: o for p, o in (merged["update"].get("overrides") or {}).items()
                                     if p in plan.problems}
    merged["update"]["gate"]["min_gain"] = {p: g for p, g in merged["update"]["gate"].get("min_gain", {}).items()
                                            if p in plan.problems}
    (folder / "params.yaml").write_text("# the rehearsal's settings: params.yaml with the preset "
                                        f"{plan.sizes!r} of rehearsal.yaml merged over it\n"
                                        + yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    env = env_for(folder)
    dvc = str(Path(sys.executable).parent / "dvc") if (Path(sys.executable).parent / "dvc").is_file() else "dvc"
    (folder / ".gitignore").write_text("/registry/\n/monitoring/\n/updates/\n/.prefect/\n/logs/\n/data/raw/\n",
                                       encoding="utf-8")
    for args in (["git", "init", "-q"], ["git", "config", "user.email", "rehearsal@lstmops.local"],
                 ["git", "config", "user.name", ACTOR], [dvc, "init", "-q"],
                 [dvc, "remote", "add", "-d", "storage", str(folder / "dvc-storage")]):
        _run(args, folder, env)
    for problem in plan.problems:
        target = paths.raw_split(problem, "train", folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths.raw_split(problem, "train", source), target)
    _run(["git", "add", "-A"], folder, env)
    _run(["git", "commit", "-qm", f"rehearsal {plan.name}: {plan.first} to {plan.last}"], folder, env)
    own = Registry(url=env["LSTMOPS_DB_URL"], folder=folder / "registry")
    saved = os.environ.get(CLOCK_ENV)
    set_clock(datetime.combine(date.fromisoformat(plan.first), time(0)))  # the start is dated on the first day
    try:
        for problem, mv in champions.items():
            version = own.register(problem, Path(mv.folder), actor=ACTOR).version.version
            own.promote(problem, version, reason=f"rehearsal start: a copy of the real champion v{mv.version}",
                        actor=ACTOR, expect_champion=None)
    finally:
        os.environ.pop(CLOCK_ENV) if saved is None else os.environ.__setitem__(CLOCK_ENV, saved)
    save_record(plan.to_json(), folder / REHEARSAL_FILE)
    return folder


def load_plan(folder: Path) -> Plan:
    """The plan saved in a rehearsal's root."""
    saved = load_record(folder / REHEARSAL_FILE)
    if saved is None:
        raise InputError(f"{folder} is not a rehearsal (no {REHEARSAL_FILE})")
    saved.pop("from", None), saved.pop("to", None)
    return Plan(**saved)


def record_decisions(folder: Path, rows: list[dict]) -> None:
    """Append decisions to ``rehearsal.json`` (the report's table) in day order; workers take turns."""
    from filelock import FileLock

    if not rows:
        return
    with FileLock(str(folder / (REHEARSAL_FILE + ".lock"))):
        plan = load_plan(folder)
        plan.decisions = sorted(plan.decisions + rows, key=lambda r: (r["day"], r["problem"], r.get("order", 0)))
        save_record(plan.to_json(), folder / REHEARSAL_FILE)


def write_table(folder: Path) -> Path:
    """The decisions as ``decisions.csv`` beside ``rehearsal.json``."""
    import csv

    plan = load_plan(folder)
    path = folder / "decisions.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, ["day", "problem", "event", "detail", "champion"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(plan.decisions)
    return path
