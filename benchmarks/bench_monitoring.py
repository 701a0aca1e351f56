"""Does monitoring flag drift when it starts, and stay quiet without it? And how long does a day take?

Plays simulated daily traffic (``monitoring.traffic``: requests drawn from the drifting
process, served by this checkout's registered champions, outcomes observed a day later)
into a throw-away store, and runs the daily monitoring checks exactly as the flow does
(:func:`lstmops.monitoring.daily.monitor_problem`), in a temporary root so nothing real is
touched. Three measurements:

1. **Detection** on the default drift schedule of ``params.yaml``: per problem, traffic
   from two weeks before its first drift step to three weeks after; the first flagged
   interval after the start, its kind, and the delay in days. Target (issue #9): input
   drift (damped sine, moving line, addition) flagged within the first interval after
   the start (a day for a sudden step; the first complete week for a gradual one),
   concept drift (echo, cumulative sum) by skill loss within the first interval after the
   outcomes arrive, rectangles by the world's shapes moving away from the drawings.
2. **False alarms** without drift: the same problems for 8 weeks with every drift step
   removed; the share of problem-weeks with any flagged interval, with its 95 % Wilson
   interval (statsmodels). Target: no problem flagged.
3. **Time** of one day's full monitoring of all six problems (day and lag checks and a
   week check, Evidently snapshots into a workspace and their HTML pages), against the
   30 s target on 2 cores.

    .venv/bin/python benchmarks/bench_monitoring.py [--problems echo addition] [--weeks 8]

Writes ``benchmarks/results/monitoring.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("KERAS_BACKEND", "jax")


def _settings(no_drift: bool):
    import yaml

    from lstmops.config import parse_settings

    raw = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    if no_drift:
        for problem in raw["problems"].values():
            problem["drift"] = []
    return parse_settings(raw)


def _run(settings, problem: str, days: list[date], root: Path, registry, store) -> list[dict]:
    from lstmops.monitoring.daily import monitor_problem

    out = []
    for day in days:
        result = monitor_problem(settings, problem, day, registry=registry, store=store, root=root, simulate=True,
                                 html=False)
        for check in result.checks:
            out.append({"day": day.isoformat(), **check})
    return out


def detection(problems: list[str], registry, workdir: Path) -> dict:
    from lstmops.config import problem_settings
    from lstmops.store.records import Store

    settings = _settings(no_drift=False)
    results = {}
    for problem in problems:
        steps = problem_settings(settings, problem).drift
        if not steps:
            continue
        start = steps[0].start
        gradual = steps[0].kind == "gradual"
        root = workdir / f"detect-{problem}"
        root.mkdir(parents=True)
        store = Store(f"sqlite:///{root}/store.db")
        days = [start - timedelta(days=14) + timedelta(days=i) for i in range(14 + 21 + 1)]
        checks = _run(settings, problem, days, root, registry, store)
        before = [c for c in checks if c["flagged"] and date.fromisoformat(c["period"]) < start
                  and (c["interval"] == "day" or date.fromisoformat(c["period"]) + timedelta(days=7) <= start)]
        after = sorted((c for c in checks if c["flagged"] and date.fromisoformat(c["period"]) + timedelta(
            days=7 if c["interval"] == "week" else 1) > start), key=lambda c: c["day"])
        first = after[0] if after else None
        drift_kinds = ("input drift", "world drift", "drift and skill loss")
        first_drift = next((c for c in after if c["kind"] in drift_kinds), None)
        # The interval the target allows: a sudden step is flagged on a day from its start (outcomes of that day
        # arrive observation_lag_days later); a gradual one by the end of its first complete week.
        lag = settings.monitoring.traffic.observation_lag_days
        first_monday = start + timedelta(days=(7 - start.weekday()) % 7)
        deadline = (first_monday + timedelta(days=6)) if gradual else start + timedelta(days=lag)
        results[problem] = {
            "drift": f"{steps[0].kind} from {start}: {steps[0].set}",
            "first_flag_on": first["day"] if first else None,
            "first_flag_interval": f"{first['interval']} {first['period']}" if first else None,
            "first_flag_kind": first["kind"] if first else None,
            "first_flag_words": first["words"] if first else None,
            "delay_days": (date.fromisoformat(first["day"]) - start).days if first else None,
            "deadline": deadline.isoformat(),
            "met": bool(first and date.fromisoformat(first["day"]) <= deadline),
            "flags_before_start": len(before),
            "first_input_drift_on": first_drift["day"] if first_drift else None,
            "first_input_drift_interval": f"{first_drift['interval']} {first_drift['period']}" if first_drift else None,
        }
        print(f"{problem}: {results[problem]['first_flag_kind']} flagged on {results[problem]['first_flag_on']} "
              f"({results[problem]['delay_days']} days after {start}; deadline {deadline}); "
              f"{len(before)} flags before", flush=True)
    return results


def false_alarms(problems: list[str], weeks: int, registry, workdir: Path) -> dict:
    from statsmodels.stats.proportion import proportion_confint

    from lstmops.store.records import Store

    settings = _settings(no_drift=True)
    first = settings.as_of + timedelta(days=(7 - settings.as_of.weekday()) % 7)  # a Monday after the build
    days = [first + timedelta(days=i) for i in range(7 * weeks)]
    per_problem, flagged_weeks, total = {}, 0, 0
    for problem in problems:
        root = workdir / f"quiet-{problem}"
        root.mkdir(parents=True)
        checks = _run(settings, problem, days, root, registry, Store(f"sqlite:///{root}/store.db"))
        weeks_flagged = sorted({(date.fromisoformat(c["day"]) - first).days // 7 for c in checks if c["flagged"]})
        per_problem[problem] = {"weeks": weeks, "weeks_flagged": len(weeks_flagged),
                                "flags": [f"{c['day']} {c['interval']}: {c['kind']}" for c in checks if c["flagged"]]}
        flagged_weeks += len(weeks_flagged)
        total += weeks
        print(f"{problem}: {len(weeks_flagged)} of {weeks} weeks flagged without drift", flush=True)
    low, high = proportion_confint(flagged_weeks, total, alpha=0.05, method="wilson")
    return {"problem_weeks": total, "flagged": flagged_weeks, "rate": flagged_weeks / total,
            "wilson95": [low, high], "per_problem": per_problem}


def day_time(problems: list[str], registry, workdir: Path) -> dict:
    """One Sunday's monitoring of all problems, as the daily flow does it, after two weeks of traffic."""
    from lstmops.monitoring import engine
    from lstmops.monitoring.daily import monitor_problem
    from lstmops.monitoring.traffic import simulate_day
    from lstmops.store.records import Store

    settings = _settings(no_drift=False)
    root = workdir / "timing"
    root.mkdir(parents=True)
    store = Store(f"sqlite:///{root}/store.db")
    day = date(2027, 1, 17)  # a Sunday: day, lag and week checks
    for problem in problems:
        for i in range(8, 0, -1):
            simulate_day(settings, problem, day - timedelta(days=i), registry=registry, store=store)
        simulate_day(settings, problem, day, registry=registry, store=store)
        monitor_problem(settings, problem, day - timedelta(days=1), registry=registry, store=store, root=root,
                        html=False)  # warm: reference profiles cached, models loaded, as on any later day
    workspace = engine.open_workspace(root / "monitoring" / "workspace")
    started = time.perf_counter()
    per = {}
    for problem in problems:
        result = monitor_problem(settings, problem, day, registry=registry, store=store, root=root,
                                 workspace=workspace, html=True)
        per[problem] = {"seconds": round(result.seconds, 2), "checks": len(result.checks)}
    seconds = time.perf_counter() - started
    print(f"one day, {len(problems)} problems: {seconds:.1f} s (target 30 s): {per}", flush=True)
    return {"seconds": seconds, "target_s": 30.0, "ratio": seconds / 30.0, "per_problem": per}


def main() -> int:
    from lstmops.problems import problem_names
    from lstmops.registry.versions import Registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="*", default=None)
    parser.add_argument("--weeks", type=int, default=8)
    parser.add_argument("--skip", nargs="*", default=[], choices=["detection", "false_alarms", "time"])
    args = parser.parse_args()
    problems = args.problems or problem_names()
    registry = Registry()
    out: dict = {"problems": problems, "requests_per_day": _settings(False).monitoring.traffic.requests}
    with tempfile.TemporaryDirectory(prefix="lstmops-monitor-bench-") as tmp:
        work = Path(tmp)
        if "time" not in args.skip:
            out["day_time"] = day_time(problems, registry, work)
        if "detection" not in args.skip:
            out["detection"] = detection(problems, registry, work)
        if "false_alarms" not in args.skip:
            out["false_alarms"] = false_alarms(problems, args.weeks, registry, work)
    target = ROOT / "benchmarks" / "results" / "monitoring.json"
    if args.skip and target.is_file():  # a partial run keeps the other measurements of the last full one
        out = {**json.loads(target.read_text(encoding="utf-8")), **out}
    target.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
