"""Monitoring: Evidently drift checks of sequence summaries, skill loss, the workspace, triggers, the CLI.

The engine and the summaries are tested on generated tables. The world fixture is a
temporary root with a tiny *trained* echo champion (echo's concept drift, out_index 2 → 3
from 2027-01-15, makes it wrong with unchanged inputs) and a tiny untrained addition
model (addition's terms jump to 6..10 from the same day: input drift), daily traffic
simulated through the real serving path into a SQLite store, and the daily monitoring
run over the days around the drift, with a real Evidently workspace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.tiny_bundles import save_tiny_bundle  # noqa: E402

DRIFT_DAY = date(2027, 1, 15)  # a Friday
SETTINGS = {
    "seed": 5, "as_of": "2026-11-01",
    "problems": {
        "echo": {"architecture": "vanilla", "process": {"out_index": 2},
                 "sizes": {"train": 400, "validation": 50, "test": 50},
                 "model": {"cells": 16, "learning_rate": 0.02},
                 "train": {"batch_size": 32, "epochs": 4, "patience": 1},
                 "drift": [{"kind": "sudden", "start": DRIFT_DAY.isoformat(), "set": {"out_index": 3}}]},
        "addition": {"architecture": "encoder_decoder", "sizes": {"train": 20, "validation": 10, "test": 10},
                     "drift": [{"kind": "sudden", "start": DRIFT_DAY.isoformat(), "set": {"smallest": 6}}]},
    },
    "update": {"gate": {"min_gain": {"echo": 0.02, "addition": 0.02}}},
    "monitoring": {"traffic": {"requests": 150, "observation_lag_days": 1}, "reference_size": 600,
                   "cooldown_days": 6},
}


# --- the engine ----------------------------------------------------------------------------

def _values(n: int) -> pd.DataFrame:
    return pd.DataFrame({"skill.served": np.full(n, np.nan)})


def _report(current: pd.DataFrame, reference: pd.DataFrame, group: str = "inputs"):
    from lstmops.monitoring import engine

    return engine.interval_report({group: current}, {group: reference}, _values(len(current)), threshold=0.001,
                                  drift_share=0.01, timestamp=pd.Timestamp("2027-01-01").to_pydatetime(),
                                  tags=["day"], metadata={"problem": "test"})


def test_a_shifted_feature_is_flagged_by_name_and_an_unchanged_one_is_not():
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"level": rng.normal(size=1000), "period": rng.normal(size=1000)})
    current = pd.DataFrame({"period": rng.normal(0.6, size=300), "level": rng.normal(size=300)})  # other order
    result = _report(current, reference).drift["inputs"]
    by_name = {c.column: c for c in result.columns}
    assert by_name["period"].drifted and by_name["period"].score < 1e-6 and by_name["period"].method == "K-S p_value"
    assert not by_name["level"].drifted
    assert result.flagged and result.drifted == ["period"] and result.share == 0.5


def test_categories_are_compared_as_two_samples_not_against_exact_reference_shares():
    from scipy.stats import chi2_contingency

    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"v": pd.Categorical(rng.integers(0, 10, 1000))})
    current = pd.DataFrame({"v": pd.Categorical(rng.integers(0, 10, 300))})
    column = _report(current, reference).drift["inputs"].columns[0]
    table = np.array([np.bincount(reference["v"].astype(int), minlength=10),
                      np.bincount(current["v"].astype(int), minlength=10)])
    assert column.method == "chi-square two-sample p_value"
    assert column.score == pytest.approx(chi2_contingency(table)[1])
    # A category the model never saw in training is drift.
    shifted = pd.DataFrame({"v": pd.Categorical(np.r_[rng.integers(0, 10, 200), np.full(100, 11)])})
    assert _report(shifted, reference).drift["inputs"].flagged


def test_summaries_describe_every_problem_and_see_its_drift(problem_name):
    from lstmops.config import load_settings, problem_settings
    from lstmops.data.drift import fully_applied
    from lstmops.problems import get_problem

    settings = load_settings(ROOT / "params.yaml")
    cfg, module = problem_settings(settings, problem_name), get_problem(problem_name)
    before = module.generate(cfg.process, 400, np.random.default_rng(1))
    after_params = fully_applied(cfg.process, cfg.drift, date(2027, 6, 1))
    after = module.generate(after_params, 400, np.random.default_rng(2))
    inputs = module.input_summary(before, cfg.process)
    outcomes = module.outcome_summary(before, cfg.process)
    assert len(inputs) == len(outcomes) == 400 and outcomes.shape[1] >= 1
    assert not inputs.isna().any().any() and not outcomes.isna().any().any()
    # The default drift shows where the issue says it should: in the inputs (or, for rectangles, the shapes
    # the process makes), or, for concept drift, only in the outcomes.
    report = _report(module.input_summary(after, cfg.process), inputs) if inputs.shape[1] else None
    outcome_drift = _report(module.outcome_summary(after, cfg.process), outcomes, "outcomes").drift["outcomes"]
    if problem_name in ("echo", "cumulative_sum"):  # concept drift: the inputs do not change
        assert not report.drift["inputs"].flagged
    elif problem_name == "rectangles":
        assert inputs.shape[1] == 0 and outcome_drift.flagged and "width" in outcome_drift.drifted
    else:
        assert report.drift["inputs"].flagged


# --- the world: trained echo, untrained addition, traffic around the drift -------------------

@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from lstmops import paths
    from lstmops.config import parse_settings
    from lstmops.features.preparers import make_preparer
    from lstmops.modeling.bundle import save_bundle
    from lstmops.modeling.training import fit, make_task
    from lstmops.monitoring import engine
    from lstmops.monitoring.daily import monitor_problem
    from lstmops.problems import get_problem
    from lstmops.registry import Registry
    from lstmops.store import Store

    root = tmp_path_factory.mktemp("monitoring")
    (root / "params.yaml").write_text(yaml.safe_dump(SETTINGS, sort_keys=False))
    settings = parse_settings(SETTINGS)
    cfg, echo = settings.problems["echo"], get_problem("echo")
    old = echo.generate(echo.Params(), 2000, np.random.default_rng(1))
    preparer = make_preparer("echo", cfg.process).fit(old)
    task = make_task(echo, preparer.input_shape, preparer.target_shape, len(old), cfg.train)
    model = fit("vanilla", cfg.model, task, (preparer.inputs(old), preparer.targets(old)), None, cfg.train, 7).model
    save_bundle(model, preparer, {"problem": "echo", "architecture": "vanilla", "seed": 7, "as_of": "2026-11-01",
                                  "settings": json.loads(cfg.model_dump_json())}, root / "echo-bundle")
    save_tiny_bundle("addition", root / "addition-bundle")

    env = {"LSTMOPS_ROOT": str(root), "LSTMOPS_DB_URL": f"sqlite:///{root / 'registry' / 'lstmops.db'}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    registry = Registry(folder=root / "registry")
    for problem in ("echo", "addition"):
        registry.register(problem, root / f"{problem}-bundle")
        registry.promote(problem, 1, reason="first model", expect_champion=None)
    store = Store(registry.url)
    workspace = engine.open_workspace(paths.workspace_dir(root))
    days = [DRIFT_DAY - timedelta(days=4) + timedelta(days=i) for i in range(6)]  # Mon 11th .. Sat 16th
    results = {p: [monitor_problem(settings, p, d, registry=registry, store=store, root=root, workspace=workspace,
                                   simulate=True) for d in days] for p in ("echo", "addition")}
    yield {"root": root, "settings": settings, "registry": registry, "store": store, "results": results,
           "days": days}
    for key, value in saved.items():
        os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def _record(root: Path, problem: str, interval: str, day: date) -> dict:
    from lstmops import paths

    return json.loads(paths.interval_record(problem, interval, day.isoformat(), root).read_text())


def test_concept_drift_is_flagged_by_skill_loss_with_unchanged_inputs(world):
    root = world["root"]
    for day in world["days"][:4]:  # before the drift: quiet
        assert not _record(root, "echo", "day", day)["flagged"], day
    # The drift day's outcomes arrive a day later; its check on the 16th sees the skill loss.
    record = _record(root, "echo", "day", DRIFT_DAY)
    assert record["flagged"] and record["kind"] == "concept drift"
    assert record["skill"]["degrading"] and record["skill"]["served"] < record["skill"]["reference"] - 0.3
    assert not record["drift"]["inputs"]["flagged"]
    assert "relation between inputs and outcomes changed" in record["words"]
    assert record["observed"] == SETTINGS["monitoring"]["traffic"]["requests"]


def test_input_drift_is_flagged_on_its_first_day_naming_the_features(world):
    root = world["root"]
    assert not any(_record(root, "addition", "day", d)["flagged"] for d in world["days"][:4])
    record = _record(root, "addition", "day", DRIFT_DAY)
    assert record["flagged"] and record["kind"] in ("input drift", "drift and skill loss")
    assert {"term_1", "sum_of_terms"} <= set(record["drift"]["inputs"]["drifted"])
    assert "What the model is asked changed on 2027-01-15" in record["words"]
    assert record["drift"]["inputs"]["n_current"] == record["predictions"] == 150
    # The untrained model's answers are no numbers: that group is left out, not tested on nothing.
    assert "predictions" not in record["drift"]


def test_an_alarm_triggers_one_update_and_the_next_ones_are_declined_with_the_reason(world):
    from lstmops.monitoring.daily import past_triggers

    triggers = [t for t in past_triggers(world["root"]) if t["problem"] == "addition"]
    assert [t["day"] for t in triggers] == ["2027-01-15", "2027-01-16"]
    assert triggers[0]["triggered"] and triggers[0]["declined"] is None
    assert not triggers[1]["triggered"] and "cooldown_days" in triggers[1]["declined"]
    assert "input drift" in triggers[0]["reason"]


class _Registry:
    """The two registry questions ``decide`` asks: the champion and the pending proposals."""

    def __init__(self, champion: int):
        self.champion = champion

    def aliases(self, problem: str) -> dict:
        return {"champion": self.champion}

    def proposals(self, problem: str, status: str) -> list:
        return []


def _run(root: Path, problem: str, day: str, champion: int, verdict: str) -> None:
    from lstmops import paths
    from lstmops.update.records import save_record

    folder = paths.update_run_dir(problem, day, root)
    save_record({"champion_version": champion, "day": day}, folder / "collect.json")
    save_record({"verdict": verdict}, folder / "gate.json")


def test_drift_alone_already_judged_by_an_update_is_declined_but_skill_loss_still_triggers(tmp_path):
    from lstmops.config import parse_settings
    from lstmops.monitoring.daily import Trigger, alarm_streak_start, append_trigger, decide

    settings = parse_settings(SETTINGS)
    drift = [{"interval": "day", "period": "2027-01-20", "kind": "input drift", "words": "inputs changed"}]
    for day in ("2027-01-11", "2027-01-12", "2027-01-13"):  # alarms every day since the 11th ...
        append_trigger(Trigger("addition", day, day == "2027-01-11", "input drift"), tmp_path)
    for day in ("2027-01-14", "2027-01-15", "2027-01-16", "2027-01-17", "2027-01-18", "2027-01-19"):
        append_trigger(Trigger("addition", day, False, "input drift", declined="cooldown"), tmp_path)
    assert alarm_streak_start("addition", date(2027, 1, 20), tmp_path) == date(2027, 1, 11)

    # No update run has judged it yet: the cooldown is over, so it triggers.
    assert decide(settings, "addition", date(2027, 1, 20), drift, registry=_Registry(1), root=tmp_path).triggered
    # A run before the alarms began, or one that was INCONCLUSIVE, judged nothing of this drift.
    _run(tmp_path, "addition", "2027-01-04", 1, "NO-CHANGE")
    _run(tmp_path, "addition", "2027-01-12", 1, "INCONCLUSIVE")
    assert decide(settings, "addition", date(2027, 1, 20), drift, registry=_Registry(1), root=tmp_path).triggered
    # A NO-CHANGE run on the drifted data, with the same model deployed: declined, saying why.
    _run(tmp_path, "addition", "2027-01-18", 1, "NO-CHANGE")
    found = decide(settings, "addition", date(2027, 1, 20), drift, registry=_Registry(1), root=tmp_path)
    assert not found.triggered and "update run of 2027-01-18 already judged it" in found.declined
    assert "alarms since 2027-01-11" in found.declined
    # ... unless another model is deployed since (it was not judged), or skill is lost too.
    assert decide(settings, "addition", date(2027, 1, 20), drift, registry=_Registry(2), root=tmp_path).triggered
    loss = drift + [{"interval": "day", "period": "2027-01-19", "kind": "drift and skill loss", "words": "worse"}]
    assert decide(settings, "addition", date(2027, 1, 20), loss, registry=_Registry(1), root=tmp_path).triggered
    # A day without alarms ends the drift: a new alarm after it is a new drift, judged anew.
    assert decide(settings, "addition", date(2027, 1, 22), drift, registry=_Registry(1), root=tmp_path).triggered


def test_snapshots_are_in_the_workspace_with_their_dashboard_and_pages(world):
    from evidently.ui.workspace import Workspace

    from lstmops import paths

    root = world["root"]
    workspace = Workspace(str(paths.workspace_dir(root)))
    projects = {p.name: p for p in workspace.list_projects()}
    assert {"lstmops/echo", "lstmops/addition"} <= set(projects)
    runs = workspace.list_runs(projects["lstmops/echo"].id)
    tested = {(c["interval"], c["period"]) for r in world["results"]["echo"] for c in r.checks
              if c["kind"] != "no traffic"}
    assert len(runs) == len(tested) == 6  # one snapshot per interval: a re-check replaces the first one
    assert len(projects["lstmops/echo"].dashboard.model().panels) >= 5
    page = root / _record(root, "echo", "day", DRIFT_DAY)["page"]
    html = page.read_text(encoding="utf-8")
    assert page.stat().st_size > 100_000 and "<script src=" not in html  # Evidently's page, self-contained


def test_a_day_without_traffic_is_not_tested(world):
    from lstmops.monitoring.checks import check_interval

    check = check_interval(world["settings"], "echo", "day", date(2027, 3, 1), store=world["store"],
                           registry=world["registry"], root=world["root"], html=False, save=False)
    assert check.kind == "no traffic" and not check.flagged and "too few to test" in check.words


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"LSTMOPS_ROOT": str(root)}
    return subprocess.run([sys.executable, "-m", "lstmops", *args], capture_output=True, text=True, env=env,
                          cwd=root, timeout=300)


def test_cli_status_and_one_line_errors(world):
    root = world["root"]
    status = _cli(root, "monitor", "status", "--json")
    assert status.returncode == 0, status.stderr
    latest = {r["problem"]: r for r in json.loads(status.stdout)}
    assert latest["echo"]["period"] == "2027-01-16"
    bad_day = _cli(root, "monitor", "check", "echo", "--day", "2027-13-01")
    assert bad_day.returncode == 2 and bad_day.stderr.strip().splitlines() == [
        "lstmops monitor check: error: '2027-13-01' is not a date (YYYY-MM-DD)"]
    unknown = _cli(root, "monitor", "check", "nope", "--day", "2027-01-15")
    assert unknown.returncode == 2 and "unknown problem 'nope'" in unknown.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_monitor_ui_serves_the_workspace_on_localhost(world):
    port = _free_port()
    env = os.environ | {"LSTMOPS_ROOT": str(world["root"])}
    ui = subprocess.Popen([sys.executable, "-m", "lstmops", "monitor", "ui", "--port", str(port)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, names = time.monotonic() + 90, None
        while time.monotonic() < deadline and names is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/projects", timeout=2) as answer:
                    names = {p["name"] for p in json.loads(answer.read())}
            except OSError:
                assert ui.poll() is None, ui.stdout.read().decode()
                time.sleep(0.5)
        assert names is not None and {"lstmops/echo", "lstmops/addition"} <= names
    finally:
        os.killpg(ui.pid, 15)
        ui.wait(timeout=30)


@pytest.mark.flow
def test_the_monitor_flow_starts_the_update_deployment_as_a_linked_run(world):
    """The real Prefect flow: an alarm on a served problem starts its update deployment, linked to the monitor run."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.testing.utilities import prefect_test_harness

    from flows.monitor import deployment_name, monitor
    from flows.update import update
    from lstmops.monitoring.daily import past_triggers

    day = date(2027, 1, 22)  # addition's last update was triggered on the 15th: past the 6-day cooldown
    with prefect_test_harness(server_startup_timeout=120):
        update.to_deployment(name="addition", parameters={"problem": "addition"}).apply()
        outcomes = monitor(day.isoformat(), simulate=True, start_runs=True, problems=["addition"], report=True)

        async def runs():
            async with get_client() as client:
                found = await client.read_flow_runs()
                deployment = await client.read_deployment_by_name(deployment_name("addition"))
                return found, deployment

        found, deployment = asyncio.run(runs())
    trigger = outcomes[0]["trigger"]
    assert trigger["triggered"] and trigger["flow_run"], trigger
    started = next(r for r in found if str(r.id) == trigger["flow_run"])
    assert started.deployment_id == deployment.id
    assert started.parameters == {"problem": "addition", "as_of": day.isoformat()}
    assert started.parent_task_run_id is not None  # shown in the UI as a run of the monitoring flow
    assert "triggered-by-monitoring" in started.tags
    recorded = [t for t in past_triggers(world["root"]) if t["day"] == day.isoformat()]
    assert recorded[-1]["flow_run"] == trigger["flow_run"]
    assert (world["root"] / "monitoring" / "reports" / "index.html").is_file()


def test_the_monitor_flow_refuses_bad_days_and_names_in_one_line_before_prefect():
    script = str(ROOT / "flows" / "monitor.py")
    for args, expected in ((["--day", "2027-13-01"], "monitor: error: '2027-13-01' is not a date (YYYY-MM-DD)"),
                           (["--day", "2027-01-01", "--only", "nope"], "monitor: error: unknown problem 'nope'")):
        done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.strip().startswith(expected), done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "temporary server" not in done.stdout
