"""The daily monitoring flow: Evidently snapshots per problem and interval, and the update triggers.

``monitor`` checks one day (default: yesterday, UTC) for every problem, one task per
problem (:func:`lstmops.monitoring.daily.monitor_problem`): the day's drift, the skill of
the day whose outcomes have now arrived, and on Sundays the whole week; every snapshot
goes to the Evidently workspace (``monitoring/workspace``, served by ``make monitor-ui``)
with Evidently's own HTML page beside it. A flagged problem gets a Prefect event
``lstmops.monitoring.alarm`` (Prefect UI: Events) and, unless declined (cooldown, or a
proposal already waiting), its update: the served deployment ``lstmops-update/<problem>``
is started as a linked run when it exists (``make serve``); otherwise the decision and the
command to run are recorded. Then the stakeholder report is rebuilt.

    python flows/monitor.py --day 2027-01-16                  # check one day
    python flows/monitor.py --day 2027-01-16 --simulate       # play that day's simulated traffic first
    python flows/monitor.py --from 2027-01-01 --to 2027-01-31 --simulate --no-trigger
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta, timezone
from typing import Any

from prefect import flow, get_run_logger, task

ALARM_EVENT = "lstmops.monitoring.alarm"


def _context() -> tuple[Any, Any, Any]:
    from lstmops import paths
    from lstmops.config import load_settings
    from lstmops.registry import Registry
    from lstmops.store import Store

    settings = load_settings(paths.params_file())
    registry = Registry()
    return settings, registry, Store(registry.url)


def _day(text: str | None) -> date:
    from lstmops.errors import InputError

    if text is None:
        return datetime.now(timezone.utc).date() - timedelta(days=1)
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{text!r} is not a date (YYYY-MM-DD)") from None


@task(name="monitor problem", retries=1, retry_delay_seconds=5)
def monitor_one(problem: str, day: str, simulate: bool) -> dict:
    """One problem's checks on ``day`` (snapshots into the workspace, pages beside them)."""
    from dataclasses import asdict

    from lstmops import paths
    from lstmops.monitoring import engine
    from lstmops.monitoring.daily import monitor_problem

    settings, registry, store = _context()
    workspace = engine.open_workspace(paths.workspace_dir())
    result = monitor_problem(settings, problem, date.fromisoformat(day), registry=registry, store=store,
                             workspace=workspace, simulate=simulate)
    for check in result.checks:
        print(f"{problem} {check['interval']} {check['period']}: {check['kind']} — {check['words']}")
    return asdict(result)


def deployment_name(problem: str) -> str:
    """The served update deployment of ``problem`` (flows/serve.py)."""
    return f"lstmops-update/{problem}"


@task(name="trigger update")
def trigger(outcome: dict, start_runs: bool) -> dict:
    """Emit the alarm event and start the problem's update deployment, when served; record what happened."""
    from prefect.events import emit_event

    from lstmops.monitoring.daily import Trigger, append_trigger

    decision = outcome["trigger"]
    problem, day = decision["problem"], decision["day"]
    emit_event(event=ALARM_EVENT, resource={"prefect.resource.id": f"lstmops.problem.{problem}",
                                            "prefect.resource.name": problem},
               payload={"day": day, "triggered": decision["triggered"], "reason": decision["reason"],
                        "declined": decision["declined"]})
    note = decision.get("declined")
    if decision["triggered"] and start_runs:
        from prefect.deployments import run_deployment

        try:
            run = run_deployment(deployment_name(problem), parameters={"problem": problem, "as_of": day},
                                 timeout=0, tags=["lstmops", "triggered-by-monitoring"])
            decision["flow_run"] = str(run.id)
            note = f"started update run {run.name} ({run.id})"
        except Exception as err:  # noqa: BLE001 - e.g. no served deployment: record it, the alarm stands
            decision["flow_run"] = None
            note = (f"no update run started ({type(err).__name__}: {err}); serve the deployments (make serve) "
                    f"or run: python flows/update.py {problem} --as-of {day}")
        append_trigger(Trigger(**{**decision, "declined": None if decision.get("flow_run") else note,
                                  "decided_at": datetime.now().replace(microsecond=0).isoformat()}))
    if decision["triggered"] and not start_runs:
        note = f"no update run started (--no-trigger); to start it: python flows/update.py {problem} --as-of {day}"
    get_run_logger().warning("%s %s: monitoring alarm; %s", problem, day, note or "")
    return {**decision, "note": note}


@flow(name="lstmops-monitor", log_prints=True)
def monitor(day: str | None = None, simulate: bool = False, start_runs: bool = True,
            problems: list[str] | None = None, report: bool = True) -> list[dict]:
    """Monitor every problem (or ``problems``) on ``day`` (default yesterday, UTC); trigger updates on alarms."""
    settings, registry, store = _context()
    when = _day(day).isoformat()
    outcomes = []
    for problem in problems or list(settings.problems):
        try:
            outcome = monitor_one(problem, when, simulate)
        except Exception as err:  # noqa: BLE001 - one problem's failure must not stop the others
            get_run_logger().exception("%s: monitoring failed", problem)
            outcomes.append({"problem": problem, "day": when, "failed": str(err)})
            continue
        if outcome.get("trigger"):
            outcome["trigger"] = trigger(outcome, start_runs)
        outcomes.append(outcome)
    if report:
        from lstmops.monitoring.report import build_report

        index = build_report(settings, registry=registry, store=store)
        print(f"stakeholder report: {index}")
    return outcomes


def check_args(problems: list[str] | None, days: list[str | None]) -> None:
    """Bad names and dates fail here, in one line, before Prefect starts."""
    from lstmops import paths
    from lstmops.config import load_settings, problem_settings

    settings = load_settings(paths.params_file())
    for problem in problems or []:
        problem_settings(settings, problem)
    for text in days:
        _day(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", help="the day to check, YYYY-MM-DD (default: yesterday, UTC)")
    parser.add_argument("--from", dest="first", help="check every day from this one ...")
    parser.add_argument("--to", dest="last", help="... to this one (with --from)")
    parser.add_argument("--only", nargs="+", metavar="PROBLEM", help="these problems (default: all)")
    parser.add_argument("--simulate", action="store_true", help="play each day's simulated traffic first")
    parser.add_argument("--no-trigger", action="store_true", help="record alarms but start no update runs")
    args = parser.parse_args(argv)
    from lstmops.errors import LstmopsError

    if bool(args.first) != bool(args.last) or (args.first and args.day):
        parser.error("give --day D, or --from D1 --to D2")
    try:
        check_args(args.only, [args.day, args.first, args.last])
        if args.first:
            first, last = _day(args.first), _day(args.last)
            days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        else:
            days = [args.day]
        lines = []
        for i, day in enumerate(days):
            outcomes = monitor(day, simulate=args.simulate, start_runs=not args.no_trigger, problems=args.only,
                               report=i == len(days) - 1)
            lines += [_line(o) for o in outcomes]
    except LstmopsError as err:
        print(f"monitor: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def _line(outcome: dict) -> str:
    if "failed" in outcome:
        return f"{outcome['problem']} {outcome['day']}: FAILED ({outcome['failed']})"
    kinds = sorted({c["kind"] for c in outcome["checks"] if c["flagged"]})
    trig = outcome.get("trigger")
    tail = ""
    if trig and trig["triggered"] and trig.get("flow_run"):
        tail = f" — update started ({trig['flow_run']})"
    elif trig and trig["triggered"]:
        tail = f" — update due: {trig.get('note')}"
    elif trig:
        tail = f" — update not triggered: {trig.get('declined')}"
    return f"{outcome['problem']} {outcome['day']}: {', '.join(kinds) or 'ok'}{tail}"


if __name__ == "__main__":
    sys.exit(main())
