"""Tiny but real model bundles of the six problems, built once per test session.

Each bundle is an untrained Keras model of the problem's own architecture at tiny
sizes, with a preparer fitted on a small generated table and saved by
``lstmops.modeling.bundle.save_bundle``: exactly what the finalize stage writes, minus training.
``save_tiny_bundle(..., narrow=True)`` fits the cumulative-sum preparer on values in
[0, 0.5] only, so that an input of 0.9 is inside the data contract but outside the
fitted range: the case of the out-of-range policy (``reject`` or ``clip``).
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")

ARCHITECTURE = {"echo": "vanilla", "damped_sine": "stacked", "moving_square": "cnn_lstm",
                "addition": "encoder_decoder", "cumulative_sum": "bidirectional", "rectangles": "generative"}
PROCESS = {"damped_sine": {"length": 10, "n_out": 3}, "moving_square": {"size": 8}}
SPEC = {"cells": 4, "decoder_cells": 3, "filters": 2, "mixtures": 2, "temperature": 0.5}
TOLERANCE = 0.01

PARAMS_YAML = """\
seed: 5
as_of: "2026-11-01"
problems:
  echo: {architecture: vanilla, sizes: {train: 20, validation: 10, test: 10}}
  damped_sine:
    architecture: stacked
    process: {length: 10, n_out: 3}
    sizes: {train: 20, validation: 10, test: 10}
    drift:   # a shape change, to rehearse its rejection by predict
      - {kind: sudden, start: "2030-01-01", set: {length: 12}}
  moving_square: {architecture: cnn_lstm, process: {size: 8}, sizes: {train: 20, validation: 10, test: 10}}
  addition: {architecture: encoder_decoder, sizes: {train: 20, validation: 10, test: 10}}
  cumulative_sum:
    architecture: bidirectional
    sizes: {train: 20, validation: 10, test: 10}
  rectangles: {architecture: generative, sizes: {train: 20, validation: 10, test: 10}}
"""


def params_of(problem: str):
    """The tiny process parameters of ``problem``."""
    from lstmops.problems import get_problem

    return get_problem(problem).Params(**PROCESS.get(problem, {}))


def fit_table(problem: str, n: int = 200, narrow: bool = False):
    """The table a tiny preparer is fitted on."""
    from lstmops.problems import get_problem

    table = get_problem(problem).generate(params_of(problem), n, np.random.default_rng(11))
    if narrow and problem == "cumulative_sum":
        columns = [c for c in table.columns if c.startswith("x_")]
        table[columns] = table[columns] * 0.5
    return table


def save_tiny_bundle(problem: str, folder: Path, seed: int = 0, narrow: bool = False,
                     policy: str = "reject") -> Path:
    """Build, and save into ``folder``, an untrained tiny model of ``problem`` (``seed`` varies its weights)."""
    import keras

    from lstmops.modeling.architectures import ModelSpec, build_model
    from lstmops.modeling.bundle import save_bundle
    from lstmops.config import TrainSpec
    from lstmops.features.preparers import make_preparer
    from lstmops.problems import get_problem
    from lstmops.modeling.training import make_task

    keras.utils.set_random_seed(seed)
    preparer = make_preparer(problem, params_of(problem), policy, TOLERANCE).fit(fit_table(problem, narrow=narrow))
    task = make_task(get_problem(problem), preparer.input_shape, preparer.target_shape, 100, TrainSpec())
    spec = ModelSpec(**SPEC, layers=2 if problem == "damped_sine" else 1)
    model = build_model(ARCHITECTURE[problem], spec, task)
    metadata = {"problem": problem, "architecture": ARCHITECTURE[problem], "seed": seed,
                "settings": {"architecture": ARCHITECTURE[problem], "model": spec.model_dump()},
                "test_metrics": {"tiny": 0.5}}
    save_bundle(model, preparer, metadata, folder)
    return folder


@functools.lru_cache(maxsize=None)
def tiny_bundles() -> dict[str, Path]:
    """One saved tiny bundle per problem (built on first call, removed at exit)."""
    from lstmops.problems import PROBLEMS

    root = Path(tempfile.mkdtemp(prefix="lstmops-bundles-"))
    atexit.register(shutil.rmtree, root, True)
    return {name: save_tiny_bundle(name, root / name) for name in PROBLEMS}


def bundle_copy(problem: str, target: Path) -> Path:
    """A private copy of the tiny bundle of ``problem`` (safe to modify)."""
    shutil.copytree(tiny_bundles()[problem], target)
    return target


def repo_root_with_params(folder: Path) -> Path:
    """A repository root holding the tiny params.yaml (for ``lstmops sample``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "params.yaml").write_text(PARAMS_YAML, encoding="utf-8")
    return folder


def distinct_bundles(folder: Path, n: int = 3) -> list[Path]:
    """``n`` copies of the tiny echo bundle whose metadata (hence checksums) differ: distinct versions."""
    import json

    from lstmops.modeling.bundle import sha256

    out = []
    for i in range(n):
        bundle = bundle_copy("echo", folder / f"bundle{i}")
        meta = json.loads((bundle / "metadata.json").read_text()) | {"variant": i}
        (bundle / "metadata.json").write_text(json.dumps(meta))
        sums = json.loads((bundle / "checksums.json").read_text()) | {"metadata.json": sha256(bundle / "metadata.json")}
        (bundle / "checksums.json").write_text(json.dumps(sums))
        out.append(bundle)
    return out
