"""Benchmark: the data stages of `dvc repro` at reference sizes — time, no-op time,
bit-identical rebuilds and the peak memory of the moving-line stages.

Runs in a temporary git + DVC repository holding a copy of the project's stages, code
and params.yaml, so the working repository's outputs are untouched. Figures are
printed against the targets, as ratios; nothing here asserts on time.

Usage: ``.venv/bin/python benchmarks/bench_pipeline.py [--json out.json] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBLEMS = ["echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles"]
DATA_STAGES = ["generate", "validate", "prepare"]
TARGET_REPRO_S, TARGET_NOOP_S, TARGET_PEAK_GB = 120.0, 3.0, 1.5
REFERENCE_PEAK_GB = 15.4  # the reference method's moving-line peak (PROBLEMS.md)
PEAK_WRAPPER = (
    "import resource, runpy, sys; sys.argv = sys.argv[1:]; "
    "exec('try:\\n runpy.run_path(sys.argv[0], run_name=\"__main__\")\\nexcept SystemExit:\\n pass'); "
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
)


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("LSTMOPS_ROOT", None)
    return env | {"DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false", "KERAS_BACKEND": "jax"}


def run(cmd: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    """Run a command, failing loudly; returns its wall time and result."""
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done


def make_repo(where: Path) -> Path:
    """A fresh git + DVC repository with the project's stages, code and params."""
    repo = where / "repo"
    repo.mkdir()
    for item in ("stages", "src", "dvc.yaml", ".dvcignore", "params.yaml"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / item)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        run(cmd, repo)
    return repo


def lock_hashes(repo: Path, targets: list[str]) -> dict:
    """md5 of every output of the given stages, from dvc.lock."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {t: [o["md5"] for o in stages[t].get("outs", [])] for t in targets}


def peak_memory(repo: Path, problem: str) -> dict[str, float]:
    """Peak resident memory (GB) of each data stage script of one problem, in its own process."""
    peaks = {}
    for stage in DATA_STAGES:
        _, done = run([sys.executable, "-c", PEAK_WRAPPER, f"stages/{stage}.py", problem], repo)
        kb = int(done.stderr.split("PEAK_KB")[-1].split()[0])
        peaks[stage] = kb / 1024**2
    return peaks


def main() -> None:
    """Build, rebuild and no-op the data stages; measure the moving line's peak memory."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lstmops-bench-"))
    repo = make_repo(tmp)
    targets = [f"{s}@{p}" for s in DATA_STAGES for p in PROBLEMS]
    # `dvc repro prepare` is what a user types: every prepare@P and all it depends on.
    build_s, _ = run(["dvc", "repro", "prepare"], repo)
    noop_s, _ = run(["dvc", "repro", "prepare"], repo)
    first = lock_hashes(repo, targets)
    rebuild_s, _ = run(["dvc", "repro", "-f", "prepare"], repo)
    identical = lock_hashes(repo, targets) == first
    peaks = peak_memory(repo, "moving_square")
    results = {
        "repro_s": build_s, "noop_s": noop_s, "forced_rebuild_s": rebuild_s, "bit_identical": identical,
        "moving_square_peak_gb": peaks,
    }
    print(f"dvc repro, data stages, 6 problems at reference sizes: {build_s:.1f} s "
          f"(target {TARGET_REPRO_S:.0f} s: ratio {build_s / TARGET_REPRO_S:.2f} of the budget)")
    print(f"no-op dvc repro: {noop_s:.2f} s (target {TARGET_NOOP_S:.0f} s: ratio {noop_s / TARGET_NOOP_S:.2f})")
    print(f"dvc repro -f: {rebuild_s:.1f} s; dvc.lock output hashes unchanged: {'yes' if identical else 'NO'}")
    for stage, gb in peaks.items():
        print(f"moving_square {stage:<9} peak {gb:.2f} GB (target < {TARGET_PEAK_GB} GB; "
              f"{REFERENCE_PEAK_GB / gb:.0f}x less than the reference method's {REFERENCE_PEAK_GB} GB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {repo}")


if __name__ == "__main__":
    main()
