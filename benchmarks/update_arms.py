"""Seconds per arm-repeat of the update's step 3 at the configured ``update`` sizes (params.yaml).

Builds a throw-away champion per problem (1 epoch on the reference training size), then
trains each arm twice in this process (cold, then with the compile cache warm) and prints the seconds, so the default cycle
(problems × 5 arms × repeats / workers) can be sized. Usage:
``python benchmarks/update_arms.py echo damped_sine`` (from the repository root).

Measured 2026-11-30 on 2 shared CPU cores (load 3-7), default sizes (old 5000, new 2000,
extra_epochs 2, fresh = train.epochs), seconds per arm-repeat a/b/c/d/baseline, first
repeat (compiling) then later repeats (compile cache warm):
echo 4.2/4.2/4.2/4.3/2.8, then 1.9/1.7/1.8/1.9/1.7; damped_sine 2.8/3.7/4.3/10.8/4.7, then
1.1/2.8/3.0/9.7/3.1; cumulative_sum 20/16/12/14/11, then 1.8/1.7/2.1/6.2/2.2; addition
16/6.9/3.6/7.2/6.8, then 1.4/1.2/1.7/4.8/1.0; rectangles 3.4/4.3/4.6/5.2/4.3, then
0.7/0.7/2.3/2.0/1.1; moving_square 38/110/72/222/83 (about 525 s a repeat; compiling is a
small part of it). So 10 repeats take about 12 min of one worker for the five small
problems together, and about 85 min for moving_square alone.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPEATS = 2  # the first repeat of an arm compiles its programs, the second finds them in the compile cache


def update_data(settings, problem: str, work: Path, registry, run_id: str):
    """A throw-away champion of ``problem`` (1 epoch on the reference training size), registered in
    ``registry``, and an update run's prepared data at the configured ``update`` sizes, under ``work``."""
    from lstmops import paths
    from lstmops.data.drift import generate_at
    from lstmops.data.io import write_table
    from lstmops.features.preparers import make_preparer
    from lstmops.modeling.bundle import save_bundle
    from lstmops.modeling.training import fit, make_task
    from lstmops.problems import get_problem
    from lstmops.update import candidates as cand

    up, cfg, module = settings.update, settings.problems[problem], get_problem(problem)
    rng = np.random.default_rng(0)
    old = generate_at(module, cfg.process, cfg.drift, cfg.sizes.train, rng, settings.as_of)
    write_table(old, paths.raw_split(problem, "train", work))
    prep = make_preparer(problem, cfg.process, settings.prepare.out_of_range, settings.prepare.tolerance).fit(old)
    task = make_task(module, prep.input_shape, prep.target_shape, len(old), cfg.train)
    champ = fit(cfg.architecture, cfg.model, task, (prep.inputs(old), prep.targets(old)), None, cfg.train, 1,
                epochs=1)
    meta = {"problem": problem, "architecture": cfg.architecture, "settings": json.loads(cfg.model_dump_json())}
    save_bundle(champ.model, prep, meta, work / "bundle" / problem)
    champion = registry.register(problem, work / "bundle" / problem).version
    new = generate_at(module, cfg.process, cfg.drift, up.batch_size, rng, settings.as_of)
    evals = generate_at(module, cfg.process, cfg.drift, up.eval_size, rng, settings.as_of)
    return cand.prepare_update_data(settings, problem, champion, new, evals, work,
                                    paths.update_run_dir(problem, run_id, work), 0)


def main() -> None:
    """Time one repeat of every arm for each problem named on the command line."""
    from lstmops import paths
    from lstmops.config import load_settings
    from lstmops.modeling.training import use_default_backend
    from lstmops.registry.versions import Registry
    from lstmops.update import candidates as cand

    use_default_backend()
    settings = load_settings(paths.params_file())
    tmp = Path(tempfile.mkdtemp(prefix="lstmops-bench-"))
    registry = Registry(url=f"sqlite:///{tmp / 'db.sqlite'}", folder=tmp / "registry")
    report = {}
    for problem in sys.argv[1:] or ["echo", "damped_sine"]:
        data = update_data(settings, problem, tmp, registry, "bench")
        timings = {}
        for job in cand.plan_jobs(settings, problem, data, REPEATS):
            result = cand.run_job(job)
            timings[f"{job.arm}/r{job.repeat}"] = {"seconds": round(result.seconds, 1), "epochs": result.epochs,
                                                   "score": float(np.mean(result.values))}
            print(problem, job.arm, job.repeat, timings[f"{job.arm}/r{job.repeat}"], flush=True)
        report[problem] = timings
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
