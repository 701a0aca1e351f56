"""The real `dvc repro` of the data stages, on tiny params, in a temporary git repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROBLEM_NAMES = ["echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles"]
TINY = {"train": 300, "validation": 60, "test": 60}
DATA_STAGES = ("generate", "validate", "prepare")

pytestmark = pytest.mark.pipeline


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("LSTMOPS_ROOT", None)
    env |= {"DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false", "KERAS_BACKEND": "jax"}
    return env


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command in the temporary repository and capture its output."""
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def _tiny_params(repo: Path, **edits) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for cfg in params["problems"].values():
        cfg["sizes"] = dict(TINY)
    params["problems"]["moving_square"]["process"]["size"] = 12
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repository holding the project's stages and code, tiny params."""
    repo = tmp_path_factory.mktemp("pipeline")
    for item in ("stages", "src", "dvc.yaml", ".dvcignore"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / item)
    _tiny_params(repo)
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    run(["dvc", "remote", "add", "-d", "storage", str(repo / "remote")], repo)
    return repo


def _stage_hashes(repo: Path) -> dict:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: [o["md5"] for o in stage.get("outs", [])] for name, stage in lock.items()}


def test_repro_builds_every_problem(repo):
    done = run(["dvc", "repro", *[f"{s}@{p}" for s in DATA_STAGES for p in PROBLEM_NAMES]], repo)
    assert "validate echo" in done.stdout
    for name in PROBLEM_NAMES:
        table = pd.read_parquet(repo / "data" / "raw" / name / "train.parquet")
        assert len(table) == TINY["train"]
        result = json.loads((repo / "data" / "validated" / f"{name}.json").read_text())
        assert result["success"] is True
        prepared = repo / "data" / "prepared" / name
        assert (prepared / "preprocessing.json").is_file()
        for split in TINY:
            assert (prepared / f"X_{split}.npy").is_file() and (prepared / f"y_{split}.npy").is_file()
        assert (repo / "data" / "docs" / name / "train" / "index.html").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {f"{s}@{p}" for s in DATA_STAGES for p in PROBLEM_NAMES} <= set(lock)
    assert lock["generate@echo"]["params"]["params.yaml"]["problems.echo.sizes"] == TINY


def test_rebuild_is_bit_identical_and_noop_is_quiet(repo):
    before = _stage_hashes(repo)
    run(["dvc", "repro", "-f", *[f"{s}@{p}" for s in DATA_STAGES for p in PROBLEM_NAMES]], repo)
    assert _stage_hashes(repo) == before
    done = run(["dvc", "status"], repo)
    assert "changed" not in done.stdout


def test_frames_are_uint8_and_compact(repo):
    import numpy as np

    frames = np.load(repo / "data" / "prepared" / "moving_square" / "X_train.npy", mmap_mode="r")
    assert frames.dtype == np.uint8 and frames.shape == (TINY["train"], 12, 12, 12, 1)


def test_push_to_local_remote(repo):
    run(["dvc", "push", "-q"], repo)
    assert any((repo / "remote").rglob("*"))


def test_corrupted_table_fails_validation_with_named_expectation(repo):
    path = repo / "data" / "raw" / "echo" / "train.parquet"
    saved = path.read_bytes()
    table = pd.read_parquet(path)
    table.loc[4, "target"] = (table.loc[4, "target"] + 1) % 10
    table.to_parquet(path, index=False)
    try:
        done = run(["dvc", "repro", "-s", "validate@echo"], repo, check=False)
        assert done.returncode != 0
        assert "target_equals_input_at_out_index" in done.stderr
        assert "Traceback" not in done.stderr
    finally:
        path.write_bytes(saved)


def test_invalid_params_fail_before_any_output_is_touched(tmp_path, repo):
    bad = tmp_path / "bad"
    shutil.copytree(repo, bad)
    table = bad / "data" / "raw" / "echo" / "train.parquet"
    saved = table.read_bytes()
    _tiny_params(bad, **{"problems.echo.process.out_index": 7})
    done = run(["dvc", "repro", "generate@echo"], bad, check=False)
    assert done.returncode != 0
    assert "problems.echo.process: out_index (7) must be < length (5)" in done.stderr
    assert "Traceback" not in done.stderr
    assert table.read_bytes() == saved  # the earlier output is still in place
