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
    from lstmops.modeling.training import fit, make_task

    cfg = settings.problems[problem]
    train_xy, val_xy = data.train, data.validation
    if final:
        train_xy = (np.concatenate([train_xy[0], val_xy[0]]), np.concatenate([train_xy[1], val_xy[1]]))
        val_xy = None
    n_train = min(len(train_xy[0]), cfg.train.train_rows or len(train_xy[0]))
    task = make_task(get_problem(problem), data.preparer.input_shape, data.preparer.target_shape,
                     n_train, cfg.train)
    return fit(cfg.architecture, cfg.model, task, train_xy, val_xy, cfg.train, seed, epochs=epochs)


def run_repeat(settings: Settings, problem: str, repeat: int, root: Path) -> RepeatResult:
    """One independent run: fit with this repeat's seed, score on this repeat's fresh data."""
    from lstmops.modeling.evaluation import score_model

    data = load_problem_data(problem, root)
    seed = int_seed_for(settings.seed, problem, "fit", repeat)
    result = fit_problem(settings, problem, data, seed)
    metrics = score_model(
        problem, result.model, data.preparer, fresh_test_table(settings, problem, repeat),
        train_table=data.train_table, rng=rng_for(settings.seed, problem, "generate-shapes", repeat),
        n_shapes=settings.evaluate.generated_shapes, temperature=settings.problems[problem].model.temperature,
    )
    return RepeatResult(repeat, seed, metrics, result.history, result.best_epoch, result.seconds, result.device)


def run_repeats(settings: Settings, problem: str, root: Path) -> list[RepeatResult]:
    """All ``evaluate.repeats`` runs, ``evaluate.workers`` at a time in spawned processes."""
    repeats, workers = settings.evaluate.repeats, min(settings.evaluate.workers, settings.evaluate.repeats)
    if workers <= 1:
        return [run_repeat(settings, problem, r, root) for r in range(repeats)]
    # Spawned (not forked) workers: JAX and XLA thread pools do not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(run_repeat, settings, problem, r, root) for r in range(repeats)]
        return [f.result() for f in futures]
