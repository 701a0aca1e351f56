"""Benchmark: R repeated trainings as one vmapped computation against one sequential ``fit``.

For each problem, in one process and side by side: the wall time of one sequential
``lstmops.modeling.training.fit`` (R=1) and of ``lstmops.modeling.replicas.fit_replicas``
with R=10 and R=30 seeds, all at the problem's ``params.yaml`` settings (architecture,
model, batch size, patience) on the prepared arrays of a real build
(``<root>/data/prepared/<problem>/``, read only). Every clock covers building,
compiling and training, as a repeat of ``dvc repro`` pays them. The mean final
validation loss per R shows that the batched replicas train as well as the single fit.

``--epochs`` caps the epochs (default 1: at the default sizes R=30 of ten epochs takes
far longer than a benchmark should on 2 shared cores); the ratio of the times is what
matters, and per-epoch cost is the same in every epoch. The target of the issue:
time(R=10) / time(R=1) <= 2.5, i.e. ten repeats for the price of 2.5.

Usage: ``KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_replicas.py [--root .]
[--problems echo damped_sine] [--replicas 10 30] [--epochs 1] [--out benchmarks/results/replicas.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "jax")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

PROBLEMS = ["echo", "damped_sine", "addition", "cumulative_sum"]


def fit_args(settings, problem: str, root: Path) -> tuple:
    """``(cfg, n_train, args)``: the problem's settings, its training rows, and the positional
    arguments of ``fit``/``fit_replicas`` (architecture, model, task, train_xy, validation, train)
    on the build's prepared arrays; train_xy holds the first n_train rows."""
    from lstmops.modeling.experiment import load_problem_data
    from lstmops.modeling.training import make_task
    from lstmops.problems import get_problem

    cfg = settings.problems[problem]
    data = load_problem_data(problem, root)
    n_train = min(len(data.train[0]), cfg.train.train_rows or len(data.train[0]))
    task = make_task(get_problem(problem), data.preparer.input_shape, data.preparer.target_shape, n_train, cfg.train)
    train_xy = (np.asarray(data.train[0])[:n_train], np.asarray(data.train[1])[:n_train])
    return cfg, n_train, (cfg.architecture, cfg.model, task, train_xy, data.validation, cfg.train)


def bench_problem(settings, problem: str, root: Path, replicas: list[int], epochs: int | None) -> dict:
    from lstmops.modeling.replicas import fit_replicas, replica_threads
    from lstmops.modeling.training import fit

    cfg, n_train, args = fit_args(settings, problem, root)
    seeds = [1000 + i for i in range(max(replicas))]
    row: dict = {"architecture": cfg.architecture, "train_rows": n_train, "batch_size": cfg.train.batch_size,
                 "epochs": epochs or cfg.train.epochs, "runs": {}}

    started = time.perf_counter()
    single = fit(*args, seed=seeds[0], epochs=epochs)
    row["runs"]["1"] = {"seconds": round(time.perf_counter() - started, 2),
                        "val_loss_mean": float(np.min(single.history["val_loss"])),
                        "epochs_run": [len(single.history["loss"])]}
    print(f"{problem}: R=1 {row['runs']['1']['seconds']} s", flush=True)
    for r in replicas:
        started = time.perf_counter()
        results = fit_replicas(*args, seeds=seeds[:r], epochs=epochs)
        seconds = time.perf_counter() - started
        best = np.array([np.min(x.history["val_loss"]) for x in results])
        row["runs"][str(r)] = {"seconds": round(seconds, 2), "val_loss_mean": float(np.nanmean(best)),
                               "val_loss_std": float(np.nanstd(best)),
                               "epochs_run": [len(x.history["loss"]) for x in results],
                               "vmapped": results[0].device.get("replicas") == str(r),
                               "thread_groups": replica_threads(r)}
        print(f"{problem}: R={r} {row['runs'][str(r)]['seconds']} s", flush=True)
    t1 = row["runs"]["1"]["seconds"]
    row["ratio_to_single"] = {str(r): round(row["runs"][str(r)]["seconds"] / t1, 2) for r in replicas}
    row["speedup_vs_sequential"] = {str(r): round(r * t1 / row["runs"][str(r)]["seconds"], 1) for r in replicas}
    return row


def warm_up() -> None:
    """One tiny fit and one tiny replica fit before any clock: JAX and XLA initialise once per process."""
    from lstmops.config import TrainSpec
    from lstmops.modeling.architectures import ModelSpec, Task
    from lstmops.modeling.replicas import fit_replicas
    from lstmops.modeling.training import fit

    rng = np.random.default_rng(0)
    x, y = rng.random((32, 3, 2), dtype=np.float32), rng.random((32, 1), dtype=np.float32)
    task = Task(input_shape=(3, 2), output_shape=(1,), head="linear", loss="mse", steps_per_run=2)
    train = TrainSpec(batch_size=16, epochs=1)
    fit("vanilla", ModelSpec(cells=2), task, (x, y), (x, y), train, seed=0)
    fit_replicas("vanilla", ModelSpec(cells=2), task, (x, y), (x, y), train, seeds=[0, 1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="a built repository (read only)")
    parser.add_argument("--params", type=Path, default=None, help="params.yaml (default: <root>/params.yaml)")
    parser.add_argument("--problems", nargs="+", default=PROBLEMS)
    parser.add_argument("--replicas", nargs="+", type=int, default=[10, 30])
    parser.add_argument("--epochs", type=int, default=1, help="epochs per fit (0 = the params.yaml epochs)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replicas.json")
    opts = parser.parse_args(argv)

    from lstmops.config import load_settings
    from lstmops.modeling.training import device_info, use_default_backend

    use_default_backend()
    settings = load_settings(opts.params or opts.root / "params.yaml")
    epochs = opts.epochs or None
    warm_up()
    report = {
        "what": ("wall time of one sequential fit (R=1) vs fit_replicas with R seeds, build+compile+train, "
                 "in one process after a tiny warm-up fit (JAX/XLA start-up is not charged to either); "
                 "the R replicas train in thread_groups groups, one per core (LSTMOPS_REPLICA_THREADS)"),
        "target": "seconds(R=10) / seconds(R=1) <= 2.5",
        "epochs_note": (f"epochs capped at {epochs} (params.yaml epochs would take too long at R=30 on this "
                        "machine); val_loss_mean is the mean over replicas of each one's best validation loss"
                        if epochs else "params.yaml epochs with early stopping"),
        "device": device_info(), "cpus": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),
        "problems": {},
    }
    for problem in opts.problems:
        report["problems"][problem] = bench_problem(settings, problem, opts.root, opts.replicas, epochs)
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")  # partial results survive
    report["load_average_at_end"] = list(os.getloadavg())
    opts.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    for problem, row in report["problems"].items():
        times = ", ".join(f"R={r}: {v['seconds']} s" for r, v in row["runs"].items())
        print(f"{problem:15s} {times}; R/1 ratios {row['ratio_to_single']}")
    return report


if __name__ == "__main__":
    main()
