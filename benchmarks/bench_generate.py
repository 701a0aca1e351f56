"""Benchmark: the project's vectorised path vs per-example Python loops of the same process.

Headline, "to model-ready arrays": for each problem, at the reference sizes of
PROBLEMS.md, times (a) the book-style per-example code of ``reference_generators.py``
(``MODEL_READY_REFERENCES``: draw one example with ``random``, encode it into lists,
``np.array`` of the lists at the end) against (b) the project's path,
``PROBLEMS[name].generate`` + ``PREPARERS[name](params, "clip", 0.01).fit(table)`` +
``.inputs(table)`` + ``.targets(table)`` (the moving line's frames via
``inputs_chunks(table, 500)`` into a preallocated uint8 array, as the prepare stage
writes them). This is the like-for-like comparison with the reference's measured cost
(its 27 s for 5,000 moving-line sequences includes building the frames). Each side is
timed in fresh (forked) processes, best of ``--repeats`` (see ``fresh_process_times``). The
moving-line reference is timed on a 500-sequence sample and scaled linearly to 5,000:
float64 frames of all 5,000 need ~5 GB (plus as much again for its lists).
Apples to apples: same per-example array shapes, and per-example statistics of
inputs and targets (one-hot frequencies per position and symbol, values per step,
line profiles of the frames) within ``MAX_Z`` standard errors, after mapping the
reference into the project's units (its symbol order; our fitted min-max scale, which
the book does not apply); for the moving line also the very same pixels when ours
renders the paths the reference drew.

Second table, "raw tables only": (a) the per-example loops of ``REFERENCES`` against
(b) ``PROBLEMS[name].generate``, same columns, dtypes and column means.

Usage: ``.venv/bin/python benchmarks/bench_generate.py [--scale 0.1] [--repeats 3] [--json out.json]``
Timings are informative only: nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from any directory

from reference_generators import BOOK_ALPHABET, MODEL_READY_REFERENCES, REFERENCES  # noqa: E402

from lstmops.features.preparers import PREPARERS  # noqa: E402
from lstmops.problems import PROBLEMS  # noqa: E402

# Training-set sizes of the reference method (PROBLEMS.md).
REFERENCE_SIZES = {
    "echo": 10_000,
    "damped_sine": 10_000,
    "moving_square": 5_000,
    "addition": 75_000,
    "cumulative_sum": 50_000,
    "rectangles": 25_000,
}
TARGET_SPEEDUP = 50.0
SEED = 20240601
SINGLE_RUN_ABOVE_S = 2.0  # a reference loop slower than this is timed once: its noise is small anyway
MAX_Z = 5.0  # column means may differ by at most this many standard errors
FRAMES_SAMPLE = 500  # float64 frames of all 5,000 sequences would need ~5 GB (plus as much for lists)
POLICY, TOLERANCE = "clip", 0.01  # the preparers' out-of-range settings of the project's path
CHUNK_ROWS = 500  # rows per rendered frame chunk, as stages/prepare.py writes them
FLOAT32_ATOL = 1e-6  # mean differences this small (times max(1, |mean|)) are float32 rounding, not content


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best-of-``repeats`` wall time of ``fn()`` and its last result."""
    best, result = math.inf, None
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def reference_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any, int]:
    """Time a reference loop once if slow, else best-of-``repeats``; also the number of runs."""
    first, result = best_time(fn, 1)
    if first > SINGLE_RUN_ABOVE_S or repeats <= 1:
        return first, result, 1
    rest, result = best_time(fn, repeats - 1)
    return min(first, rest), result, repeats


def numeric_view(table: pd.DataFrame) -> pd.DataFrame:
    """Numeric columns as is, text columns by their length (so text content is compared too)."""
    return pd.DataFrame({c: table[c].astype(str).str.len() if table[c].dtype == object else table[c]
                         for c in table.columns})


def z_scores(ours: pd.DataFrame, ref: pd.DataFrame) -> pd.Series:
    """Per column, |difference of means| in standard errors (constant columns: 0 if equal, inf if not)."""
    a, b = numeric_view(ours).astype(float), numeric_view(ref).astype(float)
    diff = (a.mean() - b.mean()).abs()
    se = np.sqrt(a.var() / len(a) + b.var() / len(b))
    z = diff / se.where(se > 0)
    return z.where(se > 0, np.where(diff < 1e-12, 0.0, np.inf))


def compare_tables(name: str, params: Any, ours: pd.DataFrame, ref: pd.DataFrame) -> dict[str, Any]:
    """Same columns, same dtypes, and column means within ``MAX_Z`` standard errors."""
    same_columns = list(ours.columns) == list(ref.columns)
    same_dtypes = same_columns and bool((ours.dtypes == ref.dtypes).all())
    z = z_scores(ours, ref[ours.columns] if same_columns else ref)
    targets = PROBLEMS[name].target_columns(params)
    target_ours = float(numeric_view(ours[targets]).to_numpy(dtype=float).mean())
    target_ref = float(numeric_view(ref[targets]).to_numpy(dtype=float).mean())
    max_z = float(z.max())
    return {"same_columns": same_columns, "same_dtypes": same_dtypes, "max_z": max_z,
            "worst_column": str(z.idxmax()), "target_mean_ours": target_ours, "target_mean_ref": target_ref,
            "similar": bool(same_columns and same_dtypes and max_z <= MAX_Z)}


def bench_problem(name: str, n: int, repeats: int) -> dict[str, Any]:
    """Time the reference loop and ours on ``n`` examples of one problem and compare their tables."""
    module = PROBLEMS[name]
    params = module.Params()
    ref_s, ref_table, ref_runs = reference_time(lambda: REFERENCES[name](params, n, random.Random(SEED)), repeats)
    ours_s, ours_table = best_time(lambda: module.generate(params, n, np.random.default_rng(SEED)), repeats)
    ratio = ref_s / ours_s
    return {"problem": name, "n": n, "reference_s": ref_s, "reference_runs": ref_runs, "ours_s": ours_s,
            "ours_runs": repeats, "speedup": ratio, "meets_target": ratio >= TARGET_SPEEDUP,
            **compare_tables(name, params, ours_table, ref_table)}


def our_arrays(name: str, params: Any, n: int) -> tuple[np.ndarray, np.ndarray, Any]:
    """The project's path: raw table, then a preparer fitted on it, then its inputs and targets."""
    table = PROBLEMS[name].generate(params, n, np.random.default_rng(SEED))
    preparer = PREPARERS[name](params, POLICY, TOLERANCE).fit(table)
    if hasattr(preparer, "inputs_chunks"):  # frames: chunk by chunk into uint8, as the prepare stage does
        inputs = np.empty((len(table), *preparer.input_shape), dtype=np.uint8)
        start = 0
        for chunk in preparer.inputs_chunks(table, CHUNK_ROWS):
            inputs[start:start + len(chunk)] = chunk
            start += len(chunk)
    else:
        inputs = preparer.inputs(table)
    return inputs, preparer.targets(table), preparer


def in_our_units(name: str, preparer: Any, inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's arrays in the project's units: its symbol order, our fitted min-max scale."""
    if name == "addition":  # book order 0-9 + ' '; ours is the vocabulary's
        def reorder(array: np.ndarray, vocabulary: Any) -> np.ndarray:
            return array[..., [BOOK_ALPHABET.index(c) for c in vocabulary.chars_]]
        return reorder(inputs, preparer.transformers["expression"]), reorder(targets, preparer.transformers["answer"])
    if name in ("damped_sine", "rectangles"):
        scaler = preparer.transformers["values" if name == "damped_sine" else "points"]
        return scaler.transform(inputs, enforce_range=False), scaler.transform(targets, enforce_range=False)
    if name == "cumulative_sum":
        return preparer.transformers["values"].transform(inputs, enforce_range=False), targets
    return inputs, targets


def per_example(name: str, array: np.ndarray, examples: int) -> np.ndarray:
    """Per-example statistics (examples, k), independent across examples, for the z-tests.

    Frames: each row's share of lit pixels in the last frame (where the line runs) and
    each column's lit pixels in the first frame (where drawing starts: the direction).
    Everything else: every value of an example (rectangles: its 3 pairs together).
    """
    if name == "moving_square" and array.ndim == 5:
        rows = array[:, -1, :, :, 0].mean(axis=2, dtype=np.float64)
        first = array[:, 0, :, :, 0].sum(axis=1, dtype=np.float64)
        return np.hstack([rows, first])
    return array.reshape(examples, -1).astype(np.float64)


def z_per_column(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """|difference of column means| in standard errors (constant columns: 0 if equal, inf if not).

    Differences within float32 resolution (``FLOAT32_ATOL``, relative to the mean) count
    as none: our arrays are float32, the reference's float64, so a column that is
    constant on both sides (e.g. the damped sine's step 0) differs by rounding only.
    """
    scale = np.maximum(1.0, np.abs(ref.mean(axis=0)))
    diff = np.maximum(np.abs(ours.mean(axis=0) - ref.mean(axis=0)) - FLOAT32_ATOL * scale, 0.0)
    se = np.sqrt(ours.var(axis=0, ddof=1) / len(ours) + ref.var(axis=0, ddof=1) / len(ref))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, diff / np.where(se > 0, se, 1.0), np.where(diff < 1e-12, 0.0, np.inf))


def paths_from_frames(frames: np.ndarray, directions: np.ndarray, params: Any) -> pd.DataFrame:
    """The raw table (direction, pixel path) that the reference's frames show, read off their last frame."""
    module = PROBLEMS["moving_square"]
    size = params.size
    directions = directions.reshape(-1).astype(np.int64)
    rows = frames[:, -1, :, :, 0].argmax(axis=1)  # the lit row of each column of the complete line
    steps = np.arange(size)
    order = np.where(directions[:, None] == 1, steps, size - 1 - steps)  # column drawn at step i
    path = np.take_along_axis(rows, order, axis=1)
    return pd.concat([pd.DataFrame({"direction": directions}),
                      pd.DataFrame(path.astype(np.int64), columns=module.row_columns(params)),
                      pd.DataFrame(order.astype(np.int64), columns=module.col_columns(params)),
                      pd.DataFrame({"max_step": np.full(len(directions), params.max_step, dtype=np.int64)})],
                     axis=1)


def compare_arrays(name: str, params: Any, preparer: Any, ref: tuple[np.ndarray, np.ndarray], ref_n: int,
                   ours: tuple[np.ndarray, np.ndarray], n: int) -> dict[str, Any]:
    """Same per-example shapes, and per-example statistics within ``MAX_Z`` standard errors."""
    ref_units = in_our_units(name, preparer, *ref)
    scale = 3 if name == "rectangles" else 1  # 3 (point -> next point) pairs per rectangle
    shapes_ok = all(r.shape[0] == ref_n * scale and o.shape[0] == n * scale and r.shape[1:] == o.shape[1:]
                    for r, o in zip(ref, ours))
    z_in = z_per_column(per_example(name, ours[0], n), per_example(name, ref_units[0], ref_n))
    z_out = z_per_column(per_example(name, ours[1], n), per_example(name, ref_units[1], ref_n))
    worst = ("inputs", int(z_in.argmax())) if z_in.max() >= z_out.max() else ("targets", int(z_out.argmax()))
    max_z = float(max(z_in.max(), z_out.max()))
    result = {"ref_shapes": [list(a.shape) for a in ref], "ref_dtypes": [str(a.dtype) for a in ref],
              "ours_shapes": [list(a.shape) for a in ours], "ours_dtypes": [str(a.dtype) for a in ours],
              "same_shapes": shapes_ok, "max_z": max_z, "worst": f"{worst[0]}[{worst[1]}]",
              "input_mean_ref": float(ref_units[0].mean(dtype=np.float64)),
              "input_mean_ours": float(ours[0].mean(dtype=np.float64)),
              "target_mean_ref": float(ref_units[1].mean(dtype=np.float64)),
              "target_mean_ours": float(ours[1].mean(dtype=np.float64))}
    same_pixels = True
    if name == "moving_square":  # ours, fed the paths the reference drew, must give its very pixels
        table = paths_from_frames(ref[0], ref[1], params)
        same_pixels = bool(np.array_equal(preparer.inputs(table), ref[0])
                           and np.array_equal(preparer.targets(table), ref[1]))
        result["same_pixels_for_same_paths"] = same_pixels
    result["similar"] = bool(shapes_ok and max_z <= MAX_Z and same_pixels)
    return result


def run_once(side: str, name: str, n: int) -> float:
    """Seconds for one run of ``side`` ("reference" or "ours") on ``n`` examples, in this process."""
    params = PROBLEMS[name].Params()
    start = time.perf_counter()
    if side == "reference":
        MODEL_READY_REFERENCES[name](params, n, random.Random(SEED))
    else:
        our_arrays(name, params, n)
    return time.perf_counter() - start


def _timed_child(conn: Any, side: str, name: str, n: int) -> None:
    """Child process body: one timed run, its seconds sent back to the parent."""
    conn.send(run_once(side, name, n))
    conn.close()


def fresh_process_times(side: str, name: str, n: int, repeats: int) -> list[float]:
    """Seconds of ``repeats`` runs, each in a fresh child process forked before any heavy work.

    Both the book's script and the prepare stage run once in a fresh process. A repeat
    in the same process is not like that: the moving-line reference then reuses the heap
    its previous run freed and runs several times faster, which a full 5,000-sequence run
    (all frames alive at once) never does, so a warm sample would understate it. So
    ``main`` takes every timing first, while this process has only imported modules:
    each forked child starts from that clean heap, without paying the imports again.
    The kernel still hands a child the pages an earlier child just freed more cheaply,
    so later runs can be faster; the caller takes the best (conservative for the
    reference) and keeps the first (coldest) too.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    runs = []
    for _ in range(max(1, repeats)):
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_timed_child, args=(send, side, name, n))
        child.start()
        send.close()
        try:
            seconds = receive.recv()
        except EOFError:
            child.join()
            raise RuntimeError(f"timing {side} {name} n={n}: the child process died (exit code {child.exitcode})")
        child.join()
        runs.append(float(seconds))
    return runs


def model_ready_timings(sizes: dict[str, int], repeats: int) -> dict[str, tuple[list[float], list[float]]]:
    """(reference runs s on its timed n, ours runs s) per problem, ``repeats`` fresh child processes each."""
    timings = {}
    for name, n in sizes.items():
        ref_n = min(FRAMES_SAMPLE, n) if name == "moving_square" else n
        timings[name] = (fresh_process_times("reference", name, ref_n, repeats),
                         fresh_process_times("ours", name, n, repeats))
    return timings


def bench_model_ready(name: str, n: int, timing: tuple[list[float], list[float]]) -> dict[str, Any]:
    """The book-style path to model-ready arrays vs ours on ``n`` examples: ``timing``, and the arrays compared."""
    params = PROBLEMS[name].Params()
    ref_n = min(FRAMES_SAMPLE, n) if name == "moving_square" else n
    ref_runs_s, ours_runs_s = timing
    ref_s_timed, ours_s = min(ref_runs_s), min(ours_runs_s)
    # The arrays to compare, built once more here (untimed).
    ref = MODEL_READY_REFERENCES[name](params, ref_n, random.Random(SEED))
    inputs, targets, preparer = our_arrays(name, params, n)
    ref_s = ref_s_timed * n / ref_n  # linear in n: every example is built the same way
    row = {"problem": name, "n": n, "reference_timed_n": ref_n, "reference_timed_s": ref_s_timed,
           "reference_s": ref_s, "reference_s_is_scaled": ref_n != n, "reference_runs_s": ref_runs_s,
           "reference_first_run_s": ref_runs_s[0] * n / ref_n, "ours_s": ours_s, "ours_runs_s": ours_runs_s,
           "speedup": ref_s / ours_s, "speedup_first_reference_run": ref_runs_s[0] * n / ref_n / ours_s,
           "meets_target": bool(ref_s / ours_s >= TARGET_SPEEDUP),
           **compare_arrays(name, params, preparer, ref, ref_n, (inputs, targets), n)}
    if name == "moving_square":
        row["reference_bytes_at_n"] = int(n * params.size**3 * 8)  # float64 frames of all n (lists: as much again)
        row["ours_bytes"] = int(inputs.nbytes)
    return row


def print_model_ready(rows: list[dict[str, Any]], repeats: int) -> None:
    """The headline table, then shapes/dtypes and the notes."""
    print("To model-ready arrays (headline): book-style per-example code vs generate + fitted preparer")
    head = (f"{'problem':<15} {'n':>7} {'reference s':>12} {'ours s':>9} {'ratio':>8} {'>=50x':>6}  "
            f"{'shapes':>6} {'max|z|':>6}  {'input mean ref / ours':<22} {'target mean ref / ours':<22}")
    print(head)
    print("-" * len(head))
    for r in rows:
        mark = "*" if r["reference_s_is_scaled"] else " "
        print(f"{r['problem']:<15} {r['n']:>7,} {r['reference_s']:>11.4f}{mark} {r['ours_s']:>9.4f} "
              f"{r['speedup']:>7.1f}x {'yes' if r['meets_target'] else 'NO':>6}  "
              f"{'same' if r['same_shapes'] else 'DIFF':>6} {r['max_z']:>6.2f}  "
              f"{r['input_mean_ref']:.4f} / {r['input_mean_ours']:.4f}{'':<5} "
              f"{r['target_mean_ref']:.4f} / {r['target_mean_ours']:.4f}")
    for r in rows:
        if r["reference_s_is_scaled"]:
            print(f"* {r['problem']}: reference timed on a {r['reference_timed_n']:,}-sequence sample "
                  f"({r['reference_timed_s']:.3f} s) and scaled linearly to {r['n']:,} "
                  f"(x{r['n'] / r['reference_timed_n']:g}); "
                  f"float64 frames of all {r['n']:,} would need {r['reference_bytes_at_n'] / 2**30:.2f} GiB "
                  f"(its lists as much again) vs ours {r['ours_bytes'] / 2**30:.2f} GiB uint8. Ours: all {r['n']:,}.")
            print(f"  Its runs took {', '.join(f'{t:.3f}' for t in r['reference_runs_s'])} s; the first, on the "
                  f"coldest memory (as all of a full run's would be), scales to {r['reference_first_run_s']:.2f} s: "
                  f"ratio {r['speedup_first_reference_run']:.1f}x. The table credits the reference its best run.")
    print(f"reference s and ours s: best of {repeats} runs, each in a fresh forked process (imports not timed); "
          f"ours with policy {POLICY!r}, tolerance {TOLERANCE:g}. Means in our units (reference mapped to our "
          f"symbol order and fitted min-max scale; the book does not scale). max|z|: largest difference of per-example "
          f"statistics in standard errors (similar when <= {MAX_Z:g}).")
    print("shapes and dtypes, reference -> ours (inputs; targets):")
    for r in rows:
        ref = "; ".join(f"{tuple(s)} {d}" for s, d in zip(r["ref_shapes"], r["ref_dtypes"]))
        ours = "; ".join(f"{tuple(s)} {d}" for s, d in zip(r["ours_shapes"], r["ours_dtypes"]))
        print(f"  {r['problem']:<15} {ref}  ->  {ours}")
    for r in rows:
        if "same_pixels_for_same_paths" in r:
            print(f"{r['problem']}: same pixels and targets when ours renders the paths the reference drew: "
                  f"{'yes' if r['same_pixels_for_same_paths'] else 'NO'}")
    print(f"all model-ready arrays apples to apples: {'yes' if all(r['similar'] for r in rows) else 'NO'}")


def print_raw_tables(rows: list[dict[str, Any]], repeats: int) -> None:
    """The raw-table comparison: sizes, times, speed-up, target, and the apples-to-apples checks."""
    print("Raw tables only: per-example loops to a DataFrame vs PROBLEMS[name].generate (no encoding, no frames)")
    head = (f"{'problem':<15} {'n':>7} {'reference s':>12} {'ours s':>9} {'ratio':>8} {'>=50x':>6}  "
            f"{'columns':>7} {'dtypes':>6} {'max|z|':>6}  {'target mean ref / ours':<24}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['problem']:<15} {r['n']:>7,} {r['reference_s']:>12.4f} {r['ours_s']:>9.4f} "
              f"{r['speedup']:>7.1f}x {'yes' if r['meets_target'] else 'NO':>6}  "
              f"{'same' if r['same_columns'] else 'DIFF':>7} {'same' if r['same_dtypes'] else 'DIFF':>6} "
              f"{r['max_z']:>6.2f}  {r['target_mean_ref']:.4f} / {r['target_mean_ours']:.4f}")
    print(f"reference s: 1 run if > {SINGLE_RUN_ABOVE_S:g} s, else best of {repeats}; ours: best of "
          f"{repeats}. max|z|: largest difference of column means in standard errors "
          f"(similar when <= {MAX_Z:g}; text compared by length).")
    print(f"all raw tables apples to apples: {'yes' if all(r['similar'] for r in rows) else 'NO'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the reference sizes (quick run: 0.1)")
    parser.add_argument("--repeats", type=int, default=3, help="best-of-N runs for ours (and fast reference loops)")
    parser.add_argument("--json", type=Path, default=None, help="also write both tables to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run both comparisons, print the tables, optionally write JSON."""
    args = parse_args(argv)
    sizes = {name: max(10, round(n * args.scale)) for name, n in REFERENCE_SIZES.items()}
    print(f"Generation benchmark: reference per-example Python code vs lstmops vectorised path "
          f"(scale {args.scale}, repeats {args.repeats}, seed {SEED})\n")
    timings = model_ready_timings(sizes, args.repeats)  # first, while this process's heap is clean
    model_ready = [bench_model_ready(name, n, timings[name]) for name, n in sizes.items()]
    print_model_ready(model_ready, args.repeats)
    print()
    raw = [bench_problem(name, n, args.repeats) for name, n in sizes.items()]
    print_raw_tables(raw, args.repeats)
    if args.json:
        args.json.write_text(json.dumps({"scale": args.scale, "repeats": args.repeats, "seed": SEED,
                                         "target_speedup": TARGET_SPEEDUP, "max_z": MAX_Z,
                                         "model_ready": model_ready, "raw_tables": raw}, indent=2))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
