"""R seeds trained as one vmapped computation (``fit_replicas``) against R sequential ``fit`` calls.

A replica replays its sequential twin: the same initial weights (built right after
``set_random_seed(seed)``), the same batches (Keras' seeded shuffle stream), the same
dropout masks (its own seed-generator state, advanced by validation too) and the same
early-stopping rule. So the twins agree up to float32 rounding, not just in
distribution, and the tolerances below are rounding tolerances:

* initial weights: exactly equal;
* per-epoch training and validation loss: relative 1e-4 (float32 has ~7 digits; the
  epoch loss is a mean of per-batch means, which fit accumulates in float32 and the
  replicas in float64, and vmapped matrix products may sum in another order);
  measured differences are ~1e-7;
* final weights and predictions: absolute 1e-4 (tiny models, a few epochs: rounding
  differences do not grow beyond that); measured: bit-identical on CPU;
* mean score over the replicas: absolute 1e-3.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tiny_bundles import ARCHITECTURE, SPEC, params_of

SEEDS = [11, 12, 13, 14]
CURVE_RTOL = 1e-4
WEIGHT_ATOL = 1e-4
SCORE_ATOL = 1e-3


def tiny_problem(problem: str, n_train: int = 64, n_val: int = 24, **spec_overrides):
    """(task, spec, train_xy, val_xy, preparer) of ``problem`` at tiny sizes."""
    from lstmops.features.preparers import make_preparer
    from lstmops.modeling.architectures import ModelSpec
    from lstmops.modeling.training import make_task
    from lstmops.config import TrainSpec
    from lstmops.problems import get_problem

    module = get_problem(problem)
    table = module.generate(params_of(problem), n_train + n_val, np.random.default_rng(3))
    preparer = make_preparer(problem, params_of(problem), "reject", 0.01).fit(table)
    x, y = preparer.inputs(table), preparer.targets(table)
    task = make_task(module, preparer.input_shape, preparer.target_shape, n_train, TrainSpec(batch_size=16))
    spec = ModelSpec(**(SPEC | {"layers": 2 if problem == "damped_sine" else 1, "learning_rate": 0.01,
                                "schedule": "cosine", "clipnorm": 1.0} | spec_overrides))
    return task, spec, (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:]), preparer


def after_build(get, hook):
    """A ``get_architecture`` whose architectures call ``hook(model)`` on every model they build."""
    def get_architecture(name):
        module = get(name)

        class Hooked:
            @staticmethod
            def build(spec, task):
                model = module.build(spec, task)
                hook(model)
                return model

        return Hooked

    return get_architecture


@pytest.fixture
def record_initial_weights(monkeypatch):
    """Record every model's weights right after it is built (both paths build through get_architecture)."""
    import lstmops.modeling.replicas as replicas
    import lstmops.modeling.training as training

    built: list[list[np.ndarray]] = []

    def record(model):
        built.append([np.array(w) for w in model.get_weights()])

    monkeypatch.setattr(replicas, "get_architecture", after_build(replicas.get_architecture, record))
    monkeypatch.setattr(training, "get_architecture", after_build(training.get_architecture, record))
    return built


def score(problem: str, model, xy) -> float:
    """Accuracy (echo) or mean absolute error (damped_sine) of ``model`` on ``xy``."""
    pred = np.asarray(model.predict(xy[0], verbose=0))
    if problem == "echo":
        return float((pred.argmax(-1) == xy[1].argmax(-1)).mean())
    return float(np.abs(pred - xy[1]).mean())


@pytest.mark.parametrize("problem, dropout", [("echo", 0.0), ("damped_sine", 0.2)])
def test_replicas_match_sequential_fits(problem, dropout, record_initial_weights):
    from lstmops.config import TrainSpec
    from lstmops.modeling.replicas import fit_replicas
    from lstmops.modeling.training import fit

    task, spec, train_xy, val_xy, _ = tiny_problem(problem, dropout=dropout, recurrent_dropout=dropout / 2)
    train = TrainSpec(batch_size=16, epochs=3, patience=2)
    replicas = fit_replicas(ARCHITECTURE[problem], spec, task, train_xy, val_xy, train, SEEDS)
    initial_replicas = list(record_initial_weights)
    sequential = [fit(ARCHITECTURE[problem], spec, task, train_xy, val_xy, train, seed) for seed in SEEDS]
    initial_sequential = record_initial_weights[len(initial_replicas):]

    assert len(replicas) == len(SEEDS) and all(r.device["replicas"] == str(len(SEEDS)) for r in replicas)
    for a, b in zip(initial_replicas, initial_sequential, strict=True):
        for wa, wb in zip(a, b, strict=True):
            np.testing.assert_array_equal(wa, wb)
    for rep, seq in zip(replicas, sequential):
        assert rep.history.keys() == seq.history.keys() == {"loss", "val_loss"}
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(rep.history[key], seq.history[key], rtol=CURVE_RTOL)
        assert rep.best_epoch == seq.best_epoch
        for wa, wb in zip(rep.model.get_weights(), seq.model.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, atol=WEIGHT_ATOL)
    # The replicas are distinct models, not one model R times.
    assert not np.allclose(replicas[0].model.get_weights()[0], replicas[1].model.get_weights()[0])
    mean_rep = np.mean([score(problem, r.model, val_xy) for r in replicas])
    mean_seq = np.mean([score(problem, s.model, val_xy) for s in sequential])
    assert abs(mean_rep - mean_seq) <= SCORE_ATOL


def test_each_replica_stops_on_its_own_and_keeps_its_best_weights():
    """Noisy tiny validation and patience 1: replicas stop at different epochs, each with its best weights."""
    from lstmops.config import TrainSpec
    from lstmops.modeling.replicas import fit_replicas
    from lstmops.modeling.training import fit

    task, spec, train_xy, val_xy, _ = tiny_problem("echo", n_train=48, n_val=8, learning_rate=0.2,
                                                   schedule="constant", clipnorm=None)
    train = TrainSpec(batch_size=16, epochs=8, patience=1)
    seeds = [1, 2, 3, 4, 5, 6]
    results = fit_replicas("vanilla", spec, task, train_xy, val_xy, train, seeds)
    lengths = [len(r.history["val_loss"]) for r in results]
    assert len(set(lengths)) > 1, f"all replicas ran {lengths} epochs: the case does not exercise per-replica stops"
    assert any(n < train.epochs for n in lengths)
    for r in results:
        assert len(r.history["loss"]) == len(r.history["val_loss"])
        val = r.history["val_loss"]
        assert r.best_epoch == int(np.argmin(val)) + 1
        if len(val) < train.epochs:  # stopped early: patience epochs after the best one
            assert len(val) == r.best_epoch + train.patience
        restored = r.model.evaluate(*val_xy, batch_size=train.batch_size, verbose=0)
        np.testing.assert_allclose(restored, min(val), rtol=CURVE_RTOL)
    # The replica that stopped earliest and the one that ran longest equal their sequential twins.
    for i in {int(np.argmin(lengths)), int(np.argmax(lengths))}:
        twin = fit("vanilla", spec, task, train_xy, val_xy, train, seeds[i])
        np.testing.assert_allclose(results[i].history["val_loss"], twin.history["val_loss"], rtol=CURVE_RTOL)
        for wa, wb in zip(results[i].model.get_weights(), twin.model.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, atol=WEIGHT_ATOL)


def test_a_diverging_replica_does_not_touch_the_others(monkeypatch):
    import lstmops.modeling.replicas as replicas
    from lstmops.config import TrainSpec

    task, spec, train_xy, val_xy, _ = tiny_problem("echo")
    train = TrainSpec(batch_size=16, epochs=3, patience=2)
    seeds = [21, 22, 23]
    clean = replicas.fit_replicas("vanilla", spec, task, train_xy, val_xy, train, seeds)

    built = []

    def poison(model):
        built.append(model)
        if len(built) == 2:  # the second seed's model starts with a NaN weight
            kernel = model.trainable_variables[0]
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    monkeypatch.setattr(replicas, "get_architecture", after_build(replicas.get_architecture, poison))
    dirty = replicas.fit_replicas("vanilla", spec, task, train_xy, val_xy, train, seeds)
    assert np.isnan(dirty[1].history["loss"]).all() and np.isnan(dirty[1].history["val_loss"]).all()
    assert len(dirty[1].history["val_loss"]) == 1 + train.patience  # never improves after epoch 1: stops
    for i in (0, 2):
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(dirty[i].history[key], clean[i].history[key], rtol=1e-6)
        for wa, wb in zip(dirty[i].model.get_weights(), clean[i].model.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, atol=1e-6)
            assert np.isfinite(wa).all()


def test_every_replica_saves_and_reloads_as_an_ordinary_bundle(tmp_path):
    from lstmops.config import TrainSpec
    from lstmops.modeling.bundle import load_bundle, save_bundle
    from lstmops.modeling.replicas import fit_replicas

    task, spec, train_xy, val_xy, preparer = tiny_problem("damped_sine")
    results = fit_replicas("stacked", spec, task, train_xy, val_xy, TrainSpec(batch_size=16, epochs=2), [5, 6, 7])
    outputs = []
    for i, result in enumerate(results):
        folder = tmp_path / f"replica{i}"
        save_bundle(result.model, preparer, {"problem": "damped_sine", "seed": i}, folder)
        model, _, metadata = load_bundle(folder)
        assert metadata["seed"] == i
        in_memory = np.asarray(result.model.predict(val_xy[0], verbose=0))
        np.testing.assert_allclose(np.asarray(model.predict(val_xy[0], verbose=0)), in_memory, atol=1e-6)
        outputs.append(in_memory)
    assert not np.allclose(outputs[0], outputs[1])


def test_one_seed_runs_the_sequential_fit(monkeypatch):
    import lstmops.modeling.replicas as replicas

    calls = []
    monkeypatch.setattr(replicas, "fit", lambda *args, **kw: calls.append(args[6]) or f"fit{args[6]}")
    monkeypatch.setattr(replicas, "_fit_vmapped", lambda *a: pytest.fail("one seed must not be vmapped"))
    assert "single seed" in replicas.fallback_reason(1)
    assert replicas.fit_replicas("vanilla", None, None, (None, None), None, _Train(), [9]) == ["fit9"]
    assert calls == [9]
    assert replicas.fit_replicas("vanilla", None, None, (None, None), None, _Train(), []) == []


def test_other_backends_run_the_sequential_fit(monkeypatch, caplog):
    import keras

    import lstmops.modeling.replicas as replicas

    monkeypatch.setattr(keras.backend, "backend", lambda: "tensorflow")
    monkeypatch.setattr(replicas, "_logged_reasons", set())
    monkeypatch.setattr(replicas, "fit", lambda *args, **kw: f"fit{args[6]}")
    monkeypatch.setattr(replicas, "_fit_vmapped", lambda *a: pytest.fail("only JAX can vmap"))
    assert "tensorflow" in replicas.fallback_reason(3)
    with caplog.at_level(logging.INFO, logger=replicas.__name__):
        for _ in range(2):
            assert replicas.fit_replicas("vanilla", None, None, (None, None), None, _Train(), [1, 2, 3]) == [
                "fit1", "fit2", "fit3"]
    assert sum("tensorflow" in r.message for r in caplog.records) == 1  # logged once


def test_a_model_that_cannot_be_vmapped_runs_the_sequential_fit(monkeypatch, caplog):
    import lstmops.modeling.replicas as replicas

    def unsupported(*args):
        raise replicas.ReplicaUnsupported("NotImplementedError: no batching rule")

    monkeypatch.setattr(replicas, "_logged_reasons", set())
    monkeypatch.setattr(replicas, "_fit_vmapped", unsupported)
    monkeypatch.setattr(replicas, "fit", lambda *args, **kw: f"fit{args[6]}")
    with caplog.at_level(logging.INFO, logger=replicas.__name__):
        out = replicas.fit_replicas("generative", None, None, (None, None), None, _Train(), [1, 2])
    assert out == ["fit1", "fit2"]
    assert any("'generative' does not train under vmap" in r.message for r in caplog.records)


class _Train:
    epochs, patience, batch_size, train_rows = 2, 1, 16, None


@pytest.mark.parametrize("problem", list(ARCHITECTURE))
def test_every_architecture_trains_as_replicas(problem):
    """One epoch of two replicas per architecture; the first equals its sequential twin."""
    from lstmops.config import TrainSpec
    from lstmops.modeling.replicas import ReplicaProgress, fit_replicas
    from lstmops.modeling.training import fit

    task, spec, train_xy, val_xy, _ = tiny_problem(problem, n_train=32, n_val=16)
    train = TrainSpec(batch_size=16, epochs=1, train_rows=24)  # 24 rows: a full and a partial batch
    seen: list[ReplicaProgress] = []
    results = fit_replicas(ARCHITECTURE[problem], spec, task, train_xy, val_xy, train, [3, 4], progress=seen.append)
    assert [r.device["replicas"] for r in results] == ["2", "2"]  # vmapped, not the fallback
    assert [len(r.history["loss"]) for r in results] == [1, 1]
    assert all(np.isfinite(r.history["loss"] + r.history["val_loss"]).all() for r in results)
    assert [(p.epoch, p.done, p.replicas) for p in seen] == [(1, 2, 2)]
    twin = fit(ARCHITECTURE[problem], spec, task, train_xy, val_xy, train, 3)
    np.testing.assert_allclose(results[0].history["loss"], twin.history["loss"], rtol=CURVE_RTOL)
    for wa, wb in zip(results[0].model.get_weights(), twin.model.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, atol=WEIGHT_ATOL)


def test_groups_of_replicas_on_separate_threads_train_as_one_group_does(monkeypatch):
    """Replicas split into groups (one thread each, uneven sizes, some groups stopping before the
    others) give each replica the history and weights it has in one vmapped group."""
    from lstmops.config import TrainSpec
    from lstmops.modeling.replicas import fit_replicas, replica_threads

    task, spec, train_xy, val_xy, _ = tiny_problem("echo", n_train=48, n_val=8, learning_rate=0.2,
                                                   schedule="constant", clipnorm=None)
    train = TrainSpec(batch_size=16, epochs=8, patience=1)
    seeds = [1, 2, 3, 4, 5, 6]
    runs = {}
    for threads in ("1", "4"):
        monkeypatch.setenv("LSTMOPS_REPLICA_THREADS", threads)
        assert replica_threads(len(seeds)) == int(threads)
        runs[threads] = fit_replicas("vanilla", spec, task, train_xy, val_xy, train, seeds)
    lengths = [len(r.history["val_loss"]) for r in runs["1"]]
    assert len(set(lengths)) > 1, f"all replicas ran {lengths} epochs: groups would all stop together"
    for one, split in zip(runs["1"], runs["4"], strict=True):
        assert one.best_epoch == split.best_epoch
        for key in ("loss", "val_loss"):
            np.testing.assert_allclose(split.history[key], one.history[key], rtol=CURVE_RTOL)
        for wa, wb in zip(split.model.get_weights(), one.model.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, atol=WEIGHT_ATOL)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_replica_thread_count_is_named(monkeypatch, value):
    from lstmops.modeling.replicas import replica_threads

    monkeypatch.setenv("LSTMOPS_REPLICA_THREADS", value)
    with pytest.raises(ValueError, match="LSTMOPS_REPLICA_THREADS"):
        replica_threads(10)
    monkeypatch.setenv("LSTMOPS_REPLICA_THREADS", "16")
    assert replica_threads(3) == 3  # never more groups than replicas


def test_side_by_side_processes_share_the_cores(monkeypatch):
    from lstmops.modeling import replicas

    monkeypatch.delenv("LSTMOPS_REPLICA_THREADS", raising=False)
    monkeypatch.setattr(replicas, "usable_cores", lambda: 4)
    assert replicas.share_of_cores(2) == {"LSTMOPS_REPLICA_THREADS": "2"}
    assert replicas.share_of_cores(8) == {"LSTMOPS_REPLICA_THREADS": "1"}
    monkeypatch.setenv("LSTMOPS_REPLICA_THREADS", "3")  # the user's (or an outer process's) choice stands
    assert replicas.share_of_cores(2) == {}


CACHED_FIT = """
import hashlib
import numpy as np
from lstmops.modeling.training import use_compile_cache
use_compile_cache()
from test_replicas import tiny_problem
from lstmops.config import TrainSpec
from lstmops.modeling.replicas import fit_replicas
task, spec, train, val, _ = tiny_problem("echo")
fits = fit_replicas("vanilla", spec, task, train, val, TrainSpec(batch_size=16, epochs=2, patience=2), [11, 12])
digest = hashlib.sha256()
for fit in fits:
    for w in fit.model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    digest.update(repr(fit.history).encode())
print(digest.hexdigest())
"""


def test_compiled_programs_are_cached_between_processes_without_changing_results(tmp_path):
    """The second process loads the first one's programs (no new entries) and trains bit-identically."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    def run(cache: str) -> str:
        path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
        env = os.environ | {"LSTMOPS_JAX_CACHE": cache, "KERAS_BACKEND": "jax", "PYTHONPATH": path}
        done = subprocess.run([sys.executable, "-c", CACHED_FIT], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1]

    cache = tmp_path / "jax-cache"
    first = run(str(cache))
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "the first process stored no compiled program"
    assert run(str(cache)) == first
    assert sorted(p.name for p in cache.iterdir()) == entries  # every program came from the cache
    assert run("off") == first


def test_an_unusable_compile_cache_folder_is_named(tmp_path, monkeypatch):
    """A cache folder that cannot be created is a one-line configuration error, before any training."""
    from lstmops.errors import ConfigError
    from lstmops.modeling.training import use_compile_cache

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LSTMOPS_JAX_CACHE", str(blocker / "jax"))
    with pytest.raises(ConfigError, match=r"LSTMOPS_JAX_CACHE: cannot keep the compile cache in .*a-file/jax"):
        use_compile_cache()
