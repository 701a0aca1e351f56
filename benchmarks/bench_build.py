"""Benchmark: the whole default build, ``dvc repro -f``, against the 12-minute target.

Runs the real build in this repository (it rewrites the build's outputs, as ``dvc repro -f``
does; run it on a clean checkout), timing every stage from DVC's own "Running stage"
lines, and reports the total as a ratio of the target. With ``--cache cold`` the JAX
compile cache is a new empty folder (a first build on a machine); ``warm`` uses the
user's cache as it is (a re-run). Afterwards it says whether any tracked metric file
changed, since a faster build must not change the results.

Usage: ``.venv/bin/python benchmarks/bench_build.py [--cache cold|warm] [--out F.json]
[--stage NAME ...]`` (``--stage`` times only those stages, each alone, for a quick check).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 12 * 60
STAGE_LINE = re.compile(r"^Running stage '([^']+)'")


def run_build(cache: str, stages: list[str]) -> tuple[dict[str, float], float]:
    """Per-stage seconds and the total of one ``dvc repro -f`` (or of the named stages alone)."""
    env = os.environ | {"DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false", "KERAS_BACKEND": "jax",
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if cache == "cold":
        env["LSTMOPS_JAX_CACHE"] = tempfile.mkdtemp(prefix="lstmops-bench-jax-")
    command = ["dvc", "repro", "-f", *(["-s", *stages] if stages else [])]
    started = time.perf_counter()
    marks: list[tuple[str, float]] = []
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as proc:
        for line in proc.stdout:
            found = STAGE_LINE.match(line)
            if found:
                marks.append((found.group(1), time.perf_counter() - started))
    total = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"dvc repro failed with exit code {proc.returncode}")
    ends = [t for _, t in marks[1:]] + [total]
    return {name: round(end - start, 1) for (name, start), end in zip(marks, ends)}, round(total, 1)


def changed_metrics() -> list[str]:
    """Tracked files under metrics/ that differ from the last commit."""
    out = subprocess.run(["git", "status", "--porcelain", "--", "metrics"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [line[3:] for line in out.splitlines() if line.endswith((".json", ".csv"))]


def cpu_summary() -> dict[str, object]:
    """The CPU's model name and widest vector extension: XLA's code, and so the build time, depends on both."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():  # the first processor's block is enough: all cores are alike
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    model, flags = fields.get("model name", ""), fields.get("flags", "").split()
    vector = "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "older"
    return {"model": model, "vector_extension": vector}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", choices=("cold", "warm"), default="warm")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "build.json")
    parser.add_argument("--stage", action="append", default=[], help="time only this stage (repeatable)")
    args = parser.parse_args()

    per_stage, total = run_build(args.cache, args.stage)
    groups: dict[str, float] = {}
    for name, seconds in per_stage.items():
        groups[name.split("@")[0]] = round(groups.get(name.split("@")[0], 0.0) + seconds, 1)
    result = {
        "what": "wall time of `dvc repro -f` in this repository, per stage from DVC's 'Running stage' lines",
        "cache": args.cache, "stages_only": args.stage, "target_s": TARGET_S, "total_s": total,
        "ratio_to_target": round(total / TARGET_S, 3), "per_stage_s": per_stage, "per_kind_s": groups,
        "changed_metric_files": changed_metrics(), "cpus": os.cpu_count(), "cpu": cpu_summary(),
        "load_average_at_end": list(os.getloadavg()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for kind, seconds in groups.items():
        print(f"{kind:14s} {seconds:7.1f} s")
    print(f"total {total / 60:.2f} min ({args.cache} compile cache): {result['ratio_to_target']:.2f} of the "
          f"{TARGET_S // 60}-minute target; metric files changed: {len(result['changed_metric_files'])}")


if __name__ == "__main__":
    main()
