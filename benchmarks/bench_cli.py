"""Benchmark: how fast the ``lstmops`` command line answers.

Targets (issue #4): ``lstmops --help`` in at most 1.5 s, and ``lstmops predict`` scoring
10,000 rows of echo, addition or cumulative sum in at most 2 s beyond interpreter and
library start-up.

Measured, each in fresh processes:

1. ``lstmops --help``: wall time of the installed console script, best and median of
   ``--repeats`` runs.
2. ``lstmops predict P -i rows.csv -o out.csv`` on 10,000 raw rows, as a user runs it,
   minus a *start-up baseline*: a process that only imports what the predict path
   imports (the CLI, pandas, scikit-learn, SQLAlchemy, Keras on JAX) and initialises JAX.
   The difference is the work of predicting beyond start-up. The first run of a model
   compiles its predict program; later runs load it from JAX's compile cache.
3. The same work timed inside one process after the imports, step by step: read the
   rows, verify checksums and load the preprocessing, check and prepare the rows, load
   the model, predict, log 10,000 predictions, write the results; with an empty and
   with a filled compile cache.

The models are the finalized ones in ``models/<problem>`` when present, otherwise
untrained models of the configured architecture and size (``params.yaml``): inference
costs the same either way. Everything is registered in a temporary registry and
database, never the repository's own.

Usage: ``.venv/bin/python benchmarks/bench_cli.py [--rows 10000] [--repeats 3] [--json out.json]``
Timings are informative only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROBLEMS = ("echo", "addition", "cumulative_sum")
HELP_TARGET_S, PREDICT_TARGET_S = 1.5, 2.0
BASELINE = ("import os; os.environ.setdefault('KERAS_BACKEND', 'jax')\n"
            "import lstmops.cli, lstmops.serving.predict, lstmops.serving.rawio, lstmops.serving.readable, lstmops.features.preparers\n"
            "import lstmops.registry.versions, lstmops.store.records, lstmops.problems, sqlalchemy, pandas, sklearn\n"
            "import keras, jax, jax.numpy as jnp\n"
            "from lstmops.modeling.architectures import custom_objects; custom_objects()\n"
            "jnp.zeros(1).block_until_ready()\n")


def _wall(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    return seconds


def _bundle(problem: str, folder: Path) -> tuple[Path, str]:
    """The finalized model if there is one, else an untrained one of the configured size."""
    finalized = REPO / "models" / problem
    if (finalized / "checksums.json").is_file():
        return finalized, "finalized"
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import numpy as np

    from lstmops.modeling.architectures import build_model
    from lstmops.modeling.bundle import save_bundle
    from lstmops.config import load_settings
    from lstmops.features.preparers import make_preparer
    from lstmops.problems import get_problem
    from lstmops.modeling.training import make_task

    settings = load_settings(REPO / "params.yaml")
    cfg = settings.problems[problem]
    module = get_problem(problem)
    preparer = make_preparer(problem, cfg.process, settings.prepare.out_of_range, settings.prepare.tolerance)
    preparer.fit(module.generate(cfg.process, 5000, np.random.default_rng(0)))
    task = make_task(module, preparer.input_shape, preparer.target_shape, 5000, cfg.train)
    model = build_model(cfg.architecture, cfg.model, task)
    save_bundle(model, preparer, {"problem": problem, "architecture": cfg.architecture}, folder)
    return folder, "untrained, configured size"


def _rows(problem: str, n: int, path: Path) -> None:
    """``n`` raw input rows without ids (predict generates them, so every run logs new ones)."""
    from lstmops.config import load_settings
    from lstmops.serving.rawio import write_rows
    from lstmops.data.sampling import sample_rows

    rows, _ = sample_rows(load_settings(REPO / "params.yaml"), problem, n, seed=1)
    write_rows(rows.drop(columns="id"), path)


def stage_timings(problem: str, rows: str, out: str) -> dict[str, float]:
    """Run predict step by step in this (fresh) process, after the imports; seconds per step."""
    exec(BASELINE, {})
    from lstmops.serving import rawio
    from lstmops.serving import predict as serving
    from lstmops.serving.readable import as_targets
    from lstmops.registry.versions import Registry
    from lstmops.store.records import Store

    times: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now

    registry, store = Registry(), Store()
    table = rawio.read_rows(problem, rows)
    lap("read rows")
    served = serving.open_version(registry, problem)
    lap("verify checksums, load preprocessing")
    ids = rawio.row_ids(problem, table, generate=True)
    typed = serving.validate_inputs(problem, served.preparer.params, table, None)
    chunks = serving._prepared(problem, served, typed, None)
    store.known_ids(problem, ids)
    lap("check and prepare rows")
    served.model  # noqa: B018 - loads it
    lap("load model (safe mode)")
    outputs = serving.predict_typed(problem, served, chunks)
    lap("predict (incl. JAX compile) and decode")
    inputs = typed.to_dict("records")
    store.log_predictions(problem, served.version.version, ids, inputs, outputs)
    lap("log predictions")
    import pandas as pd

    batch = serving.PredictionBatch(problem, served.version.version, ids, inputs, outputs)
    frame = pd.DataFrame([{"id": i, **as_targets(problem, y), "text": t} for i, y, t in
                          zip(ids, outputs, batch.texts())])
    rawio.write_rows(frame, out)
    lap("readable results, write file")
    times["total"] = sum(times.values())
    return times


def main() -> None:
    """Measure and print; optionally write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--stage-timings", nargs=3, metavar=("PROBLEM", "ROWS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage_timings:
        print(json.dumps(stage_timings(*args.stage_timings)))
        return
    work = Path(tempfile.mkdtemp(prefix="lstmops-bench-"))
    env = os.environ | {"LSTMOPS_ROOT": str(work), "LSTMOPS_DB_URL": f"sqlite:///{work / 'registry' / 'b.db'}",
                        "KERAS_BACKEND": "jax"}
    os.environ.update({k: env[k] for k in ("LSTMOPS_ROOT", "LSTMOPS_DB_URL")})
    shutil.copy(REPO / "params.yaml", work / "params.yaml")
    results: dict = {"rows": args.rows, "repeats": args.repeats, "help": {}, "predict": {}}
    try:
        helps = [_wall([str(BIN / "lstmops"), "--help"], env) for _ in range(args.repeats)]
        results["help"] = {"best_s": min(helps), "median_s": statistics.median(helps), "target_s": HELP_TARGET_S}
        print(f"lstmops --help: best {min(helps):.2f} s, median {statistics.median(helps):.2f} s "
              f"(target <= {HELP_TARGET_S} s)")
        from lstmops.registry.versions import Registry

        registry = Registry()
        for problem in PROBLEMS:
            folder, kind = _bundle(problem, work / "bundles" / problem)
            version = registry.register(problem, folder).version.version
            registry.promote(problem, version, reason="benchmark")
            rows = work / f"{problem}.csv"
            _rows(problem, args.rows, rows)
            steps = {}
            for cache in ("cold", "warm"):  # an empty compile cache, then the one the cold run filled
                run_env = env | {"LSTMOPS_JAX_CACHE": str(work / f"jax-{problem}")}
                steps[cache] = json.loads(subprocess.run(
                    [sys.executable, __file__, "--stage-timings", problem, str(rows), str(work / "out2.csv")],
                    env=run_env, capture_output=True, text=True, timeout=600, check=True).stdout.splitlines()[-1])
            cli_env = env | {"LSTMOPS_JAX_CACHE": str(work / f"jax-cli-{problem}")}
            cli = [_wall([str(BIN / "lstmops"), "predict", problem, "-i", str(rows), "-o", str(work / "out.csv")],
                         cli_env) for _ in range(args.repeats + 1)]
            base = [_wall([sys.executable, "-c", BASELINE], env) for _ in range(args.repeats)]
            cold, warm = cli[0] - min(base), min(cli[1:]) - min(base)
            results["predict"][problem] = {
                "model": kind, "cli_cold_s": cli[0], "cli_warm_best_s": min(cli[1:]), "startup_best_s": min(base),
                "beyond_startup_cold_s": cold, "beyond_startup_warm_s": warm, "in_process_steps_s": steps,
                "target_s": PREDICT_TARGET_S}
            print(f"\npredict {problem} ({args.rows} rows, {kind} model), target <= {PREDICT_TARGET_S} s beyond "
                  f"start-up:\n  whole command: first run {cli[0]:.2f} s, later runs best {min(cli[1:]):.2f} s; "
                  f"start-up baseline best {min(base):.2f} s -> beyond start-up {cold:.2f} s (first), "
                  f"{warm:.2f} s (later)\n  in process, after the imports (empty / filled compile cache):")
            for name in steps["cold"]:
                print(f"    {name:<40} {steps['cold'][name]:6.3f} s  {steps['warm'][name]:6.3f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
