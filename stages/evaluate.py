"""DVC stage: robust evaluation of one problem's configured model.

Runs ``evaluate.repeats`` independent fit-and-score runs (own seed, own fresh test
data each), then writes the DVC metrics ``evaluation.json`` (headline numbers: the
primary metric's mean, std and confidence interval, each secondary metric's mean, the
repeats), the full statistics ``statistics.json`` (every metric's n, mean, std, CI,
min, max, median; best epochs), per-run scores and learning curves as DVC plots data,
and PNGs. Seconds and device per run go to the git-ignored ``timings.json``.
"""

from __future__ import annotations

import csv
import json
import math

from lstmops import paths
from lstmops.entry import run_main, stage_args
from lstmops.modeling import plots
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


def _headline(statistics: dict) -> dict:
    """The few numbers a reader compares across experiments; the same keys for every problem."""
    primary = statistics["primary_metric"]
    p = statistics["metrics"][primary]
    secondary = {n: m["mean"] for n, m in statistics["metrics"].items() if n != primary}
    return {"primary": primary, **{k: p[k] for k in ("mean", "std", "ci_low", "ci_high")},
            "repeats": statistics["repeats"], **secondary}


def _write_json(path, data) -> None:
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def main() -> None:
    """Run the repeats, summarise them, write metrics, statistics, plots data and pictures."""
    ctx = stage_args(__doc__)
    name, cfg = ctx.problem, ctx.cfg
    problem = get_problem(name)
    from lstmops.modeling.experiment import run_repeats
    from lstmops.modeling.progress import RunProgress
    from lstmops.modeling.training import use_compile_cache

    use_compile_cache()  # a re-run loads the compiled training programs instead of compiling them

    with RunProgress(f"evaluate {name}: {ctx.settings.evaluate.repeats} runs", cfg.train.epochs) as progress:
        results = run_repeats(ctx.settings, name, ctx.root, progress=progress)
    primary = problem.PRIMARY_METRIC
    for r in results:  # one line per finished run, in logs too
        print(f"evaluate {name}: run {r.repeat} {primary} {r.metrics[primary]:.4g}, best epoch {r.best_epoch} "
              f"of {len(r.history['loss'])}, {r.seconds:.1f} s{' (replicas)' if 'replicas' in r.device else ''}")
    statistics = {
        "architecture": cfg.architecture,
        "primary_metric": problem.PRIMARY_METRIC,
        "higher_is_better": problem.HIGHER_IS_BETTER,
        "repeats": len(results),
        "best_epoch_median": int(sorted(r.best_epoch for r in results)[len(results) // 2]),
        "runs": [{"run": r.repeat, "seed": r.seed, "best_epoch": r.best_epoch} for r in results],
        "metrics": {n: summarize([r.metrics[n] for r in results], ctx.settings.evaluate.confidence).as_dict()
                    for n in results[0].metrics},
    }
    out = paths.metrics_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(paths.statistics_file(name), statistics)
    _write_json(paths.evaluation_file(name), _headline(statistics))
    _write_csv(out / "scores.csv", [{"run": r.repeat, "seed": r.seed, **r.metrics} for r in results])
    _write_csv(out / "learning_curves.csv", _curve_rows(results))
    _write_json(paths.timings_file(name), [{"run": r.repeat, "seconds": round(r.seconds, 2), **r.device}
                                           for r in results])
    title = f"{name} ({cfg.architecture}), {len(results)} runs"
    plots.learning_curves([r.history for r in results], title, out / "learning_curves.png")
    plots.score_boxplot({cfg.architecture: [r.metrics[primary] for r in results]}, title, primary,
                        out / "scores_boxplot.png")
    s = statistics["metrics"][primary]
    print(f"evaluate {name}: {primary} mean {s['mean']:.5f} ± {s['std']:.5f} "
          f"(CI {s['ci_low']:.5f}..{s['ci_high']:.5f}, min {s['min']:.5f}, max {s['max']:.5f}) over {len(results)} runs "
          f"on {results[0].device.get('device', '?')}")


if __name__ == "__main__":
    run_main(main, "evaluate")
