"""The real `dvc repro` of the data stages, on tiny params, in a temporary git repository."""

from __future__ import annotations

import json
import os
import shutil
import socket
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
MODEL_STAGES = ("evaluate", "finalize")

pytestmark = pytest.mark.pipeline
_REPO_SRC: list[Path] = []  # the temporary repository's src: the copy is what its stages import


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("LSTMOPS_ROOT", None)
    env |= {"DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false", "KERAS_BACKEND": "jax"}
    env |= {"PYTHONPATH": str(_REPO_SRC[0]) if _REPO_SRC else env.get("PYTHONPATH", "")}
    env |= {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
            for what, value in (("NAME", "pipeline test"), ("EMAIL", "test@example.invalid"))}
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
        cfg["train"].update(epochs=2, patience=1)
    params["problems"]["moving_square"]["process"]["size"] = 12
    params["evaluate"].update(repeats=2, test_size=50, workers=1, generated_shapes=50)
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        node[last] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_project(repo: Path) -> Path:
    """The project's stages, code and DVC/git configuration copied into ``repo`` (as a fresh clone has them)."""
    for item in ("stages", "src", "dvc.yaml", ".dvcignore", ".gitignore"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, repo / item, **(
            {"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repository holding the project's stages and code, tiny params."""
    repo = copy_project(tmp_path_factory.mktemp("pipeline"))
    _REPO_SRC[:] = [repo / "src"]
    _tiny_params(repo)
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    run(["dvc", "remote", "add", "-d", "storage", str(repo / "remote")], repo)
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + "/remote/\n")
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "the tracked files, as a fresh clone has them"], repo)
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
    done = run(["dvc", "status", *[f"{s}@{p}" for s in DATA_STAGES for p in PROBLEM_NAMES]], repo)
    assert "changed" not in done.stdout


def test_full_repro_evaluates_and_finalizes_every_problem(repo):
    run(["dvc", "repro"], repo)
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], repo).stdout)
    flat = json.dumps(shown)
    for name in PROBLEM_NAMES:
        statistics = json.loads((repo / "metrics" / name / "statistics.json").read_text())
        primary = statistics["metrics"][statistics["primary_metric"]]
        assert primary["n"] == 2 and primary["min"] <= primary["mean"] <= primary["max"]
        assert primary["ci_low"] <= primary["mean"] <= primary["ci_high"]
        assert statistics["best_epoch_median"] >= 1 and len(statistics["runs"]) == 2
        headline = json.loads((repo / "metrics" / name / "evaluation.json").read_text())
        secondary = set(statistics["metrics"]) - {statistics["primary_metric"]}
        assert set(headline) == {"primary", "mean", "std", "ci_low", "ci_high", "repeats", *secondary}
        assert headline["primary"] == statistics["primary_metric"] and headline["mean"] == primary["mean"]
        assert f"metrics/{name}/evaluation.json" in flat and f"metrics/{name}/statistics.json" not in flat
        timings = json.loads((repo / "metrics" / name / "timings.json").read_text())
        assert len(timings) == 2 and timings[0]["seconds"] > 0 and timings[0]["backend"] == "jax"
        for picture in ("learning_curves.png", "scores_boxplot.png"):
            assert (repo / "metrics" / name / picture).stat().st_size > 1000
        bundle = repo / "models" / name
        for part in ("model.json", "model.weights.h5", "preprocessing.json", "metadata.json", "checksums.json"):
            assert (bundle / part).is_file(), part
        metadata = json.loads((bundle / "metadata.json").read_text())
        assert metadata["device"]["backend"] == "jax" and metadata["data_md5"]
    assert (repo / "metrics" / "rectangles" / "generated.png").is_file()
    assert json.loads((repo / "metrics" / "echo" / "registered.json").read_text())["version"] == 1
    changed = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout
    for local in ("timings.json", "registered.json", "registry/", "data/", "models/"):
        assert local not in changed, f"{local} would be committed:\n{changed}"
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "the build's tracked outputs, as the project commits them"], repo)


def test_forced_repro_gives_identical_metrics(repo):
    before = {n: (repo / "metrics" / n / "evaluation.json").read_text() for n in PROBLEM_NAMES}
    finals = {n: (repo / "metrics" / n / "final.json").read_text() for n in PROBLEM_NAMES}
    run(["dvc", "repro", "-f", *[f"{s}@{p}" for s in MODEL_STAGES for p in PROBLEM_NAMES]], repo)
    assert {n: (repo / "metrics" / n / "evaluation.json").read_text() for n in PROBLEM_NAMES} == before
    assert {n: (repo / "metrics" / n / "final.json").read_text() for n in PROBLEM_NAMES} == finals


def test_rebuild_leaves_git_clean_and_a_second_repro_runs_nothing(repo):
    """Tracked files are machine-independent: a rebuild (above, forced) changes none of them."""
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout == ""
    shutil.rmtree(repo / "registry")  # another machine's registry: not part of the build
    done = run(["dvc", "repro"], repo)
    assert "Running stage" not in done.stdout and "Data and pipelines are up to date" in done.stdout
    assert run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout == ""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert not lock["register@echo"].get("outs")  # the registry's state is no build output
    machine = [str(repo), str(repo.resolve()), socket.gethostname()]
    tracked = run(["git", "ls-files"], repo).stdout.split()
    outputs = [f"data/validated/{n}.json" for n in PROBLEM_NAMES] + [f"data/prepared/{n}/shapes.json" for n in PROBLEM_NAMES]
    for path in [p for p in tracked if p.endswith((".json", ".csv", ".lock", ".yaml"))] + outputs:
        text = (repo / path).read_text(encoding="utf-8")
        assert not [m for m in machine if m in text], f"{path} names this machine"


@pytest.mark.parametrize("module, stages", [
    ("src/lstmops/problems/echo.py", ["evaluate@echo", "finalize@echo"]),
    ("src/lstmops/modeling/training.py", ["evaluate@damped_sine", "finalize@damped_sine"]),
])
def test_editing_an_imported_module_marks_its_stages_changed(repo, module, stages):
    path = repo / module
    saved = path.read_bytes()
    path.write_bytes(saved + b"\n# an edit\n")
    try:
        shown = json.loads(run(["dvc", "status", "--json", *stages], repo).stdout)
    finally:
        path.write_bytes(saved)
    assert set(stages) <= set(shown), shown
    assert "Data and pipelines are up to date" in run(["dvc", "status", *stages], repo).stdout


def test_finalized_bundle_loads_and_predicts_like_the_metrics_say(repo):
    from lstmops.modeling.bundle import load_bundle
    from lstmops.modeling.evaluation import score_model

    model, preparer, metadata = load_bundle(repo / "models" / "echo")
    test = pd.read_parquet(repo / "data" / "raw" / "echo" / "test.parquet")
    assert score_model("echo", model, preparer, test) == metadata["test_metrics"]


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
