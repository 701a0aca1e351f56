"""DVC stage: fit the chosen configuration on all data and save the finalized model.

All data is train + validation; with no held-out validation set left, the model trains
for the median best epoch found by the evaluate stage's early-stopped runs (read from
``statistics.json``). The test split, never trained on, gives the final model's own score.
A problem module with an ``after_finalize`` hook adds its own outputs to
``metrics/<problem>/`` (rectangles: a picture of shapes the model draws).
"""

from __future__ import annotations

import json
import platform
from importlib import metadata as dist

import yaml

from lstmops import paths
from lstmops.modeling.bundle import save_bundle
from lstmops.entry import run_main, stage_args
from lstmops.problems import get_problem
from lstmops.seeding import int_seed_for, rng_for

LIBRARIES = ("lstmops", "keras", "jax", "numpy", "pandas", "scikit-learn", "great-expectations", "dvc")


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = dist.version(name)
        except dist.PackageNotFoundError:
            continue
    return found


def _data_hashes(problem: str) -> dict[str, str]:
    """md5 of this problem's data stage outputs, as recorded by DVC in dvc.lock."""
    lock_path = paths.dvc_lock()
    if not lock_path.is_file():
        return {}
    stages = (yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}).get("stages", {})
    return {
        out["path"]: out["md5"]
        for stage in ("generate", "validate", "prepare")
        for out in stages.get(f"{stage}@{problem}", {}).get("outs", [])
    }


def main() -> None:
    """Fit on all data, score on the test split, save the bundle and its metrics."""
    args = stage_args(__doc__)
    settings, cfg = args.settings, args.cfg
    out = paths.metrics_dir(args.problem)
    statistics = json.loads(paths.statistics_file(args.problem).read_text(encoding="utf-8"))
    from lstmops.modeling.evaluation import score_model
    from lstmops.modeling.experiment import fit_problem, load_problem_data
    from lstmops.modeling.training import use_compile_cache

    use_compile_cache()

    data = load_problem_data(args.problem, paths.repo_root())
    seed = int_seed_for(settings.seed, args.problem, "final")
    epochs = statistics["best_epoch_median"]
    result = fit_problem(settings, args.problem, data, seed, final=True, epochs=epochs)
    rng = rng_for(settings.seed, args.problem, "final-shapes")
    final = score_model(args.problem, result.model, data.preparer, data.test_table, data.train_table, rng,
                        settings.evaluate.generated_shapes, cfg.model.temperature)
    paths.final_file(args.problem).write_text(json.dumps(final, indent=1) + "\n", encoding="utf-8")
    metadata = {
        "problem": args.problem, "architecture": cfg.architecture, "epochs": epochs, "seed": seed,
        "settings": json.loads(cfg.model_dump_json()), "as_of": settings.as_of.isoformat(),
        "data_md5": _data_hashes(args.problem), "evaluation": statistics, "test_metrics": final,
        "libraries": _versions(), "device": result.device,
    }
    save_bundle(result.model, data.preparer, metadata, paths.models_dir(args.problem))
    extra = getattr(get_problem(args.problem), "after_finalize", None)
    if extra is not None:
        extra(result.model, data.preparer, cfg.model, rng_for(settings.seed, args.problem, "picture"), out)
    print(f"finalize {args.problem}: {epochs} epochs on all data in {result.seconds:.1f} s; test "
          + ", ".join(f"{k} {v:.5f}" for k, v in final.items()))


if __name__ == "__main__":
    run_main(main, "finalize")
