"""Train every problem's architecture under the current Keras backend and report skill and speed.

Run once per backend, each in its own process (the backend is fixed at Keras' import)::

    KERAS_BACKEND=tensorflow python -m lstmops.modeling.backend_check --rows 400 --epochs 4 -o tf.json
    KERAS_BACKEND=jax        python -m lstmops.modeling.backend_check --rows 400 --epochs 4 -o jax.json

Each problem is drawn from its process in ``params.yaml`` (the moving line at ``--frame``
pixels a side), prepared with its own preparer, trained with its configured
architecture, model settings and loss for ``--epochs`` epochs, once per seed (the same
seeds under every backend), and scored with its primary metric on fresh test rows.
The output holds, per problem, the scores per seed and the seconds of each epoch (the
first includes compiling). ``tests/test_backends.py`` compares the two backends' skill;
``benchmarks/bench_backends.py`` their time per epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@contextmanager
def _epoch_times() -> Iterator[list[float]]:
    """Seconds of each epoch of the Keras fits inside the block (``training.fit`` takes no callbacks,
    so one is added to every ``Model.fit`` call for the while)."""
    import keras

    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.started)

    original = keras.Model.fit

    def timed_fit(model, *args, **kwargs):
        return original(model, *args, **(kwargs | {"callbacks": [*(kwargs.get("callbacks") or []), Clock()]}))

    keras.Model.fit = timed_fit
    try:
        yield times
    finally:
        keras.Model.fit = original


def check_problem(settings: Any, problem: str, rows: int, epochs: int, seeds: list[int], frame: int,
                  test_rows: int) -> dict:
    """Scores per seed and seconds per epoch of ``problem`` under the current backend."""
    from lstmops.features.preparers import make_preparer
    from lstmops.modeling.evaluation import score_model
    from lstmops.modeling.training import fit, make_task
    from lstmops.problems import get_problem
    from lstmops.seeding import rng_for

    cfg = settings.problems[problem]
    module = get_problem(problem)
    process = cfg.process.model_copy(update={"size": frame}) if problem == "moving_square" else cfg.process
    tables = {split: module.generate(process, n, rng_for(settings.seed, problem, "backend-check", split))
              for split, n in (("train", rows), ("validation", max(32, rows // 5)), ("test", test_rows))}
    preparer = make_preparer(problem, process, policy="clip").fit(tables["train"])  # small fits: clip, not reject
    train_xy = (preparer.inputs(tables["train"]), preparer.targets(tables["train"]))
    val_xy = (preparer.inputs(tables["validation"]), preparer.targets(tables["validation"]))
    task = make_task(module, preparer.input_shape, preparer.target_shape, rows, cfg.train)
    train = cfg.train.model_copy(update={"epochs": epochs, "patience": 0, "train_rows": None})
    scores, seconds = [], []
    for seed in seeds:
        with _epoch_times() as times:
            result = fit(cfg.architecture, cfg.model, task, train_xy, val_xy, train, seed)
        metrics = score_model(problem, result.model, preparer, tables["test"], train_table=tables["train"],
                              rng=np.random.default_rng(seed), n_shapes=200, temperature=cfg.model.temperature)
        scores.append(float(metrics[module.PRIMARY_METRIC]))
        seconds.append(times)
    return {"metric": module.PRIMARY_METRIC, "higher_is_better": bool(module.HIGHER_IS_BETTER),
            "architecture": cfg.architecture, "scores": scores, "epoch_seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=None, help="params.yaml (default: the repository's)")
    parser.add_argument("--problems", nargs="*", default=None)
    parser.add_argument("--rows", type=int, default=400, help="training rows per problem")
    parser.add_argument("--test-rows", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--frame", type=int, default=12, help="moving line: pixels a side")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)

    from lstmops import paths
    from lstmops.config import load_settings
    from lstmops.modeling.training import use_default_backend

    use_default_backend()
    import keras

    settings = load_settings(args.params or paths.params_file())
    out = {"backend": keras.backend.backend(), "rows": args.rows, "epochs": args.epochs, "seeds": args.seeds,
           "problems": {}}
    for problem in args.problems or list(settings.problems):
        out["problems"][problem] = check_problem(settings, problem, args.rows, args.epochs, args.seeds, args.frame,
                                                 args.test_rows)
    args.output.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
