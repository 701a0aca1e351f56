"""TensorFlow is a first-class Keras backend: every architecture trains under it as under JAX.

Each backend runs in its own process (Keras fixes the backend at import) and trains every
problem's configured architecture on the same tiny data, with the same seeds, for a few
epochs (``lstmops.modeling.backend_check``). The two backends must agree in skill within
the spread of the repeated runs: the difference of their mean scores is within three
pooled standard deviations plus the problem's minimum gain (``update.gate.min_gain``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _check(backend: str, out: Path) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "LSTMOPS_JAX_CACHE": "off"}
    done = subprocess.run([sys.executable, "-m", "lstmops.modeling.backend_check", "--params",
                           str(ROOT / "params.yaml"), "--rows", "320", "--epochs", "6", "--seeds", "1", "2", "3",
                           "-o", str(out)], env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backends")
    return {b: _check(b, folder / f"{b}.json") for b in ("jax", "tensorflow")}


def test_each_run_used_its_backend(runs):
    assert runs["jax"]["backend"] == "jax" and runs["tensorflow"]["backend"] == "tensorflow"
    assert set(runs["jax"]["problems"]) == set(runs["tensorflow"]["problems"]) == {
        "echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles"}


def test_tensorflow_and_jax_agree_in_skill_within_the_spread_of_repeats(runs):
    from lstmops.config import load_settings

    gains = load_settings(ROOT / "params.yaml").update.gate.min_gain
    for problem, jax_run in runs["jax"]["problems"].items():
        tf_run = runs["tensorflow"]["problems"][problem]
        a, b = np.asarray(jax_run["scores"]), np.asarray(tf_run["scores"])
        assert np.isfinite(a).all() and np.isfinite(b).all(), (problem, a, b)
        pooled = math.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2)
        allowed = 3 * pooled + gains.get(problem, 0.0)
        assert abs(a.mean() - b.mean()) <= allowed, (problem, a.tolist(), b.tolist(), allowed)


def test_both_backends_learn_something(runs):
    """Not two equally broken runs: after six epochs on 320 rows echo is right at least twice as
    often as chance (10%), and the moving line's direction far more, under both backends."""
    for backend in runs:
        assert np.mean(runs[backend]["problems"]["echo"]["scores"]) > 0.2, runs[backend]["problems"]["echo"]
        assert np.mean(runs[backend]["problems"]["moving_square"]["scores"]) > 0.8, runs[backend]["problems"]
