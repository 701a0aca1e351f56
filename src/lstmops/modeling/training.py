"""Fit one model: seeded, batched, early-stopped on validation loss, on a GPU when present.

Keras is imported inside functions so that importing this module stays cheap.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmops.modeling.architectures import ModelSpec, Task, get_architecture
from lstmops.config import TrainSpec
from lstmops.errors import ConfigError


def use_default_backend() -> None:
    """Pick the JAX backend unless the user chose another; must run before Keras is imported.

    On GPUs JAX would run float32 matrix products in TF32 by default; the small LSTMs here
    then train erratically, so full float32 precision is the default. JAX also would
    grab 75% of GPU memory per process, which starves the side-by-side evaluation workers.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("JAX_DEFAULT_MATMUL_PRECISION", "highest")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


CACHE_ENV = "LSTMOPS_JAX_CACHE"
CACHE_MAX_BYTES = 2 * 1024**3  # JAX deletes the least recently used programs above this


def compile_cache_dir() -> Path | None:
    """Where JAX keeps compiled programs between processes: ``$LSTMOPS_JAX_CACHE`` ("off" disables),
    else ``$XDG_CACHE_HOME/lstmops/jax`` (``~/.cache/lstmops/jax``)."""
    setting = os.environ.get(CACHE_ENV)
    if setting is not None:
        return None if setting.strip().lower() in ("", "off", "0", "none") else Path(setting)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "lstmops" / "jax"


def use_compile_cache() -> None:
    """Keep this process's compiled JAX programs on disk and reuse earlier ones (JAX backend only).

    Compiling a model's training and predict programs is a fixed cost of every process
    that trains or serves it: about 10 s of an evaluate stage's 21 s for the echo. The
    programs of the same model, shapes and library versions are the same each time, so
    ``dvc repro``, the update flow's arm-repeats and ``lstmops predict`` load them from
    the cache after their first run. Loading gives the same executable as compiling, so
    results do not change. The folder is capped at :data:`CACHE_MAX_BYTES`.
    """
    use_default_backend()
    folder = compile_cache_dir()
    if folder is None or os.environ.get("KERAS_BACKEND") != "jax":
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{CACHE_ENV}: cannot keep the compile cache in {folder} ({err.strerror or err}); "
                          f"set it to a writable folder, or to 'off'") from err
    import jax

    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)


def set_seed(seed: int) -> None:
    """``keras.utils.set_random_seed(seed)`` (Keras, NumPy and Python), without TensorFlow under another backend.

    Keras also seeds TensorFlow whenever it is importable (for ``tf.data`` pipelines,
    which lstmops does not use): with TensorFlow installed that costs every training
    process a 5-second import under JAX. Keras asks its lazy ``tensorflow`` module whether
    it is available; answering "no" first, under another backend only and while nothing
    else has imported TensorFlow, skips the import and nothing else.
    """
    use_default_backend()
    import keras

    if keras.backend.backend() != "tensorflow":
        from keras.src.utils import module_utils

        if module_utils.tensorflow.module is None:
            module_utils.tensorflow._available = False  # noqa: SLF001 - see above
    keras.utils.set_random_seed(seed)


def device_info() -> dict[str, str]:
    """The Keras backend and the device it computes on (a GPU is used automatically when present)."""
    use_default_backend()
    import keras

    backend = keras.backend.backend()
    info = {"backend": backend, "keras": keras.__version__, "device": "cpu"}
    if backend == "jax":
        import jax

        dev = jax.devices()[0]
        info |= {"device": dev.platform, "device_kind": dev.device_kind, "jax": jax.__version__}
    return info


def make_task(problem: Any, input_shape: tuple, target_shape: tuple, n_train: int, train: TrainSpec) -> Task:
    """The task a problem poses, with the optimiser steps a full fit would take."""
    steps = max(1, -(-n_train // train.batch_size)) * train.epochs
    return Task(
        input_shape=tuple(input_shape), output_shape=tuple(target_shape),
        head=problem.HEAD, loss=train.loss or problem.LOSS, steps_per_run=steps,
    )


@dataclass
class FitResult:
    """A fitted model and what happened while fitting it."""

    model: Any
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float
    device: dict[str, str] = field(default_factory=dict)


def fit(
    architecture: str, spec: ModelSpec, task: Task, train_xy: tuple[np.ndarray, np.ndarray],
    val_xy: tuple[np.ndarray, np.ndarray] | None, train: TrainSpec, seed: int, epochs: int | None = None,
) -> FitResult:
    """Build and fit a model; with validation data, stop early and keep the best weights.

    Args:
        architecture: a name from ``ARCHITECTURE_NAMES``.
        spec, task: model settings and what the problem asks of it.
        train_xy: training inputs and targets (uint8 inputs are cast inside the model).
        val_xy: validation inputs and targets, or None to train a fixed number of epochs.
        train: batch size, epochs and patience.
        seed: seeds Keras, NumPy and Python for this fit.
        epochs: overrides ``train.epochs`` (finalisation uses the epochs found best).
    """
    use_default_backend()
    import keras

    set_seed(seed)
    model = get_architecture(architecture).build(spec, task)
    callbacks = []
    if val_xy is not None and train.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=train.patience, restore_best_weights=True))
    x, y = train_xy
    if train.train_rows is not None:
        x, y = x[: train.train_rows], y[: train.train_rows]
    started = time.perf_counter()
    hist = model.fit(
        x, y, batch_size=train.batch_size, epochs=epochs or train.epochs, validation_data=val_xy,
        callbacks=callbacks, shuffle=True, verbose=0,
    ).history
    seconds = time.perf_counter() - started
    history = {k: [float(v) for v in vals] for k, vals in hist.items()}
    best = int(np.argmin(history["val_loss"])) + 1 if "val_loss" in history else len(history["loss"])
    return FitResult(model=model, history=history, best_epoch=best, seconds=seconds, device=device_info())


def predict(model: Any, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Raw model outputs for model-ready inputs, in large batches."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
