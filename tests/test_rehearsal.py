"""The rehearsal: its own world, the real flows through simulated days, rollback, decisions, bad input.

The end-to-end test builds a small "real" repository (tiny echo settings, a trained echo
champion in its registry, the build's training split), starts a Prefect server on
127.0.0.1 as a user would have one, and rehearses ten days with ``--approve auto``: a
deliberately bad model approved on the first day must be found worse than the previous
model in shadow and rolled back, echo's concept drift must raise an alarm, trigger an
update that promotes, and nothing of the real registry may change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LSTMOPS = str(Path(sys.executable).parent / "lstmops")

TINY = {
    "seed": 11, "as_of": "2026-11-01",
    "problems": {"echo": {
        "architecture": "vanilla", "process": {"out_index": 2},
        "sizes": {"train": 2000, "validation": 200, "test": 200},
        "model": {"cells": 16, "learning_rate": 0.02},
        "train": {"batch_size": 32, "epochs": 4, "patience": 2},
        "drift": [{"kind": "sudden", "start": "2027-01-14", "set": {"out_index": 3}}],
    }},
    "update": {"batch_size": 600, "eval_size": 200, "old_size": 300, "extra_epochs": 3, "lr_factor": 1.0,
               "fresh_epochs": 3, "repeats": 3, "max_repeats": 3, "workers": 1, "replicas": 3,
               "gate": {"min_repeats": 3, "bootstrap": 300, "min_gain": {"echo": 0.02}}},
    "monitoring": {"reference_size": 200, "traffic": {"requests": 60}, "cooldown_days": 2},
}
PRESETS = {"small": {"update": {"batch_size": 500}}, "quick": {"update": {"batch_size": 300}},
           "broken": {"update": {"repeats": "many"}}}


def _run(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LSTMOPS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 'real' repository: tiny params, presets, the training split, a trained echo champion."""
    from lstmops import paths
    from lstmops.config import parse_settings
    from lstmops.data.io import write_table
    from lstmops.features.preparers import make_preparer
    from lstmops.modeling.bundle import save_bundle
    from lstmops.modeling.training import fit, make_task
    from lstmops.problems import get_problem
    from lstmops.registry import Registry

    root = tmp_path_factory.mktemp("real")
    (root / "params.yaml").write_text(yaml.safe_dump(TINY, sort_keys=False))
    (root / "rehearsal.yaml").write_text(yaml.safe_dump(PRESETS, sort_keys=False))
    settings = parse_settings(TINY)
    cfg, echo = settings.problems["echo"], get_problem("echo")
    old = echo.generate(echo.Params(), 2000, np.random.default_rng(1))
    write_table(old, paths.raw_split("echo", "train", root))
    preparer = make_preparer("echo", cfg.process).fit(old)
    task = make_task(echo, preparer.input_shape, preparer.target_shape, len(old), cfg.train)
    model = fit("vanilla", cfg.model, task, (preparer.inputs(old), preparer.targets(old)), None, cfg.train, 7).model
    meta = {"problem": "echo", "architecture": "vanilla", "seed": 7, "settings": json.loads(cfg.model_dump_json()),
            "data_date": "2026-11-01"}
    save_bundle(model, preparer, meta, root / "bundle")
    registry = Registry(url=f"sqlite:///{root / 'registry' / 'lstmops.db'}", folder=root / "registry")
    registry.register("echo", root / "bundle")
    registry.promote("echo", 1, reason="first model", expect_champion=None)
    env = {**os.environ, "LSTMOPS_ROOT": str(root), "LSTMOPS_DB_URL": f"sqlite:///{root / 'registry' / 'lstmops.db'}",
           "KERAS_BACKEND": "jax", "DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false"}
    env.pop("LSTMOPS_CLOCK", None)
    return {"root": root, "env": env, "registry": registry}


@pytest.fixture(scope="module")
def rehearsed(source):
    """Ten rehearsed days against a Prefect server started here (the user's server)."""
    from lstmops.rehearsal.run import start_prefect

    root, env = source["root"], dict(source["env"])
    (root / "logs").mkdir(exist_ok=True)
    server, url = start_prefect(root)
    try:
        env["PREFECT_API_URL"] = url
        done = _run("rehearse", "--from", "2027-01-09", "--to", "2027-01-18", "--name", "t", "--sizes", "small",
                    "--bad-candidate", "echo@2027-01-09", "--workers", "1", env=env, cwd=root)
        runs = subprocess.run([sys.executable, "-c", (
            "from prefect import get_client\n"
            "from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags\n"
            "with get_client(sync_client=True) as c:\n"
            "    runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=['rehearsal'])))\n"
            "    print(len(runs), sorted({t for r in runs for t in r.tags}))")],
            env=env, capture_output=True, text=True, timeout=120)
    finally:
        server.terminate()
        server.wait(30)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"done": done, "folder": root / "rehearsals" / "t", "runs": runs.stdout}


def _decisions(folder: Path) -> list[dict]:
    return json.loads((folder / "rehearsal.json").read_text())["decisions"]


@pytest.mark.flow
def test_a_bad_model_is_found_worse_than_the_previous_one_and_rolled_back(rehearsed):
    rows = _decisions(rehearsed["folder"])
    bad = [r for r in rows if r["event"] == "bad candidate approved"]
    assert [(r["day"], r["champion"]) for r in bad] == [("2027-01-09", 2)]
    back = [r for r in rows if r["event"] == "rollback"]
    assert back, rows
    # the bad model served 01-09, its outcomes arrive 01-10, the check on the morning of 01-11 finds it
    assert back[0]["day"] <= "2027-01-12" and back[0]["champion"] == 1
    assert any(r["event"] == "alarm: worse than previous" and r["day"] <= back[0]["day"] for r in rows)
    # skill returns: the bad model's served day against a day the restored model served (before the drift)
    from lstmops import paths

    def served(day: str) -> tuple[int, float]:
        record = json.loads(paths.interval_record("echo", "day", day, rehearsed["folder"]).read_text())
        return record["champion_version"], record["skill"]["served"]

    (bad_version, bad_skill), (good_version, good_skill) = served("2027-01-09"), served("2027-01-12")
    assert bad_version == 2 and good_version == 1 and good_skill > bad_skill + 0.3


@pytest.mark.flow
def test_the_drift_raises_an_alarm_and_an_update_promotes_its_candidate(rehearsed):
    rows = _decisions(rehearsed["folder"])
    alarms = [r for r in rows if r["event"].startswith("alarm: concept drift")]
    assert alarms and alarms[0]["day"] <= "2027-01-16", rows
    promoted = [r for r in rows if r["event"] == "approved" and r["day"] >= "2027-01-14"]
    assert promoted, rows
    updates = [r for r in rows if r["event"].startswith("update")]
    assert any("PROMOTE" in r["detail"] for r in updates)
    assert rows[-1]["champion"] not in (1, 2)  # a candidate of the drifted process serves at the end


@pytest.mark.flow
def test_the_rehearsal_writes_only_to_its_own_world(rehearsed, source):
    from lstmops.registry import Registry

    real = source["registry"]
    assert real.aliases("echo") == {"champion": 1}
    assert [row.action for row in real.ledger("echo")] == ["initial"]
    assert not (source["root"] / "updates").exists() and not (source["root"] / "monitoring").exists()
    own = Registry(url=f"sqlite:///{rehearsed['folder'] / 'registry' / 'lstmops.db'}",
                   folder=rehearsed["folder"] / "registry")
    ledger = own.ledger("echo")
    # every row is the rehearsal's, dated on the simulated clock
    assert all(row.actor.startswith("rehearsal") for row in ledger)
    assert all(datetime(2027, 1, 9) <= row.at < datetime(2027, 1, 20) for row in ledger)
    assert {"rollback", "promote"} <= {row.action for row in ledger}
    count, _, tags = rehearsed["runs"].partition(" ")
    assert int(count) >= 10 and "rehearsal:t" in tags  # monitoring and update flow runs, tagged


@pytest.mark.flow
def test_the_report_shows_the_rehearsal_and_its_decisions(rehearsed):
    folder = rehearsed["folder"]
    index = (folder / "monitoring" / "reports" / "index.html").read_text()
    assert "Rehearsal t" in index and "Decisions of the rehearsal" in index and "rollback" in index
    page = next((folder / "monitoring" / "reports").glob("echo-2027-01-*.html")).read_text()
    assert "<svg" in page
    table = (folder / "decisions.csv").read_text().splitlines()
    assert table[0] == "day,problem,event,detail,champion" and len(table) == len(_decisions(folder)) + 1
    out = rehearsed["done"].stdout
    assert "report:" in out and "bad candidate approved" in out


@pytest.mark.parametrize("args, words", [
    (["--from", "2027-13-01", "--to", "2027-01-05"], "is not a date"),
    (["--from", "2027-01-05", "--to", "2027-01-01"], "is before --from"),
    (["--from", "2027-01-01", "--to", "2027-01-05", "-p", "nope"], "nope"),
    (["--from", "2027-01-01", "--to", "2027-01-05", "--approve", "maybe"], "--approve must be one of"),
    (["--from", "2027-01-01", "--to", "2027-01-05", "--sizes", "huge"], "no preset 'huge'"),
    (["--from", "2027-01-01", "--to", "2027-01-05", "--sizes", "broken"], "rehearsal.yaml"),
    (["--from", "2027-01-01", "--to", "2027-01-05", "--bad-candidate", "echo"], "PROBLEM@YYYY-MM-DD"),
    (["--from", "2027-01-01", "--to", "2027-01-05", "--bad-candidate", "echo@2027-02-01"], "outside"),
])
def test_bad_arguments_fail_in_one_line_and_create_nothing(source, tmp_path, args, words):
    done = _run("rehearse", "--name", "bad", *args, env=source["env"], cwd=source["root"])
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("lstmops rehearse: error:") and words in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (source["root"] / "rehearsals" / "bad").exists()


def test_an_existing_rehearsal_is_kept_unless_replaced(source, tmp_path):
    folder = source["root"] / "rehearsals" / "kept"
    folder.mkdir(parents=True)
    (folder / "mine.txt").write_text("keep me")
    done = _run("rehearse", "--from", "2027-01-01", "--to", "2027-01-02", "--name", "kept", env=source["env"],
                cwd=source["root"])
    assert done.returncode == 2 and "exists" in done.stderr
    replaced = _run("rehearse", "--from", "2027-01-01", "--to", "2027-01-02", "--name", "kept", "--replace",
                    env=source["env"], cwd=source["root"])
    assert replaced.returncode == 2 and "not a rehearsal" in replaced.stderr  # not ours: never deleted
    assert (folder / "mine.txt").read_text() == "keep me"


def test_presets_merge_key_by_key_and_are_checked(source):
    from lstmops.rehearsal.presets import merge, rehearsal_params

    assert merge({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 5}}) == {"a": {"b": 5, "c": 2}, "d": 3}
    merged = rehearsal_params(TINY, "small", source["root"])
    assert merged["update"]["batch_size"] == 500 and merged["update"]["eval_size"] == 200
    assert TINY["update"]["batch_size"] == 600  # the input is not changed


def test_the_simulated_clock():
    from lstmops.database import CLOCK_ENV, set_clock, utcnow
    from lstmops.errors import InputError

    saved = os.environ.pop(CLOCK_ENV, None)
    try:
        assert abs((utcnow() - datetime.utcnow()).total_seconds()) < 5
        set_clock(datetime(2027, 1, 18, 6))
        first = utcnow()
        assert datetime(2027, 1, 18, 6) <= first < datetime(2027, 1, 18, 6, 1) and utcnow() >= first
        os.environ[CLOCK_ENV] = "soon"
        with pytest.raises(InputError, match=CLOCK_ENV):
            utcnow()
    finally:  # set_clock writes os.environ itself: the simulated time must not leak into later tests
        os.environ.pop(CLOCK_ENV, None)
        if saved is not None:
            os.environ[CLOCK_ENV] = saved


def test_schedule_and_worker_groups():
    from lstmops.rehearsal.driver import scheduled
    from lstmops.rehearsal.run import groups

    assert scheduled("0 6 * * 1", date(2027, 1, 18)) and not scheduled("0 6 * * 1", date(2027, 1, 19))
    assert scheduled("0 5 * * *", date(2027, 1, 19))
    six = ["echo", "damped_sine", "moving_square", "addition", "cumulative_sum", "rectangles"]
    split = groups(six, 2)
    assert len(split) == 2 and sorted(sum(split, [])) == sorted(six)
    assert groups(["echo"], 4) == [["echo"]]


def test_decision_rates_carry_wilson_intervals():
    from lstmops.rehearsal.decisions import TrialResult, rate, recovery, summarize

    r = rate(0, 100)
    assert r["rate"] == 0 and r["low"] == pytest.approx(0, abs=1e-12) and 0.03 < r["high"] < 0.04  # Wilson: 3.7%
    assert recovery("echo", 0.95, 1.0) == pytest.approx(0.95)
    assert recovery("damped_sine", 0.004, 0.002) == pytest.approx(0.5)  # lower is better: before / after
    trials = [TrialResult("echo", "steady", i, [{"verdict": v, "seconds": 1}]) for i, v in
              enumerate(["NO-CHANGE"] * 8 + ["INCONCLUSIVE", "PROMOTE"])]
    trials[-1].promoted_on, trials[-1].true_gain = "2026-11-02", 0.0
    trials += [TrialResult("echo", "drift", 9, [{"verdict": "PROMOTE", "seconds": 1}], promoted_on="2027-01-18",
                           recovery=0.99)]
    s = summarize(trials, {"echo": 0.01})
    assert s["steady"]["false_promotion"]["successes"] == 1 and s["steady"]["false_promotion"]["n"] == 10
    assert s["steady"]["inconclusive"]["rate"] == pytest.approx(0.1)
    assert s["steady"]["harmful_promotion"]["successes"] == 1
    assert s["drift"]["power_within_one_interval"]["rate"] == 1.0 and s["drift"]["recovered_95"]["successes"] == 1


def test_workers_advance_day_by_day_together(tmp_path):
    import threading

    from lstmops.rehearsal.driver import _done_file, _wait_for_others

    (tmp_path / "logs").mkdir()
    _done_file(tmp_path, 1).write_text("2027-01-04")
    _wait_for_others(tmp_path, 0, 2, date(2027, 1, 5))  # the other finished the day before: go
    waiter = threading.Thread(target=_wait_for_others, args=(tmp_path, 0, 2, date(2027, 1, 6)), daemon=True)
    waiter.start()
    waiter.join(1.5)
    assert waiter.is_alive()  # the other worker is still on the 5th
    _done_file(tmp_path, 1).write_text("2027-01-05")
    waiter.join(5)
    assert not waiter.is_alive()
