"""The project's own training method, timed to the reference skill, for ``bench_training.py``.

``run_ours`` starts the clock, then does what the project does for one problem, with
the settings of ``params.yaml``: draws the training split with the project's
generators (``generate_at``, at the configured size and build date), fits the
problem's preparer on it and prepares the model-ready arrays (the moving line's frames
chunk by chunk into uint8, as the prepare stage writes them), draws 1,000 fresh
validation sequences for the skill check and prepares them, builds and compiles the
configured architecture (``build_model`` with the task of ``make_task``, so the
cosine schedule spans the configured epochs), and fits with the configured batch size
and epochs. After every epoch a Keras callback scores the model on the check set the
way ``lstmops.modeling.evaluation.score_model`` does (the prepared check inputs are kept, not
re-prepared each epoch) and stops the clock, and training, at the first epoch end where
the skill reaches its target. The check's own time is inside the clock.
"""

from __future__ import annotations

import operator
import time
from pathlib import Path
from typing import Any

import numpy as np

CHECK_N = 1000             # fresh validation sequences scored after each epoch
CHUNK_ROWS = 500           # moving line: frames rendered this many rows at a time (as stages/prepare.py)
OPERATORS = {">=": operator.ge, "<=": operator.le}


def prepared_inputs(preparer: Any, table: Any) -> np.ndarray:
    """Model inputs of ``table``; frames chunk by chunk into one preallocated uint8 array."""
    if not hasattr(preparer, "inputs_chunks"):
        return preparer.inputs(table)
    inputs = np.empty((len(table), *preparer.input_shape), dtype=np.uint8)
    start = 0
    for chunk in preparer.inputs_chunks(table, CHUNK_ROWS):
        inputs[start:start + len(chunk)] = chunk
        start += len(chunk)
    return inputs


def reached(metrics: dict[str, float], criteria: list[dict[str, Any]]) -> bool:
    """Whether every criterion ``{"metric", "op", "value"}`` holds."""
    return all(OPERATORS[c["op"]](metrics[c["metric"]], c["value"]) for c in criteria)


def run_ours(name: str, params_path: str, criteria: list[dict[str, Any]], epochs: int | None = None) -> dict[str, Any]:
    """Time the project's method on ``name`` until ``criteria`` hold at an epoch end (or epochs run out)."""
    import keras

    from lstmops.modeling.architectures import build_model
    from lstmops.config import load_settings
    from lstmops.data.drift import generate_at
    from lstmops.problems.rectangles import draw as generate_rectangles
    from lstmops.features.preparers import PREPARERS
    from lstmops.problems import PROBLEMS, rectangles
    from lstmops.seeding import int_seed_for, rng_for
    from lstmops.modeling.training import make_task, predict

    settings = load_settings(Path(params_path))
    cfg = settings.problems[name]
    module = PROBLEMS[name]
    seed = int_seed_for(settings.seed, name, "fit", 0)
    epochs = epochs or cfg.train.epochs

    start = time.perf_counter()
    table = generate_at(module, cfg.process, cfg.drift, cfg.sizes.train, rng_for(settings.seed, name, "train"),
                        settings.as_of)
    preparer = PREPARERS[name](cfg.process, settings.prepare.out_of_range, settings.prepare.tolerance).fit(table)
    x, y = prepared_inputs(preparer, table), preparer.targets(table)
    if cfg.train.train_rows is not None:
        x, y = x[:cfg.train.train_rows], y[:cfg.train.train_rows]
    check = generate_at(module, cfg.process, cfg.drift, CHECK_N, rng_for(settings.seed, name, "validation"),
                        settings.as_of)
    x_check = None if name == "rectangles" else prepared_inputs(preparer, check)
    prepared = time.perf_counter()
    task = make_task(module, preparer.input_shape, preparer.target_shape, len(x), cfg.train)
    keras.utils.set_random_seed(seed)
    model = build_model(cfg.architecture, cfg.model, task)
    built = time.perf_counter()

    def skill(epoch: int) -> dict[str, float]:
        if name == "rectangles":
            shapes = generate_rectangles(model, preparer, CHECK_N, rng_for(settings.seed, name, "check-shapes", epoch),
                                         temperature=cfg.model.temperature)
            metrics = rectangles.shape_metrics(shapes, table)
            # Informative, like for like with the reference's one deterministic shape: ours at temperature 0.
            origin_shape = generate_rectangles(model, preparer, 1, rng_for(settings.seed, name, "check-t0"), 0.0)
            metrics["geometric_error_t0"] = float(rectangles.geometric_error(origin_shape)[0])
            return metrics
        decoded = preparer.decode(predict(model, x_check))
        metrics = module.score(check, decoded)
        if name == "moving_square":  # the reference's skill is on 100 sequences: the first 100 of the 1,000
            metrics["accuracy_100"] = module.score(check.iloc[:100], decoded[:100])["accuracy"]
        return metrics

    log: list[dict[str, Any]] = []
    outcome: dict[str, Any] = {"reached": False}

    class SkillCheck(keras.callbacks.Callback):
        """Score on the check set after each epoch; stop the clock and training once the target is met."""

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            checking = time.perf_counter()
            metrics = skill(epoch)
            now = time.perf_counter()
            ok = reached(metrics, criteria)
            log.append({"epoch": epoch + 1, "elapsed_s": now - start, "check_s": now - checking,
                        "loss": float((logs or {}).get("loss", float("nan"))), "metrics": metrics, "reached": ok})
            if ok:
                outcome.update(reached=True, seconds=now - start, epoch=epoch + 1, skill=metrics)
                self.model.stop_training = True

    model.fit(x, y, batch_size=cfg.train.batch_size, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[SkillCheck()])
    ended = time.perf_counter()
    if not outcome["reached"]:
        outcome.update(seconds=ended - start, epoch=len(log), skill=log[-1]["metrics"] if log else {})
    return {
        **outcome,
        "epochs_planned": epochs,
        "parts": {"data_and_prepare_s": prepared - start, "build_compile_s": built - prepared,
                  "first_epoch_s": (log[0]["elapsed_s"] - log[0]["check_s"] - (built - start)) if log else None,
                  "check_s_total": sum(e["check_s"] for e in log)},
        "epochs": log,
        "settings": {"architecture": cfg.architecture, "model": cfg.model.model_dump(mode="json"),
                     "train": cfg.train.model_dump(mode="json"), "train_size": int(len(x)), "fit_seed": seed},
    }
