"""Adding a problem is one new module plus its params.yaml entry: proved end to end.

In a temporary copy of the repository, a seventh toy problem (``parity``) is added as
``src/lstmops/problems/parity.py`` and one ``problems.parity`` entry in params.yaml,
and nothing else. With the copy's code on ``PYTHONPATH``, ``dvc repro`` then builds
its whole chain (generate -> validate -> prepare -> evaluate -> finalize -> register),
and ``lstmops problems``, ``sample``, ``predict``, ``observe`` and ``skill`` serve it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOY = "parity"
STAGES = ("generate", "validate", "prepare", "evaluate", "finalize", "register")

pytestmark = pytest.mark.pipeline

# The whole new problem: process, contract, preparer, scoring and wording, in one file.
TOY_MODULE = '''\
"""Parity: tell whether a short bit sequence holds an odd number of ones (Vanilla LSTM).

Raw table: ``x_0 .. x_{length-1}`` (bits) and ``parity`` (1 when the ones are odd).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from lstmops.features.preparers import Preparer, as_binary
from lstmops.problems.contract import Contract

TASK = "tell whether a bit sequence holds an odd number of ones"
HEAD = "sigmoid"
LOSS = "binary_crossentropy"
PRIMARY_METRIC = "accuracy"
HIGHER_IS_BETTER = True


class Params(BaseModel):
    """Parity process parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    length: int = Field(3, ge=1)


def input_columns(params: Params) -> list[str]:
    """The bits."""
    return [f"x_{i}" for i in range(params.length)]


def target_columns(params: Params) -> list[str]:
    """The parity flag."""
    return ["parity"]


def generate(params: Params, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ``n`` bit sequences with their parity."""
    bits = rng.integers(0, 2, size=(n, params.length), dtype=np.int64)
    table = pd.DataFrame(bits, columns=input_columns(params))
    table["parity"] = bits.sum(axis=1) % 2
    return table


def _parity_agrees(table: pd.DataFrame) -> pd.Series:
    bits = table.filter(regex=r"^x_\\d+$").to_numpy()
    return pd.Series(bits.sum(axis=1) % 2 == table["parity"].to_numpy(), index=table.index)


def contract(params: Params) -> Contract:
    """Bits in, their parity out."""
    columns = input_columns(params) + ["parity"]
    return Contract(dtypes={c: "int" for c in columns}, value_sets={c: (0, 1) for c in columns},
                    checks={"parity_agrees_with_bits": _parity_agrees})


class ParityPreparer(Preparer):
    """Bits as float32 steps (n, length, 1); the flag as uint8 (n, 1)."""

    def _fit(self, table: pd.DataFrame) -> None:
        self._inputs(table)  # nothing to learn; only check

    def _inputs(self, table: pd.DataFrame) -> np.ndarray:
        return as_binary(self._frame(table, self.input_columns), self.input_columns)[..., None].astype(np.float32)

    def _targets(self, table: pd.DataFrame) -> np.ndarray:
        return as_binary(self._frame(table, self.target_columns), self.target_columns)

    def _decode(self, predictions: Any) -> list[int]:
        return [int(p >= 0.5) for p in np.asarray(predictions, dtype=np.float64).reshape(-1)]

    def _shapes(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return (self.params.length, 1), (1,)


PREPARER = ParityPreparer


def score(table: pd.DataFrame, predicted: list) -> dict[str, float]:
    """Share of sequences whose parity was predicted right."""
    return {"accuracy": float((np.asarray(predicted) == table["parity"].to_numpy()).mean())}


def per_example(table: pd.DataFrame, predicted: list) -> np.ndarray:
    """1 for each sequence whose parity was predicted right, else 0."""
    return (np.asarray(predicted) == table["parity"].to_numpy()).astype(float)


def describe_output(output: Any) -> str:
    """``odd`` or ``even``."""
    return "odd" if output else "even"


def as_targets(output: Any) -> dict[str, Any]:
    """The flag as the ``parity`` column."""
    return {"parity": output}


def input_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features: how many bits are set."""
    return pd.DataFrame({"ones": table[input_columns(params)].to_numpy().sum(axis=1).astype(float)})


def outcome_summary(table: pd.DataFrame, params: Params) -> pd.DataFrame:
    """Drift features of the answers: the flag (categorical)."""
    return pd.DataFrame({"parity": pd.Categorical(table["parity"].astype(int), categories=[0, 1])})
'''

TOY_PARAMS = {
    "architecture": "vanilla",
    "process": {"length": 3},
    "sizes": {"train": 200, "validation": 50, "test": 50},
    "model": {"cells": 8, "learning_rate": 0.02},
    "train": {"batch_size": 32, "epochs": 2, "patience": 1},
    "drift": [],  # dvc.yaml lists every one of these keys for each problem, so each must be present
}


def _env(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env |= {"PYTHONPATH": str(repo / "src"), "LSTMOPS_ROOT": str(repo), "KERAS_BACKEND": "jax",
            "LSTMOPS_DB_URL": f"sqlite:///{repo / 'registry' / 'lstmops.db'}",
            "LSTMOPS_JAX_CACHE": str(repo / "jax-cache"), "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}
    return env


def run(cmd: list[str], repo: Path, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a command in the copy, with the copy's code first on the path."""
    done = subprocess.run(cmd, cwd=repo, env=_env(repo), capture_output=True, text=True, timeout=600, input=stdin)
    if check and done.returncode != 0:
        raise AssertionError(f"{cmd} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def lstmops(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "lstmops", *args], repo)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC copy of the project (tiny params), committed, then the toy problem added on top."""
    repo = tmp_path_factory.mktemp("new-problem")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for item in ("stages", "src", "dvc.yaml", ".dvcignore"):
        src = ROOT / item
        shutil.copytree(src, repo / item, ignore=ignore) if src.is_dir() else shutil.copy2(src, repo / item)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["evaluate"].update(repeats=2, test_size=50, workers=1, generated_shapes=50)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], repo)
    (repo / ".git" / "info" / "exclude").write_text("__pycache__/\n*.pyc\njax-cache/\n")
    run(["dvc", "init", "-q"], repo)
    run(["dvc", "config", "core.analytics", "false"], repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "the project as it is"], repo)
    # The whole change that adds a problem:
    (repo / "src" / "lstmops" / "problems" / f"{TOY}.py").write_text(TOY_MODULE)
    params["problems"][TOY] = TOY_PARAMS
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return repo


def test_adding_a_problem_is_one_module_and_its_params_entry(repo):
    run(["git", "add", "-A"], repo)
    changed = run(["git", "diff", "--cached", "--name-status"], repo).stdout.split("\n")
    assert sorted(line.split("\t") for line in changed if line) == [
        ["A", f"src/lstmops/problems/{TOY}.py"], ["M", "params.yaml"]]
    stat = run(["git", "diff", "--cached", "--stat"], repo).stdout
    assert "2 files changed" in stat
    where = run([sys.executable, "-c", "import lstmops; print(lstmops.__file__)"], repo).stdout.strip()
    assert Path(where).resolve().is_relative_to(repo.resolve()), where  # the copy's code is what runs


def test_the_cli_lists_it_without_heavy_imports(repo):
    code = ("import json, sys; from lstmops import cli; print(json.dumps([list(cli.PROBLEM_NAMES), "
            "sorted(m for m in ('keras', 'jax', 'pandas', 'sklearn') if m in sys.modules)]))")
    listed, heavy = json.loads(run([sys.executable, "-c", code], repo).stdout)
    assert listed == ["echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles", TOY]
    assert heavy == []
    assert TOY in lstmops(repo, "sample", "--help").stdout


def test_repro_builds_every_stage_of_the_new_problem(repo):
    done = run(["dvc", "repro", f"register@{TOY}"], repo)
    for stage in STAGES:
        assert f"'{stage}@{TOY}'" in done.stdout, (stage, done.stdout)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert {f"{s}@{TOY}" for s in STAGES} <= set(lock)
    assert json.loads((repo / "data" / "validated" / f"{TOY}.json").read_text())["success"] is True
    headline = json.loads((repo / "metrics" / TOY / "evaluation.json").read_text())
    assert headline["primary"] == "accuracy" and headline["repeats"] == 2
    statistics = json.loads((repo / "metrics" / TOY / "statistics.json").read_text())
    assert statistics["primary_metric"] == "accuracy" and statistics["metrics"]["accuracy"]["n"] == 2
    assert 0 <= json.loads((repo / "metrics" / TOY / "final.json").read_text())["accuracy"] <= 1
    assert json.loads((repo / "metrics" / TOY / "registered.json").read_text())["champion"] == 1
    assert not (repo / "models" / "echo").exists()  # only the toy's chain was built


def test_sample_predict_observe_skill_serve_it(repo):
    rows = repo / "rows.csv"
    lstmops(repo, "sample", TOY, "-n", "4", "--seed", "3", "--with-targets", "-o", str(rows))
    assert rows.read_text().splitlines()[0] == "id,x_0,x_1,x_2,parity"
    listed = json.loads(lstmops(repo, "problems", "--json").stdout)
    toy = next(r for r in listed if r["problem"] == TOY)
    assert toy["champion"] == 1 and toy["task"].startswith("tell whether a bit sequence")
    predicted = lstmops(repo, "predict", TOY, "-i", str(rows), "--json")
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert len(lines) == 4 and {line["prediction"] for line in lines} <= {0, 1}
    assert all(line["text"].endswith(("→ odd", "→ even")) for line in lines)
    out = repo / "predicted.csv"
    bits = "id,x_0,x_1,x_2\nnew,1,0,1\n"
    run([sys.executable, "-m", "lstmops", "predict", TOY, "-i", "-", "-o", str(out)], repo, stdin=bits)
    assert out.read_text().splitlines()[0] == "id,model_version,parity,text"
    bad = run([sys.executable, "-m", "lstmops", "predict", TOY, "-i", "-"], repo, check=False,
              stdin="id,x_0,x_1,x_2\nb,1,2,1\n")
    assert bad.returncode == 2 and "column x_1 is 2" in bad.stderr and "Traceback" not in bad.stderr
    assert "4 observation(s) recorded" in lstmops(repo, "observe", TOY, "-i", str(rows)).stdout
    skill = json.loads(lstmops(repo, "skill", TOY, "--json").stdout)
    assert skill[-1]["n"] == 4 and 0 <= skill[-1]["accuracy"] <= 1
    # Monitoring knows it too: simulated traffic, then an Evidently check of the day in words.
    assert "2 days" in lstmops(repo, "monitor", "traffic", TOY, "--day", "2027-01-04", "--to", "2027-01-05").stdout
    checked = json.loads(lstmops(repo, "monitor", "check", TOY, "--day", "2027-01-04", "--json").stdout)[0]
    assert checked["problem"] == TOY and checked["observed"] > 0 and checked["skill"] is not None
    assert {c["column"] for c in checked["drift"]["inputs"]["columns"]} == {"ones"}
