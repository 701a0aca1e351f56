"""Benchmark: replica throughput against R on an accelerator (issue 11's GPU figure).

For each problem, at its ``params.yaml`` settings on the prepared arrays of a real build
(``<root>/data/prepared/<problem>/``, read only), R replicas are trained for ``--epochs``
epochs with ``fit_replicas`` for growing R, and one ordinary ``fit`` gives the R = 1
reference. Two clocks per R:

* ``steady_epoch_s``: one epoch once the programs are compiled. For R > 1 it is the mean
  time between the progress callbacks of epochs 2..E; for R = 1 (Keras' own ``fit`` of the
  same model, as ``training.fit`` runs it, without early stopping) from its epoch-end callbacks.
* ``wall_s``: the whole ``fit_replicas`` call, building and compiling included.

``replicas_per_s`` = R / ``steady_epoch_s`` (replica-epochs per second) and
``throughput_vs_single`` is that over R = 1's. R grows until a run fails (memory), a run's
wall time passes ``--max-run-s``, or the whole sweep passes ``--deadline-s``; results are
written after every run, so a run cut short still reports what it measured.

Usage (on the device machine, see README "GPU"): ``KERAS_BACKEND=jax python3
benchmarks/bench_replicas_gpu.py --out $OUT/replicas_gpu.json``
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_replicas import fit_args  # noqa: E402  (the same problem set-up as the CPU benchmark)

PROBLEMS = ["damped_sine", "echo", "addition", "cumulative_sum"]
REPLICAS = [10, 30, 100, 300, 1000, 3000, 10000]


def _single(args, epochs: int) -> dict:
    """One ordinary Keras fit of the problem's model, as ``training.fit`` runs it, with epoch stamps."""
    import keras

    from lstmops.modeling.architectures import get_architecture
    from lstmops.modeling.training import device_info, set_seed

    architecture, spec, task, (x, y), val_xy, train = args
    stamps: list[float] = []
    stamp = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: stamps.append(time.perf_counter()))
    set_seed(1000)
    started = time.perf_counter()
    model = get_architecture(architecture).build(spec, task)
    model.fit(x, y, batch_size=train.batch_size, epochs=epochs, validation_data=val_xy, callbacks=[stamp],
              shuffle=True, verbose=0)
    wall = time.perf_counter() - started
    gaps = np.diff(stamps)
    return {"replicas": 1, "wall_s": round(wall, 3), "epochs_run": len(stamps),
            "first_epoch_s": round(stamps[0] - started, 3),
            "steady_epoch_s": round(float(np.mean(gaps)), 4), "device": device_info()}


def _replicas(args, r: int, epochs: int) -> dict:
    from lstmops.modeling.replicas import fit_replicas

    stamps: list[float] = []
    started = time.perf_counter()
    results = fit_replicas(*args, seeds=[1000 + i for i in range(r)], epochs=epochs,
                           progress=lambda _p: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - started
    gaps = np.diff(stamps)
    best = np.array([np.min(x.history["val_loss"]) for x in results])
    return {"replicas": r, "wall_s": round(wall, 3), "epochs_run": len(stamps),
            "first_epoch_s": round(stamps[0] - started, 3) if stamps else None,
            "steady_epoch_s": round(float(np.mean(gaps)), 4) if len(gaps) else float("nan"),
            "vmapped": results[0].device.get("replicas") == str(r),
            "val_loss_mean": float(np.nanmean(best)), "device": results[0].device}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--problems", nargs="+", default=PROBLEMS)
    parser.add_argument("--replicas", nargs="+", type=int, default=REPLICAS)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (>= 2: the first one compiles)")
    parser.add_argument("--max-run-s", type=float, default=60.0, help="stop growing R after a run this long")
    parser.add_argument("--deadline-s", type=float, default=400.0, help="stop the sweep after this long")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "replicas_gpu.json")
    opts = parser.parse_args(argv)

    from lstmops.config import load_settings
    from lstmops.modeling.training import device_info, use_default_backend

    use_default_backend()
    settings = load_settings(opts.root / "params.yaml")
    began = time.perf_counter()
    report = {"what": __doc__.split("\n\n")[1].replace("\n", " "), "device": device_info(),
              "epochs": opts.epochs, "problems": {}}

    def save() -> None:
        opts.out.parent.mkdir(parents=True, exist_ok=True)
        opts.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")

    for problem in opts.problems:
        if time.perf_counter() - began > opts.deadline_s:
            report["problems"][problem] = {"skipped": "sweep deadline reached"}
            continue
        cfg, n_train, args = fit_args(settings, problem, opts.root)
        row = report["problems"][problem] = {"architecture": cfg.architecture, "train_rows": n_train,
                                             "batch_size": cfg.train.batch_size, "runs": []}
        single = _single(args, opts.epochs)
        row["runs"].append(single)
        print(f"{problem}: R=1 steady epoch {single['steady_epoch_s']} s (wall {single['wall_s']} s)", flush=True)
        save()
        for r in opts.replicas:
            if time.perf_counter() - began > opts.deadline_s:
                row["stopped"] = f"sweep deadline ({opts.deadline_s} s) reached before R={r}"
                break
            try:
                run = _replicas(args, r, opts.epochs)
            except Exception as err:  # out of device memory ends the sweep of this problem
                row["stopped"] = f"R={r} failed: {type(err).__name__}: {str(err)[:300]}"
                break
            run["replicas_per_s"] = round(r / run["steady_epoch_s"], 2)
            run["throughput_vs_single"] = round(r * single["steady_epoch_s"] / run["steady_epoch_s"], 2)
            run["wall_vs_single"] = round(run["wall_s"] / single["wall_s"], 2)
            row["runs"].append(run)
            save()
            print(f"{problem}: R={r} steady epoch {run['steady_epoch_s']} s, {run['replicas_per_s']} replica-epochs/s, "
                  f"x{run['throughput_vs_single']} of one run (wall {run['wall_s']} s)", flush=True)
            if run["wall_s"] > opts.max_run_s:
                row["stopped"] = f"R={r} took {run['wall_s']} s > --max-run-s {opts.max_run_s}"
                break
    report["sweep_s"] = round(time.perf_counter() - began, 1)
    save()
    return report


if __name__ == "__main__":
    main()
