"""DVC stage: robust evaluation of one problem's configured model.

Runs ``evaluate.repeats`` independent fit-and-score runs (own seed, own fresh test
data each), then writes DVC metrics (mean, std, confidence interval, min, max of every
skill metric), per-run scores and learning curves as DVC plots data, and PNGs.
"""

from __future__ import annotations

import argparse
import csv
import json
import math

from lstmops import paths
from lstmops.modeling import plots
from lstmops.config import load_settings, problem_settings
from lstmops.entry import run_main
from lstmops.modeling.evaluation import summarize
from lstmops.problems import get_problem


def _write_csv(path, rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _curve_rows(results) -> list[dict]:
    return [
        {"run": r.repeat, "epoch": e + 1, "loss": loss, "val_loss": r.history.get("val_loss", [math.nan] * (e + 1))[e]}
        for r in results for e, loss in enumerate(r.history["loss"])
    ]


def main() -> None:
    """Run the repeats, summarise them, write metrics, plots data and pictures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("problem")
    args = parser.parse_args()
    settings = load_settings(paths.params_file())
    cfg = problem_settings(settings, args.problem)
    problem = get_problem(args.problem)
    from lstmops.modeling.experiment import run_repeats

    results = run_repeats(settings, args.problem, paths.repo_root())
    names = list(results[0].metrics)
    conf = settings.evaluate.confidence
    summary = {
        "architecture": cfg.architecture,
        "primary_metric": problem.PRIMARY_METRIC,
        "higher_is_better": problem.HIGHER_IS_BETTER,
        "repeats": len(results),
        "best_epoch_median": int(sorted(r.best_epoch for r in results)[len(results) // 2]),
        "metrics": {n: summarize([r.metrics[n] for r in results], conf).as_dict() for n in names},
    }
    out = paths.metrics_dir(args.problem)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    _write_csv(out / "scores.csv", [{"run": r.repeat, "seed": r.seed, **r.metrics} for r in results])
    _write_csv(out / "learning_curves.csv", _curve_rows(results))
    runs = [{"run": r.repeat, "seconds": round(r.seconds, 2), "best_epoch": r.best_epoch, **r.device} for r in results]
    (out / "runs.json").write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")
    title = f"{args.problem} ({cfg.architecture}), {len(results)} runs"
    plots.learning_curves([r.history for r in results], title, out / "learning_curves.png")
    primary = problem.PRIMARY_METRIC
    plots.score_boxplot({cfg.architecture: [r.metrics[primary] for r in results]}, title, primary,
                        out / "scores_boxplot.png")
    s = summary["metrics"][primary]
    print(f"evaluate {args.problem}: {primary} mean {s['mean']:.5f} ± {s['std']:.5f} "
          f"(CI {s['ci_low']:.5f}..{s['ci_high']:.5f}, min {s['min']:.5f}, max {s['max']:.5f}) over {len(results)} runs "
          f"on {results[0].device.get('device', '?')}")


if __name__ == "__main__":
    run_main(main, "evaluate")
