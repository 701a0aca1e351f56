"""Drive the real flows through simulated days in a rehearsal's world.

Each simulated day, for the rehearsed problems (``run_days``), in the order of a real day:

1. 05:00 (the clock, :func:`lstmops.database.set_clock`): proposals past
   ``update.approval_days`` expire; the monitoring flow (``flows/monitor.py``, a Prefect
   flow run tagged ``rehearsal``) checks yesterday: its drift, the skill of the day whose
   outcomes have arrived (``observation_lag_days``), the week on Sundays; triggers are
   decided and recorded (not started: step 2 starts them). With ``--approve auto`` a check
   that found the deployed model worse than the previous one in shadow is acted on with
   ``lstmops models rollback``, the real command.
2. 06:00: the update flow (``flows/update.py``) runs for each problem whose
   ``update.schedule`` falls on the day or whose alarm triggered an update.
3. 09:00: proposals are approved (``auto``) or left to expire (``never``); a deliberately
   bad candidate (``--bad-candidate P@DAY``: the champion trained on shuffled labels) is
   registered, proposed and approved on its day, to rehearse the rollback.
4. 12:00: the day's traffic is drawn from the drifting process and served by the
   champion through the serving path (the previous model in shadow after a change), and
   the outcomes of earlier requests are observed (:func:`~lstmops.monitoring.traffic.simulate_day`).

The morning after the last day is monitored too.
Every event is a row of the rehearsal's decisions (``rehearsal.json``, ``decisions.csv``,
and the table at the end of the report's index).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time as clock
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from lstmops.rehearsal.world import ACTOR, load_plan, record_decisions

CODE_ROOT = Path(__file__).resolve().parents[3]
MONITOR_AT, UPDATE_AT, APPROVE_AT, TRAFFIC_AT = time(5), time(6), time(9), time(12)
LEAD_DAYS = 7   # how far one worker may run ahead of another (a week: Mondays' updates overlap)


def scheduled(cron: str, day: date) -> bool:
    """Whether the cron schedule fires on ``day`` (UTC)."""
    import asyncio
    from datetime import timezone

    from prefect.server.schemas.schedules import CronSchedule

    start = datetime.combine(day, time(0), tzinfo=timezone.utc)
    found = CronSchedule(cron=cron, timezone="UTC").get_dates(n=1, start=start, end=start + timedelta(days=1))
    return any(d.date() == day for d in asyncio.run(found))  # the server schema's get_dates is a coroutine


def run_tagged(flow: Any, names: list[str], *args: Any, **kwargs: Any) -> Any:
    """Run ``flow`` and tag its flow run ``names``; returns its result (raises as the flow did).

    The tags go on the flow run once it has ended rather than through ``prefect.tags``:
    that would tag every task run too, and a tagged task run asks the server for a slot of
    each tag's concurrency limit before it starts (half a second a task here, on every
    simulated day).
    """
    from prefect import get_client

    state = flow(*args, return_state=True, **kwargs)
    if state.is_crashed():  # a signal (the rehearsal stopped), not an error of the flow: stop this worker
        raise SystemExit(f"{flow.name}: {state.message}; the rehearsal worker stops")
    run_id = state.state_details.flow_run_id
    if run_id is not None:
        with get_client(sync_client=True) as client:
            client.update_flow_run(run_id, tags=names)
    return state.result()


def _row(day: date, problem: str, event: str, detail: str, registry: Any, order: int) -> dict:
    return {"day": day.isoformat(), "problem": problem, "event": event, "detail": detail,
            "champion": registry.aliases(problem).get("champion"), "order": order}


def bad_candidate(settings: Any, problem: str, registry: Any, root: Path, day: date) -> int:
    """Register the champion trained on with shuffled labels (a deliberately bad model); returns its version."""
    from lstmops import paths
    from lstmops.data.io import read_table
    from lstmops.errors import InputError
    from lstmops.features.preparers import load_preparer
    from lstmops.modeling.architectures import resolve_loss
    from lstmops.modeling.architectures._common import optimizer
    from lstmops.modeling.bundle import load_model, save_bundle
    from lstmops.modeling.training import make_task, use_default_backend
    from lstmops.problems import get_problem, is_generative
    from lstmops.seeding import rng_for

    if is_generative(problem):
        raise InputError(f"--bad-candidate {problem}: a generative model has no labels to corrupt")
    use_default_backend()
    champion = registry.resolve(problem, "champion")
    cfg = settings.problems[problem]
    preparer = load_preparer(Path(champion.folder) / "preprocessing.json")
    rng = rng_for(settings.seed, problem, "bad-candidate", day.isoformat())
    table = read_table(paths.raw_split(problem, "train", root))
    table = table.iloc[rng.choice(len(table), min(len(table), 2000), replace=False)].reset_index(drop=True)
    x, y = preparer.inputs(table), preparer.targets(table)
    y = y[rng.permutation(len(y))]  # every input gets another input's label
    task = make_task(get_problem(problem), preparer.input_shape, preparer.target_shape, len(x), cfg.train)
    model = load_model(Path(champion.folder))
    model.compile(optimizer=optimizer(cfg.model, task), loss=resolve_loss(task.loss))
    model.fit(x, y, batch_size=cfg.train.batch_size, epochs=3, verbose=0)
    meta = dict(champion.metadata) | {"rehearsal": "deliberately bad: the champion trained on shuffled labels"}
    folder = root / "updates" / problem / f"bad-{day.isoformat()}"
    save_bundle(model, preparer, meta, folder)
    return registry.register(problem, folder, actor=ACTOR).version.version


def _done_file(folder: Path, index: int) -> Path:
    return folder / "logs" / f"worker-{index}.day"


def _wait_for_others(folder: Path, index: int, workers: int, day: date, lead: int = 0) -> None:
    """Start ``day`` only once every other worker has finished the day ``lead + 1`` days before.

    Each worker owns its problems (their proposals, expiries, batches and checks), so the
    workers need not share one clock, but the world stays within ``lead`` days of itself:
    an interrupted rehearsal has rehearsed about the same weeks for every problem. A lead
    of a week lets the workers' costly days (updates, compilations) overlap instead of
    each day waiting for the slower worker; 0 advances them in step.
    """
    before = (day - timedelta(days=1 + lead)).isoformat()
    while True:
        done = [(_done_file(folder, k).read_text().strip() if _done_file(folder, k).is_file() else "")
                for k in range(workers) if k != index]
        if all(d >= before for d in done):
            return
        clock.sleep(0.5)


def run_days(folder: Path, source: Path, problems: list[str], index: int = 0, workers: int = 1) -> None:
    """Rehearse every day of the plan for ``problems`` (in this process, in the rehearsal's world).

    ``index`` of ``workers``: the workers advance together, at most :data:`LEAD_DAYS` apart
    (see :func:`_wait_for_others`).
    """
    sys.path.insert(0, str(CODE_ROOT))  # the checkout holding flows/ (the data root may be elsewhere)
    from flows.monitor import monitor
    from flows.update import update

    from lstmops import paths
    from lstmops.config import load_settings
    from lstmops.database import set_clock
    from lstmops.monitoring.traffic import simulate_day
    from lstmops.registry import Registry
    from lstmops.store import Store

    plan = load_plan(folder)
    settings = load_settings(paths.params_file(folder))
    registry = Registry()
    store = Store(registry.url)
    bad = {(b["problem"], b["day"]) for b in plan.bad}
    days = plan.days
    names = ["rehearsal", f"rehearsal:{plan.name}"]
    for i, day in enumerate([*days, days[-1] + timedelta(days=1)]):
        if i > 0:
            _wait_for_others(folder, index, workers, day, LEAD_DAYS)
        rows: list[dict] = []
        started = clock.perf_counter()
        # 05:00 - monitoring checks yesterday (its drift; the skill of the day whose outcomes arrived)
        set_clock(datetime.combine(day, MONITOR_AT))
        for expired in registry.expire_due(problems=problems):  # this worker's problems: its clock
            rows.append(_row(day, expired.problem, "expired", f"proposal #{expired.id} "
                             f"(v{expired.candidate_version}) expired undecided", registry, 0))
        due: set[str] = set()
        if i > 0:
            outcomes = run_tagged(monitor, names, (day - timedelta(days=1)).isoformat(), simulate=False,
                                  start_runs=False, problems=problems, report=False)
            for outcome in outcomes:
                rows += _monitoring_rows(day, outcome, registry, plan, folder, due)
        if i == len(days):  # the morning after the last day: its check only
            record_decisions(folder, rows)
            _done_file(folder, index).write_text(day.isoformat())
            break
        # 06:00 - the scheduled update runs, and those an alarm triggered
        why = "schedule" if scheduled(settings.update.schedule, day) else "monitoring alarm"
        if why == "schedule":
            due |= set(problems)
        for problem in sorted(due):
            rows += _update_rows(day, problem, registry, plan, update, why, names)
        # 09:00 - the rollback rehearsal's bad candidate is approved
        for problem in problems:
            if (problem, day.isoformat()) in bad:
                set_clock(datetime.combine(day, APPROVE_AT))
                rows.append(_inject_bad(settings, problem, registry, folder, day))
        # 12:00 - the day's traffic, served by the champion (the previous model in shadow)
        set_clock(datetime.combine(day, TRAFFIC_AT))
        for problem in problems:
            simulate_day(settings, problem, day, registry=registry, store=store)
        record_decisions(folder, rows)
        _done_file(folder, index).write_text(day.isoformat())
        print(f"{day} {','.join(problems)}: {len(rows)} event(s), {clock.perf_counter() - started:.1f} s",
              flush=True)


def _monitoring_rows(day: date, outcome: dict, registry: Any, plan: Any, folder: Path, due: set[str]) -> list[dict]:
    """Alarms as decision rows; a triggered update joins ``due``; a rollback finding is acted on (auto)."""
    from lstmops import paths
    from lstmops.monitoring.checks import recommends_rollback

    problem, rows = outcome["problem"], []
    if "failed" in outcome:
        return [_row(day, problem, "monitoring failed", outcome["failed"], registry, 1)]
    for check in outcome["checks"]:
        if check["flagged"]:
            rows.append(_row(day, problem, f"alarm: {check['kind']}",
                             f"{check['interval']} {check['period']}: {check['words']}", registry, 1))
    trig = outcome.get("trigger")
    if trig and trig["triggered"]:
        due.add(problem)
    records = (paths.interval_record(problem, c["interval"], c["period"], folder) for c in outcome["checks"])
    full = [json.loads(p.read_text(encoding="utf-8")) for p in records if p.is_file()]
    champion = registry.aliases(problem).get("champion")
    if plan.approve == "auto" and any(recommends_rollback(c) and c.get("champion_version") == champion for c in full):
        rows.append(_rollback(day, problem, champion, registry, 2))
        due.discard(problem)  # the rollback is the answer to this alarm; the next checks judge the restored model
    return rows


def _update_rows(day: date, problem: str, registry: Any, plan: Any, update: Any, why: str,
                 names: list[str]) -> list[dict]:
    """Run the update flow of ``problem`` on ``day`` (``why``: its schedule or an alarm); approve its
    proposal under ``--approve auto``."""
    from lstmops.database import set_clock

    set_clock(datetime.combine(day, UPDATE_AT))
    try:
        result = run_tagged(update, names, problem, day.isoformat(), wait_for_approval=False)
    except Exception as err:  # noqa: BLE001 - the rehearsal records a failed run and goes on
        return [_row(day, problem, "update failed", f"{type(err).__name__}: {err}", registry, 3)]
    rows = [_row(day, problem, f"update ({why})", result.get("line") or result.get("verdict", ""), registry, 3)]
    proposal = result.get("proposal")
    if proposal and proposal.get("status") == "pending" and plan.approve == "auto":
        set_clock(datetime.combine(day, APPROVE_AT))
        registry.approve(problem, proposal["id"], actor=f"{ACTOR} (auto)",
                         reason=f"rehearsal: approved automatically on {day}")
        rows.append(_row(day, problem, "approved", f"proposal #{proposal['id']}: v{proposal['candidate_version']} "
                         "promoted", registry, 4))
    elif proposal and proposal.get("status") == "pending":
        rows.append(_row(day, problem, "left pending", f"proposal #{proposal['id']} awaits a person "
                         "(--approve never)", registry, 4))
    return rows


def _rollback(day: date, problem: str, champion: int, registry: Any, order: int) -> dict:
    """Roll back with the real command (``lstmops models rollback``), as an operator would."""
    exe = Path(sys.executable).parent / "lstmops"
    cmd = [str(exe) if exe.is_file() else "lstmops", "models", "rollback", problem, "--reason",
           f"rehearsal {day}: monitoring found v{champion} worse than the previous model in shadow",
           "--actor", f"{ACTOR} (auto)", "--expect-champion", str(champion)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    detail = (done.stdout or done.stderr).strip().splitlines()[-1] if (done.stdout or done.stderr) else ""
    return _row(day, problem, "rollback" if done.returncode == 0 else "rollback failed", detail, registry, order)


def _inject_bad(settings: Any, problem: str, registry: Any, folder: Path, day: date) -> dict:
    """Register, propose and approve a deliberately bad candidate (the rollback rehearsal)."""
    version = bad_candidate(settings, problem, registry, folder, day)
    proposal = registry.propose(problem, version, evidence={"rehearsal": "deliberately bad candidate"},
                                report_path=None, weights_only=True, arm="bad",
                                expires_at=datetime.combine(day + timedelta(days=7), time(0)), actor=ACTOR)
    registry.approve(problem, proposal.id, actor=ACTOR,
                     reason="rollback rehearsal: a deliberately bad candidate (shuffled labels), approved on purpose")
    return _row(day, problem, "bad candidate approved", f"v{version} (trained on shuffled labels) is deployed on "
                "purpose; monitoring should find it worse than the previous model in shadow", registry, 5)


def main(argv: list[str] | None = None) -> int:
    """Worker entry point: ``python -m lstmops.rehearsal.driver ROOT SOURCE PROBLEM... --index K --workers N``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("source", type=Path)
    parser.add_argument("problems", nargs="+")
    parser.add_argument("--index", type=int, default=0, help="this worker's number")
    parser.add_argument("--workers", type=int, default=1, help="how many workers advance together")
    args = parser.parse_args(argv)
    run_days(args.root, args.source, args.problems, args.index, args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
