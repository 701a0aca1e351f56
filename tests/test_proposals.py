"""Proposals and a person's decision: propose → approve → promoted (with its ledger row), reject, expire,
supersede; racing approvers in two processes; the CLI's list/approve/reject and one-line errors; a paused
flow run that cannot be resumed; shadow predictions of the previous model after a promotion."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from lstmops import cli
from lstmops.database import utcnow
from lstmops.errors import NoModelError, PromotionConflict, ProposalError, RegistryError
from lstmops.registry.proposals import evidence_summary
from lstmops.registry.versions import Registry, ledger_table
from lstmops.store.records import Store
from test_registry import _fresh_pg, pg_url  # noqa: F401 - the throw-away PostgreSQL server fixture
from tiny_bundles import bundle_copy, distinct_bundles, repo_root_with_params, save_tiny_bundle

SRC = Path(__file__).resolve().parents[1] / "src"
EVIDENCE = {"metric": "accuracy", "candidate": 0.998, "deployed": 0.101, "p_better": 1.0}
LATER = datetime(2099, 1, 1)


@pytest.fixture
def reg(tmp_path) -> Registry:
    """A registry with three echo versions (different metadata) and v1 the champion."""
    registry = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry")
    for folder in distinct_bundles(tmp_path):
        registry.register("echo", folder)
    registry.promote("echo", 1, reason="first", actor="build")
    return registry


def _propose(reg: Registry, version: int = 2, **kwargs):
    args = dict(evidence=EVIDENCE, report_path="reports/echo.html", weights_only=True, arm="a", expires_at=LATER,
                actor="gate")
    return reg.propose("echo", version, **(args | kwargs))


def test_propose_list_approve_promotes_with_its_ledger_row(reg):
    made = _propose(reg)
    assert (made.status, made.candidate_version, made.expected_champion, made.proposed_by) == ("pending", 2, 1, "gate")
    assert made.summary == "accuracy 0.998 vs 0.101, P(better) 1.00"
    assert [p.id for p in reg.proposals("echo", "pending")] == [made.id] and reg.proposals("echo", "rejected") == []
    assert reg.proposal("echo", made.id) == made and json.loads(json.dumps(made.to_dict()))["status"] == "pending"
    entry = reg.approve("echo", made.id, "ann", "  clearly better\non fresh data ")
    assert (entry.action, entry.champion, entry.replaced, entry.previous) == ("promote", 2, 1, 1)
    assert (entry.actor, entry.reason, entry.proposal_id, entry.weights_only) == (
        "ann", "clearly better on fresh data", made.id, True)
    assert "accuracy 0.998 vs 0.101" in entry.evidence and "reports/echo.html" in entry.evidence
    done = reg.proposal("echo", made.id)
    assert (done.status, done.decided_by, done.reason) == ("promoted", "ann", "clearly better on fresh data")
    assert reg.aliases("echo") == {"champion": 2, "previous": 1}
    with pytest.raises(ProposalError, match=f"proposal #{made.id} is already promoted by ann.*nothing was changed"):
        reg.approve("echo", made.id, "bob", "again")
    assert len(reg.ledger("echo")) == 2  # no second promotion


def test_reject_expire_and_errors(reg):
    first = _propose(reg)
    with pytest.raises(ProposalError, match="needs a reason"):
        reg.reject("echo", first.id, "ann", "  ")
    rejected = reg.reject("echo", first.id, "ann", "trained on a bad week")
    assert (rejected.status, rejected.decided_by, rejected.reason) == ("rejected", "ann", "trained on a bad week")
    with pytest.raises(ProposalError, match="already rejected"):
        reg.approve("echo", first.id, "bob", "ok")
    late = _propose(reg, 3, expires_at=utcnow() - timedelta(seconds=1))
    with pytest.raises(ProposalError, match="expired at .* can no longer be decided"):
        reg.approve("echo", late.id, "bob", "ok")
    assert reg.proposal("echo", late.id).status == "expired" and reg.aliases("echo")["champion"] == 1
    due = _propose(reg, 3, expires_at=utcnow() + timedelta(days=7))
    assert reg.expire_due(utcnow()) == [] and reg.proposal("echo", due.id).status == "pending"
    (expired,) = reg.expire_due(utcnow() + timedelta(days=8))
    assert expired.id == due.id and expired.status == "expired" and expired.reason.startswith("not decided by")
    with pytest.raises(ProposalError, match="no proposal #999"):
        reg.approve("echo", 999, "ann", "x")
    with pytest.raises(ProposalError, match="is for echo, not addition"):
        reg.reject("addition", due.id, "ann", "x")
    with pytest.raises(RegistryError, match="already the champion"):
        _propose(reg, 1)
    with pytest.raises(NoModelError, match="no version 9"):
        _propose(reg, 9)
    with pytest.raises(ProposalError, match="status must be one of"):
        reg.proposals(status="maybe")


def test_a_newer_proposal_supersedes_and_a_rerun_is_idempotent(reg):
    older = _propose(reg, 2)
    assert _propose(reg, 2, flow_run_id="run-b").id == older.id  # a re-run flow: the same proposal
    assert reg.proposal("echo", older.id).flow_run_id == "run-b"
    newer = _propose(reg, 3)
    old = reg.proposal("echo", older.id)
    assert old.status == "superseded" and f"superseded by proposal #{newer.id}" in old.reason
    with pytest.raises(ProposalError, match="already superseded"):
        reg.approve("echo", older.id, "ann", "ok")
    assert reg.attach_flow_run(newer.id, "run-c").flow_run_id == "run-c"
    with pytest.raises(ProposalError, match="already superseded"):
        reg.attach_flow_run(older.id, "run-d")
    with pytest.raises(PromotionConflict, match="not v3 as the gate assumed"):
        _propose(reg, 2, expect_champion=3)


def test_a_champion_changed_meanwhile_supersedes_the_proposal(reg):
    made = _propose(reg, 2)
    reg.promote("echo", 3, reason="hot fix by hand", actor="ops")
    with pytest.raises(PromotionConflict, match="champion is v3, not v1 as when proposal .* now superseded"):
        reg.approve("echo", made.id, "ann", "looks good")
    after = reg.proposal("echo", made.id)
    assert after.status == "superseded" and "champion changed from v1 to v3" in after.reason
    assert reg.aliases("echo") == {"champion": 3, "previous": 1} and len(reg.ledger("echo")) == 2


_APPROVER = """
import sys, time
from pathlib import Path
from lstmops.registry import versions
from lstmops.registry.versions import Registry
from lstmops.errors import LstmopsError

url, folder, pid, name, go = sys.argv[1:]
reg = Registry(url, Path(folder))
versions.crash_hook = lambda step: time.sleep(0.5) if step == "champion-set" else None  # hold the lock a while
while not Path(go).exists():
    time.sleep(0.01)
try:
    print("won", reg.approve("echo", int(pid), name, "racing").id)
except LstmopsError as err:
    print("lost", err)
"""


def test_two_approvers_in_two_processes_one_wins(reg, tmp_path):
    made = _propose(reg)
    go = tmp_path / "go"
    env = os.environ | {"PYTHONPATH": str(SRC)}
    procs = [subprocess.Popen([sys.executable, "-c", _APPROVER, reg.url, str(reg.folder), str(made.id), name,
                               str(go)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in ("ann", "bob")]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    lines = sorted(out.strip() for out, _ in outs)
    assert [line.split()[0] for line in lines] == ["lost", "won"], outs
    assert "already promoted" in lines[0] and "nothing was changed" in lines[0]
    promotions = [e for e in reg.ledger("echo") if e.proposal_id == made.id]
    assert len(promotions) == 1 and reg.proposal("echo", made.id).decided_by == promotions[0].actor


def test_evidence_summaries():
    assert evidence_summary({"summary": "as the report says"}) == "as the report says"
    gate = {"verdict": "PROMOTE", "winner": "b", "metric": "mae", "means": {"deployed": 0.31, "b": 0.12},
            "candidates": [{"name": "b", "tests": {"deployed": {"p_improve": 0.97}}}]}
    assert evidence_summary(gate) == "mae 0.12 vs 0.31, P(better) 0.97"
    assert evidence_summary({}) == "-"


# --- the command line ------------------------------------------------------------


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(cli.app, list(args), env=env, catch_exceptions=False, prog_name="lstmops")


def test_cli_list_approve_reject_and_one_line_errors(reg):
    env = {"LSTMOPS_DB_URL": reg.url}
    first = _propose(reg, 2, weights_only=False, arm="c")
    listed = run(env, "proposals", "list", "echo")
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()
    for word in ("id", "problem", "candidate", "champion", "arm", "weights-only", "created", "expires", "status",
                 "evidence"):
        assert word in header
    assert "v2" in row and "v1" in row and "pending" in row and "accuracy 0.998 vs 0.101, P(better) 1.00" in row
    assert json.loads(run(env, "proposals", "list", "--json").stdout)[0]["id"] == first.id
    assert run(env, "proposals", "list", "--status", "rejected").stdout.strip() == "no proposals rejected"
    for args, message in [(["approve", "echo", str(first.id)], "approve needs --reason"),
                          (["approve", "echo", "77", "--reason", "x"], "no proposal #77"),
                          (["reject", "echo", str(first.id), "--reason", " "], "reject needs --reason"),
                          (["proposals", "list", "--status", "maybe"], "--status must be one of")]:
        bad = run(env, *args)
        assert bad.exit_code == 2 and len(bad.stderr.strip().splitlines()) == 1 and message in bad.stderr, bad.output
    ok = run(env, "approve", "echo", str(first.id), "--reason", "better on fresh data", "--actor", "ann")
    assert ok.exit_code == 0 and (f"proposal #{first.id} approved by ann: v2 is the champion, previous v1"
                                  in ok.stdout), ok.output
    again = run(env, "approve", "echo", str(first.id), "--reason", "twice")
    assert again.exit_code == 2 and "already promoted by ann" in again.stderr
    entry = reg.ledger("echo")[0]
    assert (entry.proposal_id, entry.weights_only, entry.actor) == (first.id, False, "ann")
    second = _propose(reg, 3)
    no = run(env, "reject", "echo", str(second.id), "--reason", "not now", "--actor", "bob", "--json")
    assert no.exit_code == 0 and json.loads(no.stdout)["proposal"]["status"] == "rejected"
    late = _propose(reg, 3, expires_at=utcnow() - timedelta(minutes=1))
    expired = run(env, "reject", "echo", str(late.id), "--reason", "x")
    assert expired.exit_code == 2 and "expired at" in expired.stderr
    statuses = {p["id"]: p["status"] for p in json.loads(run(env, "proposals", "list", "--json").stdout)}
    assert statuses == {first.id: "promoted", second.id: "rejected", late.id: "expired"}


def test_approval_stands_when_the_paused_flow_cannot_be_resumed(reg, tmp_path):
    made = _propose(reg, flow_run_id="0b6f1c1e-8a35-4f0e-9a8e-3f0d2b4f5a6b")
    env = os.environ | {"PYTHONPATH": str(SRC), "LSTMOPS_DB_URL": reg.url, "PREFECT_HOME": str(tmp_path / "prefect"),
                        "PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_API_REQUEST_TIMEOUT": "5",
                        "PREFECT_CLIENT_MAX_RETRIES": "0", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    out = subprocess.run([sys.executable, "-m", "lstmops", "approve", "echo", str(made.id), "--reason", "go"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "approved by" in out.stdout and "v2 is the champion" in out.stdout
    assert "note: could not resume flow run 0b6f1c1e" in out.stderr and "the decision is recorded" in out.stderr
    assert reg.proposal("echo", made.id).status == "promoted" and reg.aliases("echo")["champion"] == 2


def test_resume_sends_the_decision_as_run_input(monkeypatch):
    pytest.importorskip("prefect")
    import prefect.flow_runs

    from lstmops.update import orchestration

    seen = []
    monkeypatch.setattr(prefect.flow_runs, "resume_flow_run", lambda run_id, run_input: seen.append((run_id,
                                                                                                  run_input)))
    note = orchestration.resume_waiting_run("0b6f1c1e-8a35-4f0e-9a8e-3f0d2b4f5a6b",
                                            {"approve": True, "reason": "go", "actor": "ann"})
    assert note.startswith("resumed flow run") and seen[0][1] == {"approve": True, "reason": "go", "actor": "ann",
                                                                   "decided_in": "cli"}
    assert "not a Prefect run id" in orchestration.resume_waiting_run("nope", {})


# --- shadow predictions ------------------------------------------------------------


@pytest.fixture
def served(tmp_path) -> dict[str, str]:
    """echo v1 and v2 (different weights) registered, v2 promoted over v1 by an approved proposal."""
    root = repo_root_with_params(tmp_path / "repo")
    url = f"sqlite:///{root / 'registry' / 'lstmops.db'}"
    registry = Registry(url, root / "registry")
    registry.register("echo", bundle_copy("echo", tmp_path / "v1"))
    registry.register("echo", save_tiny_bundle("echo", tmp_path / "v2", seed=1))
    registry.promote("echo", 1, reason="first")
    made = registry.propose("echo", 2, EVIDENCE, None, True, "a", LATER, actor="gate")
    registry.approve("echo", made.id, "ann", "better")
    return {"LSTMOPS_ROOT": str(root), "LSTMOPS_DB_URL": url, "LSTMOPS_JAX_CACHE": str(root / "jax-cache")}


def _rows(path: Path, start: int, n: int = 3) -> Path:
    lines = ["id,x_0,x_1,x_2,x_3,x_4,target"] + [f"r{start + i},{i},2,3,4,5,{i}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_shadow_predictions_after_a_promotion_and_skill_side_by_side(served, tmp_path, monkeypatch):
    from lstmops.serving.predict import predict, shadow_version
    from lstmops.serving.rawio import read_rows

    url = served["LSTMOPS_DB_URL"]
    registry, store = Registry(url), Store(url)
    rows = _rows(tmp_path / "a.csv", 0)
    out = run(served, "predict", "echo", "-i", str(rows))
    assert out.exit_code == 0 and "shadow: model v1 predicted the same rows" in out.stderr, out.output
    assert store.counts("echo")["predictions"] == 3 and store.shadow_count("echo", 1) == 3
    assert run(served, "observe", "echo", "-i", str(rows)).exit_code == 0
    skill = json.loads(run(served, "skill", "echo", "--json").stdout)
    assert sorted((r["model_version"], r["role"], r["n"]) for r in skill) == [(1, "shadow", 3), (2, "served", 3)]
    table = run(served, "skill", "echo").stdout
    assert "role" in table.splitlines()[0] and "shadow" in table and "served" in table
    assert [r["role"] for r in store.skill("echo", shadow=False)] == ["served"]

    # after shadow_days the previous model is no longer run
    assert shadow_version(registry, "echo", 2, 14) == 1
    assert shadow_version(registry, "echo", 2, 14, now=utcnow() + timedelta(days=15)) is None
    assert shadow_version(registry, "echo", 1, 14) is None and shadow_version(registry, "echo", 2, 0) is None
    with registry.engine.begin() as conn:
        conn.execute(update(ledger_table).values(at=utcnow() - timedelta(days=30)))
    assert run(served, "predict", "echo", "-i", str(_rows(tmp_path / "b.csv", 10))).exit_code == 0
    assert store.counts("echo")["predictions"] == 6 and store.shadow_count("echo") == 3
    batch = predict("echo", read_rows("echo", _rows(tmp_path / "c.csv", 20)), registry, store, shadow=True)
    assert batch.shadow_version == 1 and store.shadow_count("echo") == 6  # forced on
    assert predict("echo", read_rows("echo", _rows(tmp_path / "d.csv", 30)), registry, store).shadow_version is None


def test_a_shadow_model_that_fails_never_fails_serving(served, tmp_path, caplog):
    from lstmops.serving.predict import predict
    from lstmops.serving.rawio import read_rows

    url = served["LSTMOPS_DB_URL"]
    registry, store = Registry(url), Store(url)
    weights = registry.resolve("echo", 1).folder / "model.weights.h5"
    weights.write_bytes(b"corrupt")  # the previous model can no longer load (checksum mismatch)
    delivered = []
    batch = predict("echo", read_rows("echo", _rows(tmp_path / "a.csv", 0)), registry, store,
                    deliver=delivered.append, shadow_days=14)
    assert delivered == [batch] and batch.version == 2 and batch.shadow_version is None
    assert "shadow model v1 skipped" in batch.shadow_note and "served predictions are unaffected" in caplog.text
    assert store.counts("echo")["predictions"] == 3 and store.shadow_count("echo") == 0


def test_the_same_life_cycle_and_race_on_postgresql(pg_url, tmp_path):  # noqa: F811 - the fixture
    import threading
    import time

    from lstmops.registry import versions as registry_module

    url = _fresh_pg(pg_url, "lstmops_proposals")
    registry = Registry(url, tmp_path / "registry")
    registry.register("echo", bundle_copy("echo", tmp_path / "v1"))
    registry.register("echo", save_tiny_bundle("echo", tmp_path / "v2", seed=1))
    registry.promote("echo", 1, reason="first")
    made = _propose(registry)
    results: dict[str, object] = {}

    def approver(name: str) -> None:
        try:
            results[name] = Registry(url, registry.folder).approve("echo", made.id, name, "racing")
        except RegistryError as err:
            results[name] = err

    registry_module.crash_hook = lambda step: time.sleep(0.5) if (
        step == "champion-set" and threading.current_thread().name == "ann") else None
    try:
        threads = [threading.Thread(target=approver, args=(name,), name=name) for name in ("ann", "bob")]
        threads[0].start()
        time.sleep(0.1)
        threads[1].start()
        for t in threads:
            t.join(60)
    finally:
        registry_module.crash_hook = None
    assert results["ann"].proposal_id == made.id and "already promoted by ann" in str(results["bob"])
    assert registry.aliases("echo") == {"champion": 2, "previous": 1} and len(registry.ledger("echo")) == 2
    second = _propose(registry, 1, expires_at=utcnow() - timedelta(seconds=1))
    assert [p.id for p in registry.expire_due()] == [second.id]
