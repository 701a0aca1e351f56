"""The whole build under TensorFlow: `KERAS_BACKEND=tensorflow dvc repro` on tiny params.

The same stages as ``make run`` (``dvc repro``), in a temporary git + DVC repository,
with Keras on TensorFlow instead of JAX: every problem is generated, validated, prepared,
evaluated, finalized and registered, its bundle records TensorFlow, and a model built
under TensorFlow serves under JAX with the same outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from test_pipeline import PROBLEM_NAMES, _tiny_params, copy_project

pytest.importorskip("tensorflow", reason="TensorFlow is in the lock file: `make install` installs it")
pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def _env(repo: Path, backend: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LSTMOPS_ROOT", "LSTMOPS_DB_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env |= {"DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false", "KERAS_BACKEND": backend,
            "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(repo / "src")}
    env |= {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
            for what, value in (("NAME", "pipeline test"), ("EMAIL", "test@example.invalid"))}
    return env


def _run(cmd: list[str], repo: Path, backend: str = "tensorflow") -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=repo, env=_env(repo, backend), capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"{cmd} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def tf_repo(tmp_path_factory) -> Path:
    repo = copy_project(tmp_path_factory.mktemp("pipeline-tf"))
    _tiny_params(repo)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"],
                ["git", "add", "-A"], ["git", "commit", "-q", "-m", "tracked files"]):
        _run(cmd, repo)
    _run(["dvc", "repro"], repo)
    return repo


def test_the_whole_build_runs_under_tensorflow(tf_repo):
    for name in PROBLEM_NAMES:
        statistics = json.loads((tf_repo / "metrics" / name / "statistics.json").read_text())
        primary = statistics["metrics"][statistics["primary_metric"]]
        assert primary["n"] == 2 and np.isfinite([primary["mean"], primary["min"], primary["max"]]).all()
        timings = json.loads((tf_repo / "metrics" / name / "timings.json").read_text())
        assert {t["backend"] for t in timings} == {"tensorflow"} and all(t["seconds"] > 0 for t in timings)
        metadata = json.loads((tf_repo / "models" / name / "metadata.json").read_text())
        assert metadata["device"]["backend"] == "tensorflow"
        registered = json.loads((tf_repo / "metrics" / name / "registered.json").read_text())
        assert registered == {"problem": name, "version": 1, "champion": 1}


def test_a_model_built_under_tensorflow_serves_the_same_under_jax(tf_repo, tmp_path):
    """`lstmops predict` on the TensorFlow-built echo model, run once per backend: same answers."""
    echo = yaml.safe_load((tf_repo / "params.yaml").read_text())["problems"]["echo"]["process"]
    rows = np.random.default_rng(3).integers(0, echo["n_features"], size=(5, echo["length"]))
    table = tmp_path / "rows.csv"
    table.write_text(",".join(f"x_{i}" for i in range(echo["length"])) + "\n"
                     + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    answers = {}
    for backend in ("tensorflow", "jax"):
        done = _run([sys.executable, "-m", "lstmops", "predict", "echo", "-i", str(table), "--json"], tf_repo, backend)
        answers[backend] = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(answers["tensorflow"]) == len(answers["jax"]) == 5
    for under_tf, under_jax in zip(answers["tensorflow"], answers["jax"]):
        assert under_tf["model_version"] == under_jax["model_version"] == 1
        assert np.allclose(under_tf["prediction"], under_jax["prediction"], atol=1e-5)
        assert under_tf["text"] == under_jax["text"]
