"""Real processes against real SQLite files: racing promoters, concurrent prediction logging
(on a database neither has created yet), and promoters killed with SIGKILL at random points."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lstmops.registry.versions import Registry
from lstmops.store.records import Store

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)

# One worker for every scenario. It waits for the parent's "go" file, so that the
# processes really start together after their (slow) imports.
_WORKER = r"""
import json, os, sys, time
from pathlib import Path
from lstmops.errors import PromotionConflict
from lstmops.registry import versions
from lstmops.store.records import Store
mode, url, folder, go = sys.argv[1:5]
if mode == "promote" and os.environ.get("HOLD_S"):  # hold the write lock a while: the other promoter must wait
    versions.crash_hook = lambda step: time.sleep(float(os.environ["HOLD_S"])) if step == "champion-set" else None
if mode == "churn":  # slow inside each transaction, so that kills land mid-way too
    versions.crash_hook = lambda step: time.sleep(0.02)
reg = versions.Registry(url, Path(folder)) if mode != "log" else None
Path(go + "." + str(os.getpid())).touch()  # ready
while not Path(go).exists():
    time.sleep(0.01)
if mode == "promote":
    try:
        done = reg.promote("echo", int(sys.argv[5]), reason=f"pid {os.getpid()}", expect_champion=1)
        print(json.dumps({"won": done.champion}))
    except PromotionConflict as err:
        print(json.dumps({"conflict": str(err)}))
elif mode == "log":
    store = Store(url)  # a new database: both processes migrate it at once
    tag = sys.argv[5]
    for batch in range(20):
        ids = [f"{tag}-{batch}-{i}" for i in range(25)]
        store.log_predictions("echo", 1, ids, [{"x_0": i} for i in range(25)], list(range(25)))
    print(json.dumps({"logged": 20 * 25}))
elif mode == "churn":  # promote and roll back until killed
    for i in range(10_000):
        champion = reg.aliases("echo")["champion"]
        if i % 3 == 2:
            reg.rollback("echo", reason="churn", expect_champion=champion)
        else:
            reg.promote("echo", 1 + (champion % 3), reason="churn", expect_champion=champion)
"""


def _fake_bundle(folder: Path, variant: int) -> Path:
    """A bundle the registry accepts (files plus checksums): no Keras needed to move files around."""
    folder.mkdir(parents=True)
    contents = {"model.json": b"{}", "model.weights.h5": bytes([variant]) * 64, "preprocessing.json": b"{}",
                "metadata.json": json.dumps({"architecture": "vanilla", "variant": variant}).encode()}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    (folder / "checksums.json").write_text(json.dumps(sums))
    return folder


def _start(tmp_path: Path, jobs: list[list[str]], env: dict | None = None) -> tuple[list, Path]:
    """Start one worker per job; returns the processes and the "go" file, once all are ready."""
    go = tmp_path / f"go-{random.randrange(10**9)}"
    environ = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, mode, *args[:2], str(go), *args[2:]],
                              env=environ | (env or {}), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for mode, *args in jobs]
    deadline = time.time() + 60
    while not all(Path(f"{go}.{p.pid}").exists() for p in procs):
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.02)
    return procs, go


def _results(procs: list) -> list[dict]:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


@pytest.fixture
def reg(tmp_path) -> Registry:
    """A registry with versions 1-3 of echo, v1 champion."""
    registry = Registry(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "registry")
    for i in range(3):
        registry.register("echo", _fake_bundle(tmp_path / f"bundle{i}", i))
    registry.promote("echo", 1, reason="first")
    return registry


def test_two_processes_promoting_with_the_same_expectation_one_wins(tmp_path, reg):
    procs, go = _start(tmp_path, [["promote", reg.url, str(reg.folder), "2"],
                                  ["promote", reg.url, str(reg.folder), "3"]], env={"HOLD_S": "0.3"})
    go.touch()
    results = _results(procs)
    winners = [r["won"] for r in results if "won" in r]
    conflicts = [r["conflict"] for r in results if "conflict" in r]
    assert len(winners) == 1 and len(conflicts) == 1, results
    assert f"champion is v{winners[0]}, not v1 as expected" in conflicts[0]
    ledger = reg.ledger("echo")
    assert len(ledger) == 2 and (ledger[0].champion, ledger[0].replaced) == (winners[0], 1)
    assert reg.aliases("echo") == {"champion": winners[0], "previous": 1}


def test_two_processes_logging_to_a_new_store_lose_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    procs, go = _start(tmp_path, [["log", url, "-", "a"], ["log", url, "-", "b"]])
    go.touch()
    assert _results(procs) == [{"logged": 500}, {"logged": 500}]
    store = Store(url)
    assert store.counts("echo") == {"predictions": 1000, "observations": 0}
    assert len(store.known_ids("echo", [f"{t}-{b}-{i}" for t in "ab" for b in range(20) for i in range(25)])) == 1000


def _check_consistent(reg: Registry) -> None:
    """Every version verifies, one champion, and the newest ledger row says what the aliases say."""
    for mv in reg.versions("echo"):
        reg.verify(mv)
    aliases = reg.aliases("echo")
    assert [v.version for v in reg.versions("echo") if "champion" in v.aliases] == [aliases["champion"]]
    last = reg.ledger("echo", limit=1)[0]
    assert (last.champion, last.previous) == (aliases["champion"], aliases.get("previous"))
    assert last.revision == len(reg.ledger("echo"))


def test_promoters_killed_at_random_points_leave_a_consistent_registry(tmp_path, reg):
    rng = random.Random(7)
    for _ in range(6):
        (proc,), go = _start(tmp_path, [["churn", reg.url, str(reg.folder)]])
        go.touch()
        time.sleep(rng.uniform(0.05, 0.6))
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        _check_consistent(reg)
    assert len(reg.ledger("echo")) > 6  # the churn did change the champion between kills
