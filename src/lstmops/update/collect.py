"""Step 1 of the update process: collect a labelled batch as the process stands on the run's date.

``collect`` draws ``update.batch_size`` new training rows and ``update.eval_size`` evaluation
rows (the gate's data, which no arm trains on) from the problem's drifting process on
``as_of``, from seeded streams named by problem and date, so a re-run of a day draws the
same rows. Both tables are checked against the problem's contract at that day's process
parameters, and the deployed model (the champion) must be able to take them: a batch
that breaks the contract or needs another input shape is quarantined (tables and report
under ``data/quarantine/<problem>/<day>``) and nothing else changes. A good batch is
written to ``data/batches/<problem>/<day>``, versioned with ``dvc add``, its ``.dvc``
file committed alone and pushed; then the champion predicts it through the serving path
of ``lstmops predict`` and the true targets are recorded as observations, both dated at
``as_of``, so the store's history is that of the day the data came from.

The caller saves the returned :class:`CollectResult` (e.g. ``save_record(result,
update_run_dir(problem, run_id) / "collect.json")``); collect itself writes only data.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from lstmops import paths
from lstmops.config import Settings, problem_settings
from lstmops.errors import DataError, InputError, NoModelError
from lstmops.seeding import int_seed_for, rng_for
from lstmops.update.records import save_record
from lstmops.update.versioning import version_batch

log = logging.getLogger(__name__)

TRAIN, EVAL, REPORT = "train.parquet", "eval.parquet", "validation.json"


@dataclass(frozen=True)
class CollectResult:
    """What one collect run did for one problem and day."""

    problem: str
    day: str
    champion_version: int
    quarantined: bool
    reason: str | None            # one line: why the batch was quarantined
    folder: str                   # the batch (or quarantine) folder, relative to the root
    train_rows: int
    eval_rows: int
    reused: bool = False          # the day's batch folder already held these rows
    md5: str | None = None        # DVC's hash of the batch folder (None without dvc)
    committed: bool = False       # the .dvc file was committed to git by this run
    pushed: bool | None = None    # dvc push succeeded (None: not attempted)
    predicted: int = 0            # predictions logged by this run (a re-run finds them logged)
    observed: int = 0             # observations recorded by this run
    notes: tuple[str, ...] = field(default_factory=tuple)


def run_time(as_of: date) -> datetime:
    """The (naive UTC) time a run's predictions and observations are dated at: the day's start."""
    return datetime.combine(as_of, time(0))


def draw_split(settings: Settings, problem: str, as_of: date, split: str) -> pd.DataFrame:
    """One split (``train``: ``update.batch_size`` rows, ``eval``: ``update.eval_size``) of the day's batch.

    Drawn from the process as it stands on ``as_of``, from a stream named by problem, day and split.
    """
    from lstmops.data.drift import generate_at
    from lstmops.problems import get_problem

    cfg = problem_settings(settings, problem)
    n = settings.update.batch_size if split == "train" else settings.update.eval_size
    rng = rng_for(settings.seed, problem, "batch", as_of.isoformat(), split)
    return generate_at(get_problem(problem), cfg.process, cfg.drift, n, rng, as_of)


def draw_batch(settings: Settings, problem: str, as_of: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The day's (train, eval) tables; a re-run of the same day draws the same rows."""
    return draw_split(settings, problem, as_of, "train"), draw_split(settings, problem, as_of, "eval")


def prediction_ids(problem: str, day: str, split: str, n: int) -> list[str]:
    """Deterministic ids of a batch's rows, e.g. ``2027-01-18-echo-e000012`` (``e`` eval, ``t`` train, ``d`` drawn)."""
    return [f"{day}-{problem}-{split[0]}{i:06d}" for i in range(n)]


def validate_batch(settings: Settings, problem: str, as_of: date, tables: dict[str, pd.DataFrame]) -> dict:
    """Each table's contract report at the process parameters in force on ``as_of`` (JSON-able)."""
    from lstmops.data.drift import fully_applied
    from lstmops.data.validation import validate_table
    from lstmops.problems import get_problem

    cfg = problem_settings(settings, problem)
    contract = get_problem(problem).contract(fully_applied(cfg.process, cfg.drift, as_of))
    return {name: validate_table(table, contract, suite_name=f"{problem}/batch-{as_of}/{name}").to_dict()
            for name, table in tables.items()}


def champion_refusal(problem: str, served: Any, day_params: Any, table: pd.DataFrame) -> str | None:
    """Why the deployed model cannot take ``table``'s inputs (another shape, alphabet, range), or None."""
    from lstmops.problems import get_problem, is_generative
    from lstmops.serving.inputs import validate_inputs

    if is_generative(problem):
        return None
    columns = get_problem(problem).input_columns(day_params)
    try:
        typed = validate_inputs(problem, served.preparer.params, table[columns], None)
        chunk = getattr(get_problem(problem), "PREPARE_CHUNK_ROWS", None)
        for _ in served.preparer.inputs_chunks(typed, chunk) if chunk else [served.preparer.inputs(typed)]:
            pass  # large rendered inputs (moving_square) are prepared a chunk at a time, as predict does
    except (InputError, DataError) as err:
        return f"the deployed model v{served.version.version} cannot take this batch: {err}"
    return None


def _refusal(report: dict, champion: str | None) -> str | None:
    failed = [f"{name} breaks its contract ({r['n_failed']} of {r['n_expectations']} expectations failed)"
              for name, r in report.items() if name != "champion" and not r["success"]]
    return "; ".join([*failed, *([champion] if champion else [])]) or None


def _write_tables(folder: Path, train: pd.DataFrame, evaluation: pd.DataFrame, report: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train.to_parquet(folder / TRAIN, index=False)
    evaluation.to_parquet(folder / EVAL, index=False)
    save_record(report, folder / REPORT)


def _relative(folder: Path, root: Path) -> str:
    try:
        return str(folder.resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(folder)


def _same_batch(folder: Path, train: pd.DataFrame, evaluation: pd.DataFrame) -> bool:
    """Whether the day's folder already holds exactly these tables (False when there is none).

    Raises:
        DataError: it holds other rows (the settings changed since): the store already has
            that day's traffic under the same ids, so the batch is not silently replaced.
    """
    if not all((folder / name).is_file() for name in (TRAIN, EVAL, REPORT)):
        return False
    if (pd.read_parquet(folder / TRAIN).equals(train.reset_index(drop=True))
            and pd.read_parquet(folder / EVAL).equals(evaluation.reset_index(drop=True))):
        return True
    raise DataError(f"{folder} holds other rows than this run draws for that day (update.batch_size, "
                    "eval_size, seed or the process changed?); move it away to collect the day again")


def collect(settings: Settings, problem: str, as_of: date, *, root: Path, registry, store,
            dvc: bool = True) -> CollectResult:
    """Collect, check, version and replay the day's batch of ``problem`` (see the module docstring).

    Args:
        root: the repository root (where ``data/`` lives and git/dvc run).
        registry: the model registry (its champion serves the batch).
        store: the prediction/observation store.
        dvc: version the batch with ``dvc add``, commit its ``.dvc`` file and ``dvc push`` it.

    Raises:
        NoModelError: ``problem`` has no champion to evaluate.
    """
    from lstmops.data.drift import fully_applied
    from lstmops.serving.predict import open_version

    cfg, day = problem_settings(settings, problem), as_of.isoformat()
    try:
        served = open_version(registry, problem, "champion")
    except NoModelError as err:
        raise NoModelError(f"{problem}: no deployed model to collect for: {err}") from None
    train, evaluation = draw_batch(settings, problem, as_of)
    report = validate_batch(settings, problem, as_of, {"train": train, "eval": evaluation})
    day_params = fully_applied(cfg.process, cfg.drift, as_of)
    champion = champion_refusal(problem, served, day_params, pd.concat([evaluation, train], ignore_index=True))
    report["champion"] = {"version": served.version.version, "success": champion is None, "reason": champion}
    base = dict(problem=problem, day=day, champion_version=served.version.version,
                train_rows=len(train), eval_rows=len(evaluation))
    reason = _refusal(report, champion)
    if reason is not None:
        folder = paths.quarantine_dir(problem, day, root)
        _write_tables(folder, train, evaluation, {**report, "reason": reason})
        log.warning("%s %s: batch quarantined: %s", problem, day, reason)
        return CollectResult(**base, quarantined=True, reason=reason, folder=_relative(folder, root))
    folder = paths.batch_dir(problem, day, root)
    reused = _same_batch(folder, train, evaluation)
    if not reused:
        _write_tables(folder, train, evaluation, report)
    versioned = version_batch(root, folder, f"lstmops collect: {problem} batch {day}") if dvc else {}
    predicted, observed = replay(settings, problem, as_of, registry, store, train, evaluation)
    return CollectResult(**base, quarantined=False, reason=None, folder=_relative(folder, root), reused=reused,
                         predicted=predicted, observed=observed, **versioned)


def replay(settings: Settings, problem: str, as_of: date, registry, store, train: pd.DataFrame,
           evaluation: pd.DataFrame) -> tuple[int, int]:
    """The champion predicts the batch (eval rows first) and the truth is observed, dated at ``as_of``.

    Rows a previous run of the same day already logged or observed are skipped. A
    generative problem has no inputs: the champion draws ``eval_size`` shapes instead.
    Returns (predictions logged, observations recorded).
    """
    from lstmops.problems import is_generative
    from lstmops.serving.predict import predict

    day, when = as_of.isoformat(), run_time(as_of)
    if is_generative(problem):
        ids = prediction_ids(problem, day, "drawn", settings.update.eval_size)
        if store.known_ids(problem, ids):
            return 0, 0
        seed = int_seed_for(settings.seed, problem, "draw", day)
        predict(problem, pd.DataFrame({"id": ids}), registry, store, seed=seed, at=when)
        return len(ids), 0
    table = pd.concat([evaluation.assign(id=prediction_ids(problem, day, "eval", len(evaluation))),
                       train.assign(id=prediction_ids(problem, day, "train", len(train)))], ignore_index=True)
    return _predict_new(problem, table, registry, store, when), _observe_new(problem, table, registry, store, when)


def _predict_new(problem: str, table: pd.DataFrame, registry, store, when: datetime) -> int:
    from lstmops.problems import get_problem
    from lstmops.serving.predict import open_version, predict

    fresh = table[~table["id"].isin(store.known_ids(problem, table["id"].tolist()))]
    if fresh.empty:
        return 0
    columns = ["id", *get_problem(problem).input_columns(open_version(registry, problem).preparer.params)]
    predict(problem, fresh[columns].reset_index(drop=True), registry, store, at=when)
    return len(fresh)


def _observe_new(problem: str, table: pd.DataFrame, registry, store, when: datetime) -> int:
    from lstmops.problems import get_problem
    from lstmops.serving.inputs import version_params
    from lstmops.serving.predict import observe

    fresh = table[~table["id"].isin(store.observed_ids(problem, table["id"].tolist()))]
    if fresh.empty:
        return 0
    targets = get_problem(problem).target_columns(version_params(registry.resolve(problem, "champion")))
    rows = fresh[["id", *targets]].assign(observed_at=when.isoformat())
    return observe(problem, rows.reset_index(drop=True), registry, store)


def batch_days(problem: str, as_of: date, root: Path) -> list[date]:
    """Days up to ``as_of`` with a collected batch of ``problem``, newest first."""
    folder = paths.batches_dir(problem, root)
    days = []
    for entry in folder.iterdir() if folder.is_dir() else ():
        try:
            day = date.fromisoformat(entry.name)
        except ValueError:
            continue  # e.g. the .dvc files and .gitignore beside the folders
        if entry.is_dir() and day <= as_of:
            days.append(day)
    return sorted(days, reverse=True)


def window_days(days: list[date], as_of: date, last: int | None) -> list[date]:
    """Those of ``days`` in the ``last`` days up to and including ``as_of`` (all when None)."""
    return days if last is None else [d for d in days if d > as_of - timedelta(days=last)]


def select_training_rows(settings: Settings, problem: str, as_of: date, root: Path) -> pd.DataFrame:
    """The "new" training rows for the candidates, from collected batches per ``update.window``.

    ``days: N``: every training row of the batches of the last N days up to ``as_of``;
    ``share: s``: the first ``ceil(s * rows)`` training rows of every batch up to ``as_of``
    (rows within a batch are exchangeable draws), so older intervals stay represented.
    Newest batch first either way; evaluation rows are never included.

    Raises:
        DataError: no batch in the window, or a batch's table is not on disk (``dvc pull``).
    """
    window = settings.update.window
    days = window_days(batch_days(problem, as_of, root), as_of, window.days)
    if not days:
        raise DataError(f"{problem}: no collected batch up to {as_of} in the update window "
                        f"({'last %d days' % window.days if window.days else 'all batches'})")
    parts = []
    for day in days:
        path = paths.batch_dir(problem, day.isoformat(), root) / TRAIN
        if not path.is_file():
            raise DataError(f"{problem}: batch {day} has no {TRAIN} on disk (run dvc pull)")
        table = pd.read_parquet(path)
        parts.append(table if window.share is None else table.head(math.ceil(window.share * len(table))))
    return pd.concat(parts, ignore_index=True)
