"""Repeated fit-and-score runs of one problem, side by side in worker processes.

This is the adapter between the pure library (training, evaluation) and the files the
data stages wrote: each run loads the prepared arrays and fitted preprocessing, fits
with its own seed, and is scored on fresh test data drawn with its own seed.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmops import paths
from lstmops.config import Settings
from lstmops.data.io import read_array, read_table
from lstmops.data.drift import generate_at
from lstmops.problems import get_problem
from lstmops.seeding import int_seed_for, rng_for


@dataclass
class RepeatResult:
    """What one independent fit-and-score run produced."""

    repeat: int
    seed: int
    metrics: dict[str, float]
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float
    device: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProblemData:
    """A problem's prepared arrays and fitted preprocessing, as the data stages left them."""

    preparer: Any
    train: tuple[np.ndarray, np.ndarray]
    validation: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    train_table: pd.DataFrame
    test_table: pd.DataFrame


def load_problem_data(problem: str, root: Path) -> ProblemData:
    """Load prepared arrays (memory-mapped) and the fitted preparer of ``problem``."""
    from lstmops.features.preparers import load_preparer

    folder = paths.prepared_dir(problem, root)
    xy = {s: (read_array(folder / f"X_{s}.npy", mmap=True), read_array(folder / f"y_{s}.npy")) for s in
          ("train", "validation", "test")}
    return ProblemData(
        preparer=load_preparer(paths.preprocessing_file(problem, root)), **xy,
        train_table=read_table(paths.raw_split(problem, "train", root)),
        test_table=read_table(paths.raw_split(problem, "test", root)),
    )


def fresh_test_table(settings: Settings, problem: str, repeat: int) -> pd.DataFrame:
    """New test sequences for one run, drawn from the process as of the build date."""
    cfg = settings.problems[problem]
    rng = rng_for(settings.seed, problem, "evaluate", repeat)
    return generate_at(get_problem(problem), cfg.process, cfg.drift, settings.evaluate.test_size, rng, settings.as_of)


def fit_problem(settings: Settings, problem: str, data: ProblemData, seed: int, final: bool = False,
                epochs: int | None = None):
    """Fit the configured architecture; ``final`` trains on train + validation without early stopping."""
    from lstmops.modeling.training import fit

    cfg = settings.problems[problem]
    train_xy, val_xy = data.train, data.validation
    if final:
        train_xy = (np.concatenate([train_xy[0], val_xy[0]]), np.concatenate([train_xy[1], val_xy[1]]))
        val_xy = None
    task = _task(settings, problem, data, len(train_xy[0]))
    return fit(cfg.architecture, cfg.model, task, train_xy, val_xy, cfg.train, seed, epochs=epochs)


def _task(settings: Settings, problem: str, data: ProblemData, rows: int):
    """The training task of ``problem`` on ``rows`` training rows (at most ``train.train_rows``)."""
    from lstmops.modeling.training import make_task

    train = settings.problems[problem].train
    n_train = min(rows, train.train_rows or rows)
    return make_task(get_problem(problem), data.preparer.input_shape, data.preparer.target_shape, n_train, train)


def repeat_seed(settings: Settings, problem: str, repeat: int) -> int:
    """The seed of one evaluation run (its initial weights, data order and dropout)."""
    return int_seed_for(settings.seed, problem, "fit", repeat)


def _scored(settings: Settings, problem: str, repeat: int, data: ProblemData, result: Any) -> RepeatResult:
    """A fitted run scored on this repeat's own fresh test data."""
    from lstmops.modeling.evaluation import score_model

    metrics = score_model(
        problem, result.model, data.preparer, fresh_test_table(settings, problem, repeat),
        train_table=data.train_table, rng=rng_for(settings.seed, problem, "generate-shapes", repeat),
        n_shapes=settings.evaluate.generated_shapes, temperature=settings.problems[problem].model.temperature,
    )
    return RepeatResult(repeat, repeat_seed(settings, problem, repeat), metrics, result.history, result.best_epoch,
                        result.seconds, result.device)


def run_repeat(settings: Settings, problem: str, repeat: int, root: Path) -> RepeatResult:
    """One independent run: fit with this repeat's seed, score on this repeat's fresh data."""
    data = load_problem_data(problem, root)
    result = fit_problem(settings, problem, data, repeat_seed(settings, problem, repeat))
    return _scored(settings, problem, repeat, data, result)


def run_replicas(settings: Settings, problem: str, root: Path, progress: Any = None) -> list[RepeatResult]:
    """All ``evaluate.repeats`` runs trained together as vmapped replicas, then each scored.

    Each replica equals the sequential run of its seed (initial weights, data order,
    dropout, early stopping; :mod:`lstmops.modeling.replicas`), so the results are those of
    :func:`run_repeat`, up to float rounding.
    """
    from lstmops.modeling.replicas import fit_replicas

    cfg = settings.problems[problem]
    data = load_problem_data(problem, root)
    task = _task(settings, problem, data, len(data.train[0]))
    repeats = range(settings.evaluate.repeats)
    fits = fit_replicas(cfg.architecture, cfg.model, task, data.train, data.validation, cfg.train,
                        [repeat_seed(settings, problem, r) for r in repeats], progress=progress)
    return [_scored(settings, problem, r, data, result) for r, result in zip(repeats, fits)]


def run_repeats(settings: Settings, problem: str, root: Path, progress: Any = None) -> list[RepeatResult]:
    """All ``evaluate.repeats`` runs: as replicas (``evaluate.replicas``, JAX) or ``evaluate.workers`` processes."""
    from lstmops.modeling.replicas import fallback_reason

    repeats, workers = settings.evaluate.repeats, min(settings.evaluate.workers, settings.evaluate.repeats)
    if settings.evaluate.replicas and fallback_reason(repeats) is None:
        return run_replicas(settings, problem, root, progress)
    if workers <= 1:
        return [run_repeat(settings, problem, r, root) for r in range(repeats)]
    # Spawned (not forked) workers: JAX and XLA thread pools do not survive a fork.
    context = multiprocessing.get_context("spawn")
    from lstmops.modeling.training import use_compile_cache

    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=use_compile_cache) as pool:
        futures = [pool.submit(run_repeat, settings, problem, r, root) for r in range(repeats)]
        return [f.result() for f in futures]
