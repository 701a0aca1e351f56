"""One update cycle of all six problems at the default settings, timed, and how much skill it recovers.

Runs the real flow (``flows/update.py --all --as-of DATE --no-wait``, Prefect's temporary
local server) in a throw-away copy of this repository's state: params.yaml, the build's
training splits and a copy of the registry with its champions, in a new git + DVC
repository, so nothing real is touched. Then, per problem:

- the verdict, the winner and the gate's numbers (``updates/<P>/<DATE>/gate.json``);
- the champion's skill before the drift (on fresh rows of the build date) and after it
  (on the run's evaluation rows), and the proposed candidate's skill on those same
  evaluation rows, all through the serving path (``lstmops predict``'s code), scored with
  the problem's ``per_example``; recovery = candidate after / champion before (inverted
  for lower-is-better metrics).

Targets (issue #8): the cycle in ≤ 20 minutes on 2 cores; PROMOTE for every problem whose
champion's skill fell; recovery ≥ 95 %. Writes ``benchmarks/results/update_cycle.json``.

    .venv/bin/python benchmarks/bench_update.py [--as-of 2027-04-01] [--problems echo addition]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 20 * 60


def _copy_state(work: Path, problems: list[str]) -> dict[str, str]:
    """A new git + DVC repository with this repository's params, training splits and registry."""
    shutil.copy2(ROOT / "params.yaml", work / "params.yaml")
    for problem in problems:
        shutil.copytree(ROOT / "data" / "raw" / problem, work / "data" / "raw" / problem)
    shutil.copytree(ROOT / "registry", work / "registry")
    env = os.environ | {"LSTMOPS_ROOT": str(work), "LSTMOPS_DB_URL": f"sqlite:///{work / 'registry' / 'lstmops.db'}",
                        "PREFECT_HOME": str(work / ".prefect"), "DVC_NO_ANALYTICS": "1",
                        "GX_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    for cmd in (["git", "init", "-q"], ["git", "config", "user.email", "bench@lstmops.local"],
                ["git", "config", "user.name", "bench"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "remote", "add", "-d", "storage", str(work / "remote")]):
        subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
    return env


def _skill(problem: str, table, registry, ref) -> float:
    """Mean per-example skill of model ``ref`` on ``table`` through the serving path."""
    from lstmops.problems import get_problem, is_generative
    from lstmops.serving.predict import predict

    module = get_problem(problem)
    if is_generative(problem):
        batch = predict(problem, None, registry, None, ref=ref, n=len(table), seed=0)
    else:
        batch = predict(problem, table[module.input_columns(_params(registry, problem, ref))].reset_index(drop=True),
                        registry, None, ref=ref)
    return float(module.per_example(table.reset_index(drop=True), batch.outputs).mean())


def _params(registry, problem: str, ref):
    from lstmops.serving.inputs import version_params

    return version_params(registry.resolve(problem, ref))


def _evaluate(work: Path, problem: str, as_of: date) -> dict:
    from lstmops.config import load_settings
    from lstmops.data.io import read_table
    from lstmops.problems import get_problem
    from lstmops.registry import Registry
    from lstmops.update.collect import draw_split

    settings = load_settings(work / "params.yaml")
    registry = Registry()
    gate = json.loads((work / "updates" / problem / as_of.isoformat() / "gate.json").read_text())
    proposal_file = work / "updates" / problem / as_of.isoformat() / "proposal.json"
    proposal = json.loads(proposal_file.read_text()) if proposal_file.is_file() else None
    evaluation = read_table(work / "data" / "batches" / problem / as_of.isoformat() / "eval.parquet")
    before = _skill(problem, draw_split(settings, problem, settings.as_of, "eval"), registry, "champion")
    after = _skill(problem, evaluation, registry, "champion")
    row = {"problem": problem, "verdict": gate["verdict"], "winner": gate.get("winner"), "repeats": gate["repeats"],
           "champion_before_drift": before, "champion_after_drift": after,
           "higher_is_better": bool(get_problem(problem).HIGHER_IS_BETTER), "gate_means": gate["means"]}
    if proposal is not None:
        candidate = _skill(problem, evaluation, registry, proposal["candidate_version"])
        ratio = candidate / before if row["higher_is_better"] else before / max(candidate, 1e-12)
        row |= {"candidate_after_drift": candidate, "recovery": ratio}
    return row


def main() -> None:
    """Run the cycle in a copy, time it, score it, print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as-of", default="2027-04-01", help="a date after every default drift has started")
    parser.add_argument("--problems", nargs="*", help="default: every problem in params.yaml")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from lstmops.config import load_settings

    problems = args.problems or list(load_settings(ROOT / "params.yaml").problems)
    as_of = date.fromisoformat(args.as_of)
    with tempfile.TemporaryDirectory(prefix="lstmops-bench-update-") as tmp:
        work = Path(tmp)
        env = _copy_state(work, problems)
        started = time.perf_counter()
        cmd = [sys.executable, str(ROOT / "flows" / "update.py"), "--as-of", args.as_of, "--no-wait"]
        cmd += ["--all"] if not args.problems else ["--only", *problems]
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        lines = [ln for ln in done.stdout.splitlines() if ln.split(":")[0] in problems]
        print("\n".join(lines) or done.stdout[-3000:] + done.stderr[-3000:])
        os.environ.update({k: env[k] for k in ("LSTMOPS_ROOT", "LSTMOPS_DB_URL")})
        rows = [_evaluate(work, p, as_of) for p in problems
                if (work / "updates" / p / as_of.isoformat() / "gate.json").is_file()]
    report = {"as_of": args.as_of, "problems": problems, "seconds": round(seconds, 1),
              "budget_ratio": round(seconds / BUDGET_S, 3), "exit_code": done.returncode, "rows": rows}
    print(f"\nupdate cycle of {len(problems)} problem(s): {seconds / 60:.1f} min "
          f"({report['budget_ratio']:.2f} of the 20-minute budget), exit {done.returncode}")
    for row in rows:
        rec = f", recovery {row['recovery']:.3f}" if "recovery" in row else ""
        print(f"  {row['problem']}: {row['verdict']} ({row['winner']}), champion {row['champion_before_drift']:.4g} "
              f"before drift, {row['champion_after_drift']:.4g} after{rec}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "update_cycle.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
