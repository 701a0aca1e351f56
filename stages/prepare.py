"""DVC stage: fit one problem's preprocessing on its training split; write model-ready arrays.

The fitted state goes to ``preprocessing.json`` beside the arrays; every split is
transformed with exactly that state. Frames are written chunk by chunk into uint8
``.npy`` files, so the moving-line set never sits in memory as floats.
"""

from __future__ import annotations

import json

import numpy as np

from lstmops import paths
from lstmops.data.io import read_table, write_array
from lstmops.entry import run_main, stage_args
from lstmops.features.preparers import PREPARERS
from lstmops.features.transformers import save_json

SPLITS = ("train", "validation", "test")
CHUNK_ROWS = 500


def _write_inputs(preparer, table, path) -> tuple[int, ...]:
    """Write a split's inputs, chunked when the preparer renders large arrays."""
    if not hasattr(preparer, "inputs_chunks"):
        array = preparer.inputs(table)
        write_array(array, path)
        return array.shape
    shape = (len(table), *preparer.input_shape)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    start = 0
    for chunk in preparer.inputs_chunks(table, CHUNK_ROWS):
        out[start:start + len(chunk)] = chunk
        start += len(chunk)
    out.flush()
    del out
    return shape


def main() -> None:
    """Fit on train, then transform and write every split."""
    ctx = stage_args(__doc__)
    settings, cfg, problem = ctx.settings, ctx.cfg, ctx.problem
    out = paths.prepared_dir(problem)
    out.mkdir(parents=True, exist_ok=True)
    tables = {s: read_table(paths.raw_split(problem, s)) for s in SPLITS}
    policy = settings.prepare
    preparer = PREPARERS[problem](cfg.process, policy.out_of_range, policy.tolerance).fit(tables["train"])
    save_json(preparer, paths.preprocessing_file(problem))
    shapes = {}
    for split, table in tables.items():
        x_shape = _write_inputs(preparer, table, out / f"X_{split}.npy")
        targets = preparer.targets(table)
        write_array(targets, out / f"y_{split}.npy")
        shapes[split] = {"X": list(x_shape), "y": list(targets.shape), "y_dtype": str(targets.dtype)}
    (out / "shapes.json").write_text(json.dumps(shapes, indent=1), encoding="utf-8")
    print(f"prepare {problem}: " + ", ".join(f"{s} X{tuple(v['X'])}" for s, v in shapes.items()))


if __name__ == "__main__":
    run_main(main, "prepare")
