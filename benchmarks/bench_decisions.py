"""Decision quality of the promotion gate: false promotions without drift, power and recovery with it.

Runs many independent update decisions (:mod:`lstmops.rehearsal.decisions`) of every
problem, each under its own root seed, starting from the registry's champions of the
build, with the sizes of a ``rehearsal.yaml`` preset (``--sizes small`` for the
many-decision run; ``--sizes default`` for the check at the default sizes):

- steady world (a date before the problem's drift): how often the gate says PROMOTE
  (false promotion), INCONCLUSIVE, NO-CHANGE; plus how many promotions were truly not
  better by the minimum gain on a fresh holdout ("harmful");
- drift world (the first Monday the champion has lost twice the minimum gain, and one
  interval later if needed): how often the gate promotes, and how much of the pre-drift
  skill the promoted candidate has on the holdout.

Every rate comes with its Wilson 95% interval and its number of decisions. Trials are
appended to ``benchmarks/results/decisions_<sizes>.jsonl`` as they finish (a re-run
resumes), the summary goes to ``benchmarks/results/decisions_<sizes>.json``.

Targets (issue 10): false promotion <= 5% (upper end <= 10%) over >= 100 decisions;
PROMOTE for >= 95% of degraded champions within one interval; recovery >= 95%.

    .venv/bin/python benchmarks/bench_decisions.py --sizes small --steady 24 --drift 5 \
        --steady-for moving_square=6 damped_sine=12 cumulative_sum=12
    .venv/bin/python benchmarks/bench_decisions.py --sizes default --steady 1 --drift 1 --problems echo
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
RESULTS = ROOT / "benchmarks" / "results"


def _worker_init() -> None:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("PYTHONHASHSEED", "0")


def _run(settings, trial: dict, champion: dict, work: str, pre: float | None) -> dict:
    from lstmops.rehearsal.decisions import Champion, Trial, as_dict, run_trial

    result = run_trial(settings, Trial(**{**trial, "days": tuple(trial["days"])}), Champion(**champion), ROOT,
                       Path(work), pre_drift=pre)
    return as_dict(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small", help="a preset of rehearsal.yaml (default: small)")
    parser.add_argument("--steady", type=int, default=17, help="steady-world decisions per problem")
    parser.add_argument("--steady-for", nargs="*", default=[], metavar="PROBLEM=N",
                        help="another steady count for some problems (e.g. the costly moving_square=6)")
    parser.add_argument("--drift", type=int, default=10, help="drift-world trials per problem")
    parser.add_argument("--problems", nargs="*", help="default: every problem")
    parser.add_argument("--workers", type=int, default=2, help="trials side by side (processes)")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")

    from lstmops.rehearsal.decisions import Champion, TrialResult, degradation, steady_days, summarize
    from lstmops.rehearsal.presets import preset_settings
    from lstmops.registry import Registry

    settings = preset_settings(args.sizes, ROOT)
    steady_for = {k: int(v) for k, _, v in (item.partition("=") for item in args.steady_for)}
    problems = args.problems or list(settings.problems)
    registry = Registry()
    name = f"decisions_{args.sizes}{args.tag}"
    RESULTS.mkdir(exist_ok=True)
    log, summary_file = RESULTS / f"{name}.jsonl", RESULTS / f"{name}.json"
    done = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    finished = {(d["problem"], d["world"], d["seed"]) for d in done}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lstmops-decisions-") as tmp:
        work = Path(tmp)
        champions, degraded, trials = {}, {}, []
        for problem in problems:
            mv = registry.resolve(problem, "champion")
            champions[problem] = Champion(str(mv.folder), int(mv.version), dict(mv.metadata))
            if args.drift:
                degraded[problem] = degradation(settings, problem, champions[problem], work / "degradation" / problem)
                print(f"{problem}: drift from {degraded[problem]['start']}, champion degraded by "
                      f"{degraded[problem]['weeks'][-1]['loss'] if degraded[problem]['weeks'] else None} on "
                      f"{degraded[problem]['degraded_on']}", flush=True)
            days = steady_days(settings, problem)
            for i in range(steady_for.get(problem, args.steady)):
                trials.append({"problem": problem, "world": "steady", "seed": 1000 + i,
                               "days": [days[i % len(days)].isoformat()]})
            first = degraded.get(problem, {}).get("degraded_on")
            for i in range(args.drift if first else 0):
                d0 = date.fromisoformat(first)
                trials.append({"problem": problem, "world": "drift", "seed": 2000 + i,
                               "days": [d0.isoformat(), (d0 + timedelta(days=7)).isoformat()]})
        todo = [t for t in trials if (t["problem"], t["world"], t["seed"]) not in finished]
        # interleave problems so a partial run covers all of them
        todo.sort(key=lambda t: (t["seed"] % 1000, t["world"], problems.index(t["problem"])))
        print(f"{len(todo)} trials to run ({len(trials) - len(todo)} already done), {args.workers} at a time",
              flush=True)
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_worker_init) as pool:
            pending = {}
            queue = list(todo)
            while queue or pending:
                while queue and len(pending) < args.workers:
                    t = queue.pop(0)
                    pre = degraded.get(t["problem"], {}).get("pre_drift") if t["world"] == "drift" else None
                    fut = pool.submit(_run, settings, t, champions[t["problem"]].__dict__, str(work), pre)
                    pending[fut] = t
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in ready:
                    pending.pop(fut)
                    row = fut.result()
                    done.append(row)
                    with log.open("a", encoding="utf-8") as out:
                        out.write(json.dumps(row, default=str) + "\n")
                    verdicts = ", ".join(f"{d['day']} {d['verdict']}" for d in row["decisions"])
                    extra = f", recovery {row['recovery']:.3f}" if row.get("recovery") is not None else ""
                    print(f"{row['problem']} {row['world']} seed {row['seed']}: {verdicts} "
                          f"({row['seconds']:.0f} s){extra}", flush=True)
    results = [TrialResult(**d) for d in done if d["problem"] in problems]
    min_gains = dict(settings.update.gate.min_gain)
    report = {"sizes": args.sizes, "problems": problems, "seconds": round(time.perf_counter() - started, 1),
              "degradation": degraded, "summary": summarize(results, min_gains),
              "update": settings.update.model_dump(mode="json")}
    summary_file.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    s = report["summary"]

    def line(label: str, r: dict) -> str:
        return f"{label}: {r['successes']}/{r['n']} = {r['rate']:.3f} (Wilson 95% {r['low']:.3f}-{r['high']:.3f})"

    print(line("false promotion (steady)", s["steady"]["false_promotion"]))
    print(line("inconclusive (steady)", s["steady"]["inconclusive"]))
    print(line("harmful promotion (steady)", s["steady"]["harmful_promotion"]))
    print(line("power, first interval", s["drift"]["power_first_interval"]))
    print(line("power, within one interval", s["drift"]["power_within_one_interval"]))
    print(line("promoted that recover >= 95%", s["drift"]["recovered_95"]))
    print(f"recovery median {s['drift']['recovery_median']}")
    for problem, row in s["per_problem"].items():
        print(f"  {problem}: {row}")


if __name__ == "__main__":
    main()
