"""The real Prefect update flow on tiny settings: collect → gate → proposal → approval or rejection.

Runs the flows in this process against Prefect's test harness (a temporary local API),
with the arms fanned out on a real process pool, in a temporary git + DVC repository
holding a tiny trained echo champion. Echo's concept drift (out_index 2 → 3 from
2027-01-15) makes the champion wrong after the drift, so the gate must propose.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TINY = {
    "seed": 5, "as_of": "2026-11-01",
    "problems": {"echo": {
        "architecture": "vanilla", "process": {"out_index": 2},
        "sizes": {"train": 400, "validation": 50, "test": 50},
        "model": {"cells": 16, "learning_rate": 0.02},
        "train": {"batch_size": 32, "epochs": 3, "patience": 1},
        "drift": [{"kind": "sudden", "start": "2027-01-15", "set": {"out_index": 3}}],
    }},
    "update": {"batch_size": 400, "eval_size": 200, "old_size": 300, "extra_epochs": 3, "lr_factor": 1.0,
               "fresh_epochs": 3, "repeats": 2, "max_repeats": 2, "workers": 2, "approval_days": 7,
               "gate": {"min_repeats": 2, "bootstrap": 300, "min_gain": {"echo": 0.02}}},
}

pytestmark = pytest.mark.flow


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def _champion_and_old_data(root: Path) -> None:
    """The build's echo training split and a tiny trained echo bundle at ``root/bundle``."""
    from lstmops import paths
    from lstmops.config import parse_settings
    from lstmops.data.io import write_table
    from lstmops.features.preparers import make_preparer
    from lstmops.modeling.bundle import save_bundle
    from lstmops.modeling.training import fit, make_task
    from lstmops.problems import get_problem

    cfg, echo = parse_settings(TINY).problems["echo"], get_problem("echo")
    old = echo.generate(echo.Params(), 400, np.random.default_rng(1))
    write_table(old, paths.raw_split("echo", "train", root))
    preparer = make_preparer("echo", cfg.process).fit(old)
    task = make_task(echo, preparer.input_shape, preparer.target_shape, len(old), cfg.train)
    model = fit("vanilla", cfg.model, task, (preparer.inputs(old), preparer.targets(old)), None, cfg.train, 7).model
    meta = {"problem": "echo", "architecture": "vanilla", "seed": 7, "settings": json.loads(cfg.model_dump_json())}
    save_bundle(model, preparer, meta, root / "bundle")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A git + DVC repository with tiny params, the build's training split, a trained champion; a Prefect API."""
    from prefect.testing.utilities import prefect_test_harness

    from lstmops.registry import Registry

    root = tmp_path_factory.mktemp("flow")
    (root / "params.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    _git(root, "init", "-q")
    _git(root, "config", "user.email", "t@example.org")
    _git(root, "config", "user.name", "test")
    dvc = [str(Path(sys.executable).parent / "dvc")]
    subprocess.run([*dvc, "init", "-q"], cwd=root, check=True)
    subprocess.run([*dvc, "remote", "add", "-d", "storage", str(root / "remote")], cwd=root, check=True)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "init")

    _champion_and_old_data(root)

    env = {"LSTMOPS_ROOT": str(root), "LSTMOPS_DB_URL": f"sqlite:///{root / 'registry' / 'lstmops.db'}",
           "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    registry = Registry(folder=root / "registry")
    registry.register("echo", root / "bundle")
    registry.promote("echo", 1, reason="first model", expect_champion=None)
    with prefect_test_harness(server_startup_timeout=120):
        yield {"root": root, "registry": registry}
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def test_a_drifted_champion_gets_a_proposal_and_the_cli_approves_it(world):
    from flows.update import update

    from lstmops.cli import app
    from typer.testing import CliRunner

    outcome = update("echo", "2027-02-01", wait_for_approval=False)
    assert outcome["verdict"] == "PROMOTE", outcome
    proposal = outcome["proposal"]
    assert proposal["status"] == "pending" and proposal["expected_champion"] == 1
    assert outcome["line"].startswith("echo: PROMOTE candidate (")
    root = world["root"]
    assert (root / "data" / "batches" / "echo" / "2027-02-01.dvc").is_file()
    assert (root / "updates" / "echo" / "2027-02-01" / "gate.json").is_file()

    again = update("echo", "2027-02-01", wait_for_approval=False)  # a re-run resumes: nothing repeated
    assert again["proposal"]["id"] == proposal["id"]
    assert len(world["registry"].versions("echo")) == 2

    done = CliRunner().invoke(app, ["approve", "echo", str(proposal["id"]), "--reason", "recovers after drift"],
                              prog_name="lstmops")
    assert done.exit_code == 0, done.output
    registry = world["registry"]
    assert registry.aliases("echo") == {"champion": proposal["candidate_version"], "previous": 1}
    entry = registry.ledger("echo", limit=1)[0]
    assert entry.proposal_id == proposal["id"] and entry.reason == "recovers after drift"


def test_a_paused_run_is_resumed_from_prefect_and_rejects(world):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter
    from prefect.flow_runs import resume_flow_run

    from flows.update import update

    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(update("echo", "2027-02-08", approval_timeout_s=300)))
    worker.start()
    paused = None
    deadline = time.monotonic() + 600
    with get_client(sync_client=True) as client:
        while paused is None and time.monotonic() < deadline and worker.is_alive():
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(state={"name": {"any_": ["Paused"]}}))
            paused = runs[0] if runs else None
            time.sleep(1)
    assert paused is not None, result
    # while it waits for a person, a second update of the same problem is refused (the lock is held)
    from lstmops.update.lock import UpdateBusy

    with pytest.raises(UpdateBusy):
        update.fn("echo", "2027-02-09", wait_for_approval=False)
    resume_flow_run(paused.id, run_input={"approve": False, "reason": "not this week", "actor": "ann"})
    worker.join(timeout=120)
    assert result.get("decision") == "rejected", result
    proposal = world["registry"].proposal("echo", result["proposal"]["id"])
    assert proposal.status == "rejected" and proposal.decided_by == "ann"


def test_a_batch_of_another_shape_is_quarantined_and_nothing_changes(world):
    from flows.update import update

    root = world["root"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["problems"]["echo"]["drift"].append({"kind": "sudden", "start": "2027-03-01", "set": {"length": 6}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = world["registry"].aliases("echo")
    try:
        outcome = update("echo", "2027-03-02", wait_for_approval=False)
    finally:
        params["problems"]["echo"]["drift"].pop()
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert outcome["verdict"] == "QUARANTINED", outcome
    assert "length" in outcome["reason"] or "shape" in outcome["reason"], outcome
    assert world["registry"].aliases("echo") == before
    assert (root / "data" / "quarantine" / "echo" / "2027-03-02").is_dir()
    assert not (root / "data" / "batches" / "echo" / "2027-03-02").exists()


def test_the_arms_fan_out_on_a_local_dask_cluster_and_a_rerun_trains_only_what_is_missing(world):
    from flows.update import _context, develop

    run = _context("echo", "2027-02-01")
    run.settings = run.settings.model_copy(update={"update": run.settings.update.model_copy(
        update={"runner": "dask", "workers": 2})})
    data = run.data()
    before = {(r.arm, r.repeat) for r in run.results()}
    assert before and not run.jobs(data, 2)  # the first test trained 2 repeats: nothing is missing
    develop(run, data, 3)  # one more repeat per arm, on two Dask worker processes
    after = {(r.arm, r.repeat) for r in run.results()}
    assert after - before == {(arm, 2) for arm in ("a", "b", "c", "d", "baseline")}
