"""Time per epoch of every problem's architecture under JAX and under TensorFlow, same run.

Each backend trains in its own process (Keras fixes the backend at import) through
``lstmops.modeling.backend_check``: the same rows, seeds and settings from ``params.yaml``.
The first epoch includes compiling; the figure is the median of the later epochs, and the
ratio is TensorFlow's time over JAX's (above 1: JAX is faster).

    .venv/bin/python benchmarks/bench_backends.py --rows 2000 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BACKENDS = ("jax", "tensorflow")


def run(backend: str, rows: int, epochs: int, frame: int, out: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [sys.executable, "-m", "lstmops.modeling.backend_check", "--params", str(ROOT / "params.yaml"),
           "--rows", str(rows), "--epochs", str(epochs), "--seeds", "1", "--frame", str(frame), "-o", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{backend} run failed:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3, help="at least 2: the first one compiles")
    parser.add_argument("--frame", type=int, default=50, help="moving line: pixels a side (params.yaml: 50)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = {b: run(b, args.rows, max(2, args.epochs), args.frame, Path(tmp) / f"{b}.json") for b in BACKENDS}
    table = {}
    for problem in runs["jax"]["problems"]:
        per = {b: statistics.median(runs[b]["problems"][problem]["epoch_seconds"][0][1:]) for b in BACKENDS}
        table[problem] = {"jax_s": round(per["jax"], 4), "tensorflow_s": round(per["tensorflow"], 4),
                          "tf_over_jax": round(per["tensorflow"] / per["jax"], 2),
                          "first_epoch_s": {b: round(runs[b]["problems"][problem]["epoch_seconds"][0][0], 2)
                                            for b in BACKENDS}}
        print(f"{problem:15} jax {per['jax']:.3f} s  tensorflow {per['tensorflow']:.3f} s  "
              f"ratio {per['tensorflow'] / per['jax']:.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "backends.json"
    out.write_text(json.dumps({"rows": args.rows, "epochs": args.epochs, "frame": args.frame, "problems": table},
                              indent=1) + "\n", encoding="utf-8")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
