"""Step 3 of the update process on echo at tiny sizes: data, every arm, divergence, workers, realisation."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from lstmops.config import parse_settings
from lstmops.problems import get_problem
from lstmops.update import candidates as cand

ECHO = get_problem("echo")
SETTINGS = {
    "seed": 3, "as_of": "2026-11-01",
    "problems": {"echo": {
        "architecture": "vanilla", "process": {"out_index": 2},
        "sizes": {"train": 400, "validation": 50, "test": 50},
        "model": {"cells": 16, "learning_rate": 0.02},
        "train": {"batch_size": 32, "epochs": 2, "patience": 1},
    }},
    "update": {"old_size": 300, "extra_epochs": 3, "lr_factor": 1.0, "repeats": 1},
}


def _echo(n: int, out_index: int, seed: int):
    return ECHO.generate(ECHO.Params(out_index=out_index), n, np.random.default_rng(seed))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny trained echo champion in a tmp registry, one run's data, and every arm trained once."""
    from lstmops import paths
    from lstmops.data.io import write_table
    from lstmops.features.preparers import make_preparer
    from lstmops.modeling.bundle import save_bundle
    from lstmops.modeling.training import fit, make_task
    from lstmops.registry.versions import Registry

    tmp = tmp_path_factory.mktemp("update")
    settings = parse_settings(SETTINGS)
    cfg = settings.problems["echo"]
    old = _echo(400, 2, 1)
    write_table(old, paths.raw_split("echo", "train", tmp))
    preparer = make_preparer("echo", cfg.process).fit(old)
    task = make_task(ECHO, preparer.input_shape, preparer.target_shape, len(old), cfg.train)
    result = fit("vanilla", cfg.model, task, (preparer.inputs(old), preparer.targets(old)), None, cfg.train, 7)
    meta = {"problem": "echo", "architecture": "vanilla", "seed": 7, "settings": json.loads(cfg.model_dump_json())}
    save_bundle(result.model, preparer, meta, tmp / "bundle")
    registry = Registry(url=f"sqlite:///{tmp / 'registry.db'}", folder=tmp / "registry")
    champion = registry.register("echo", tmp / "bundle").version
    run_dir = paths.update_run_dir("echo", "run1", tmp)
    data = cand.prepare_update_data(settings, "echo", champion, _echo(600, 3, 2), _echo(200, 3, 3), tmp, run_dir, 5)
    jobs = cand.plan_jobs(settings, "echo", data, 1)
    results = [cand.run_job(job) for job in jobs]
    return dict(settings=settings, registry=registry, champion=champion, data=data, jobs=jobs, results=results,
                run_dir=run_dir)


def test_data_layout(world):
    data = world["data"]
    assert data.train_rows == (270, 540) and data.val_rows == (30, 60) and data.eval_examples == 200
    x, y = cand.arm_arrays(data, "old+new", "train")
    assert x.shape == (810, 5, 10) and y.shape == (810, 10) and isinstance(x.base, np.memmap)
    assert (data.champion_dir / "model.weights.h5").is_file()
    assert cand.UpdateData.load(world["run_dir"]) == data  # a re-run finds the completed data


def test_plan_seeds_and_extra_repeats(world):
    jobs, settings, data = world["jobs"], world["settings"], world["data"]
    assert [j.arm for j in jobs] == list(cand.ARMS) and len({j.seed for j in jobs}) == 5
    more = cand.plan_jobs(settings, "echo", data, 2, start=1)
    assert {j.repeat for j in more} == {1, 2} and not {j.seed for j in more} & {j.seed for j in jobs}
    assert cand.plan_jobs(settings, "echo", data, 1)[0].seed == jobs[0].seed  # deterministic
    assert {j.epochs for j in jobs if j.arm in ("a", "b", "baseline")} == {3}


def test_every_arm_gives_a_matrix_and_weights(world):
    results, run_dir = world["results"], world["run_dir"]
    matrices = cand.arm_matrices(results)
    assert set(matrices) == set(cand.ARMS) and all(m.shape == (1, 200) for m in matrices.values())
    assert not any(r.diverged for r in results) and cand.diverged_counts(results) == dict.fromkeys(cand.ARMS, 0)
    for arm in cand.ARMS:
        assert (run_dir / "arms" / arm / "r0.weights.h5").is_file()


def test_drift_makes_arm_a_beat_the_deployed_model(world):
    deployed = np.mean(cand.score_deployed(world["data"]))
    arm_a = cand.arm_matrices(world["results"])["a"].mean()
    assert arm_a > deployed + 0.1, (arm_a, deployed)


def test_divergence_is_flagged_not_raised(world):
    job = dataclasses.replace(next(j for j in world["jobs"] if j.arm == "a"), lr_factor=float("nan"), repeat=9)
    result = cand.run_job(job)
    assert result.diverged and np.isnan(result.values).all()
    matrices = cand.arm_matrices([*world["results"], result])
    assert matrices["a"].shape == (1, 200) and cand.diverged_counts([result]) == {"a": 1}


def test_jobs_run_in_spawned_processes(world):
    jobs = [dataclasses.replace(j, repeat=5) for j in world["jobs"] if j.arm in ("a", "c")]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(cand.run_job, jobs))
    assert [r.arm for r in results] == ["a", "c"] and all(len(r.values) == 200 for r in results)


def test_median_repeat_is_the_typical_one_not_the_luckiest():
    def result(repeat, loss, diverged=False):
        return cand.ArmResult("a", repeat, repeat, [0.0], loss, 1, 0.0, diverged)

    results = [result(0, 0.3), result(1, 0.1), result(2, 0.2), result(3, float("nan"), True), result(4, 0.5)]
    assert cand.median_repeat(results, "a").repeat == 2  # losses 0.1 0.2 0.3 0.5: the lower middle
    with pytest.raises(ValueError):
        cand.median_repeat([result(0, float("nan"), True)], "a")


def test_realize_registers_and_predicts_like_the_trained_repeat(world):
    from lstmops.serving.predict import open_version
    from lstmops.modeling.training import predict

    job = next(j for j in world["jobs"] if j.arm == "a")
    results = [*world["results"], cand.run_job(dataclasses.replace(job, repeat=1, seed=job.seed + 1))]
    chosen = cand.median_repeat(results, "a")
    assert chosen.val_loss == min(r.val_loss for r in results if r.arm == "a")
    folder = cand.realize(world["settings"], "echo", "a", results, world["data"], world["champion"],
                          world["run_dir"], {"verdict": "PROMOTE"})
    version = world["registry"].register("echo", folder).version
    assert version.version == 2 and version.metadata["lineage"]["parent_version"] == 1
    assert version.metadata["update"]["repeat"] == chosen.repeat
    assert (folder / "model.json").read_bytes() == (world["champion"].folder / "model.json").read_bytes()
    served = open_version(world["registry"], "echo", 2)
    x = np.load(world["data"].folder + "/X_eval.npy")
    saved = np.load(world["run_dir"] / "arms" / "a" / f"r{chosen.repeat}.outputs.npy")
    np.testing.assert_allclose(predict(served.model, x), saved, atol=1e-6)
    table = __import__("pandas").read_parquet(world["data"].folder + "/eval.parquet")
    values = ECHO.per_example(table, served.preparer.decode(predict(served.model, x)))
    np.testing.assert_array_equal(values, chosen.values)


def test_generative_arm_scores_drawn_shapes(tmp_path):
    """Rectangles: values are per-example errors of shapes drawn with the run's common random stream."""
    from lstmops import paths
    from lstmops.data.io import write_table
    from lstmops.registry.versions import Registry
    from tiny_bundles import save_tiny_bundle

    rect = get_problem("rectangles")
    settings = parse_settings({
        "seed": 3, "as_of": "2026-11-01",
        "problems": {"rectangles": {"architecture": "generative", "sizes": {"train": 60, "validation": 9, "test": 9},
                                    "model": {"cells": 4, "mixtures": 2, "temperature": 0.5},
                                    "train": {"epochs": 1, "batch_size": 32}}},
        "update": {"old_size": 60, "extra_epochs": 1}})
    rows = rect.generate(rect.Params(), 150, np.random.default_rng(4))
    write_table(rows[:60], paths.raw_split("rectangles", "train", tmp_path))
    registry = Registry(url=f"sqlite:///{tmp_path / 'r.db'}", folder=tmp_path / "registry")
    champion = registry.register("rectangles", save_tiny_bundle("rectangles", tmp_path / "bundle")).version
    run_dir = paths.update_run_dir("rectangles", "g1", tmp_path)
    data = cand.prepare_update_data(settings, "rectangles", champion, rows[60:120], rows[120:], tmp_path, run_dir, 1)
    assert data.generative and data.train_rows == (3 * 54, 3 * 54) and data.temperature == 0.5
    job = next(j for j in cand.plan_jobs(settings, "rectangles", data, 1) if j.arm == "a")
    result = cand.run_job(job)
    deployed = cand.score_deployed(data)
    assert len(result.values) == len(deployed) == 30 and np.isfinite(deployed).all()
    assert result.diverged or np.isfinite(result.values).all()


@pytest.mark.parametrize("arm", ["a", "c"])  # a continued arm (from the deployed weights) and a fresh one
def test_repeats_of_an_arm_as_replicas_equal_their_one_by_one_runs(world, arm):
    """Batching the repeats of an arm (update.replicas) changes the cost, not the results."""
    settings, data = world["settings"], world["data"]
    jobs = [j for j in cand.plan_jobs(settings, "echo", data, 3) if j.arm == arm]
    assert [g for g in cand.group_jobs(jobs, 10)] == [jobs] and len(cand.group_jobs(jobs, 2)) == 2
    together = cand.run_jobs(jobs)
    alone = [cand.run_job(job) for job in jobs]
    for a, b in zip(together, alone):
        assert (a.arm, a.repeat, a.seed, a.epochs) == (b.arm, b.repeat, b.seed, b.epochs)
        assert not a.diverged and a.val_loss == pytest.approx(b.val_loss, rel=1e-3)
        assert np.mean(a.values) == pytest.approx(np.mean(b.values), abs=0.01)
    assert len({round(r.val_loss, 6) for r in together}) == 3  # each replica is its own model
