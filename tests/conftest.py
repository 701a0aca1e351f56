"""Shared fixtures: the six problems at tiny sizes, and an isolated environment."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# Compiled JAX programs go to a cache of this test session (shared by the processes the
# tests start), not to the home folder; tests that check the cache set their own.
if "LSTMOPS_JAX_CACHE" not in os.environ:
    os.environ["LSTMOPS_JAX_CACHE"] = tempfile.mkdtemp(prefix="lstmops-test-jax-")
    atexit.register(shutil.rmtree, os.environ["LSTMOPS_JAX_CACHE"], True)

from lstmops.problems import PROBLEMS  # noqa: E402


@pytest.fixture(params=sorted(PROBLEMS))
def problem_name(request) -> str:
    """Each of the six problem names in turn."""
    return request.param


@pytest.fixture
def problem(problem_name):
    """The module of each problem in turn."""
    return PROBLEMS[problem_name]


@pytest.fixture
def small_table(problem):
    """A small raw table of each problem at reference settings."""
    return problem.generate(problem.Params(), 200, np.random.default_rng(7))
