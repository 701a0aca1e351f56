"""Step 3 of the update process: develop candidate models (arms a–d and the fair baseline).

Every arm uses the deployed model's fitted preprocessing, so a weights-only update keeps
preparation unchanged, and every arm is scored on the same evaluation rows, which none
trains on. :func:`prepare_update_data` writes the prepared arrays once under
``<run dir>/data/``; :func:`plan_jobs` lists one small picklable :class:`ArmJob` per arm
and repeat; :func:`run_job` trains one of them in whatever process runs it (a spawned
worker, a Dask worker) from those files alone, memory-mapped; :func:`arm_matrices` turns
the results into the gate's ``repeats × examples`` matrices; :func:`realize` turns the
winning arm into a complete model bundle that ``Registry.register`` accepts.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstmops import paths
from lstmops.config import ProblemSettings, Settings
from lstmops.data.io import read_array, read_table, write_array, write_table
from lstmops.seeding import int_seed_for

VAL_SHARE = 0.1        # share of each training set held out for early stopping and choosing a repeat
CHUNK_ROWS = 500       # rows rendered at a time for problems with large inputs (moving_square)
DATA, ARMS_DIR, CHAMPION, RECORD = "data", "arms", "champion", "update_data.json"


@dataclass(frozen=True)
class ArmSpec:
    """How one arm starts (the deployed model or a fresh one) and which data it trains on."""

    start: str             # "champion": continue the deployed model; "fresh": a new model
    data: str              # "new", "old" or "old+new"
    continued: bool        # trained on from the deployed model's weights (its lineage)
    description: str


ARMS: dict[str, ArmSpec] = {
    "a": ArmSpec("champion", "new", True, "continue the deployed model on new data"),
    "b": ArmSpec("champion", "old+new", True, "continue the deployed model on old + new data"),
    "c": ArmSpec("fresh", "new", False, "a fresh model on new data"),
    "d": ArmSpec("fresh", "old+new", False, "a fresh model on old + new data"),
    # The fair baseline: the same extra epochs on old data only, so a gain of (a)/(b) can be
    # credited to the new data and not to the extra training itself.
    "baseline": ArmSpec("champion", "old", True, "continue the deployed model on old data only (fair baseline)"),
}
CANDIDATES = ("a", "b", "c", "d")


@dataclass(frozen=True)
class UpdateData:
    """Where one run's prepared arrays lie, and their layout; small and picklable.

    ``X_train``/``y_train`` hold the old rows then the new rows (``train_rows`` = their
    counts in array rows), ``X_val``/``y_val`` the held-out slices likewise, so every
    arm's data is one contiguous slice of a memory-mapped file.
    """

    problem: str
    run_id: str
    folder: str                      # <run dir>/data; for workers without the flow's disk, its s3:// copy
    champion_version: int
    train_rows: tuple[int, int]      # (old, new) array rows
    val_rows: tuple[int, int]
    eval_examples: int
    generative: bool
    draw_seed: int                   # common random numbers: every arm draws shapes from this stream
    temperature: float = 1.0         # generative sampling temperature, the same for every arm

    @property
    def run_dir(self) -> Path:
        """The run's folder (the parent of ``data/``)."""
        return Path(self.folder).parent

    @property
    def champion_dir(self) -> Path:
        """The copy of the deployed bundle's files that every arm starts from."""
        return Path(self.folder) / CHAMPION

    @classmethod
    def load(cls, run_dir: Path) -> "UpdateData | None":
        """The data a completed :func:`prepare_update_data` saved for ``run_dir``, or None."""
        from lstmops.update.records import load_record

        saved = load_record(Path(run_dir) / DATA / RECORD)
        if saved is None:
            return None
        return cls(**{**saved, "train_rows": tuple(saved["train_rows"]), "val_rows": tuple(saved["val_rows"])})


@dataclass(frozen=True)
class ArmJob:
    """One arm-repeat to train: everything a worker needs, besides the files of ``data``."""

    problem: str
    arm: str
    repeat: int
    seed: int
    data: UpdateData
    cfg: ProblemSettings
    epochs: int
    lr_factor: float


@dataclass(frozen=True)
class ArmResult:
    """What one arm-repeat produced: per-example values on the evaluation rows, and how it trained."""

    arm: str
    repeat: int
    seed: int
    values: list[float]              # NaN when diverged
    val_loss: float
    epochs: int
    seconds: float
    diverged: bool
    worker: str = ""                 # host:pid of the process that trained it (records before it lack it)


# --- data ------------------------------------------------------------------------------


def _split(table: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, validation) rows of ``table``: a random ``VAL_SHARE`` held out, order otherwise kept."""
    n_val = max(1, round(VAL_SHARE * len(table))) if len(table) > 1 else 0
    held = np.zeros(len(table), dtype=bool)
    held[rng.choice(len(table), n_val, replace=False)] = True
    return table[~held].reset_index(drop=True), table[held].reset_index(drop=True)


def _write_inputs(preparer: Any, tables: list[pd.DataFrame], path: Path) -> list[int]:
    """Write the inputs of ``tables`` one after another into one .npy; returns array rows per table."""
    if not hasattr(preparer, "inputs_chunks"):
        parts = [preparer.inputs(t) for t in tables]
        write_array(np.concatenate(parts), path)
        return [len(p) for p in parts]
    total = sum(len(t) for t in tables)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(total, *preparer.input_shape))
    start = 0
    for table in tables:
        for chunk in preparer.inputs_chunks(table, CHUNK_ROWS):
            out[start:start + len(chunk)] = chunk
            start += len(chunk)
    out.flush()
    del out
    return [len(t) for t in tables]


def _copy_champion(champion: Any, target: Path) -> None:
    """Verify the deployed bundle's checksums, then copy its files (runs need nothing from the registry)."""
    from lstmops.modeling.bundle import CHECKSUMS, FILES, verify_bundle

    verify_bundle(Path(champion.folder))
    target.mkdir(parents=True, exist_ok=True)
    for name in (*FILES, CHECKSUMS):
        shutil.copyfile(Path(champion.folder) / name, target / name)


def prepare_update_data(settings: Settings, problem: str, champion: Any, new_rows: pd.DataFrame,
                        eval_rows: pd.DataFrame, root: Path | None, run_dir: Path, rng_seed: int) -> UpdateData:
    """Prepare old, new and evaluation data with the deployed model's preparer; save them under ``run_dir/data``.

    Args:
        champion: the deployed :class:`~lstmops.registry.versions.ModelVersion`.
        new_rows: the collected rows the caller chose as "new" (by window).
        eval_rows: recent rows no arm trains on (the gate's evaluation data).
        root: repository root holding the build's training split (``update.old_size`` rows of it are "old").
        rng_seed: seeds the subsample of old rows and the validation slices.
    """
    from lstmops.features.preparers import load_preparer
    from lstmops.problems import is_generative

    folder = Path(run_dir) / DATA
    _copy_champion(champion, folder / CHAMPION)
    preparer = load_preparer(folder / CHAMPION / "preprocessing.json")
    rng = np.random.default_rng(rng_seed)
    old = read_table(paths.raw_split(problem, "train", root))
    if len(old) > settings.update.old_size:
        old = old.iloc[np.sort(rng.choice(len(old), settings.update.old_size, replace=False))]
    (old_train, old_val), (new_train, new_val) = _split(old.reset_index(drop=True), rng), _split(new_rows, rng)
    train_rows = _write_inputs(preparer, [old_train, new_train], folder / "X_train.npy")
    val_rows = _write_inputs(preparer, [old_val, new_val], folder / "X_val.npy")
    for name, tables in (("y_train", [old_train, new_train]), ("y_val", [old_val, new_val])):
        write_array(np.concatenate([preparer.targets(t) for t in tables]), folder / f"{name}.npy")
    generative = is_generative(problem)
    if not generative:
        _write_inputs(preparer, [eval_rows], folder / "X_eval.npy")
    write_table(eval_rows.reset_index(drop=True), folder / "eval.parquet")
    run_id = Path(run_dir).name
    data = UpdateData(problem, run_id, str(folder), int(champion.version), tuple(train_rows), tuple(val_rows),
                      len(eval_rows), generative, int_seed_for(settings.seed, problem, "update-draw", run_id),
                      settings.problems[problem].model.temperature)
    from lstmops.update.records import save_record

    save_record(data, folder / RECORD)  # written last: its presence means the data is complete
    return data


def arm_arrays(data: UpdateData, part: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-mapped (inputs, targets) of ``part`` ("old", "new", "old+new") of ``split`` ("train", "val")."""
    n_old, n_new = data.train_rows if split == "train" else data.val_rows
    lo, hi = {"old": (0, n_old), "new": (n_old, n_old + n_new), "old+new": (0, n_old + n_new)}[part]
    folder = Path(data.folder)
    x, y = read_array(folder / f"X_{split}.npy", mmap=True), read_array(folder / f"y_{split}.npy", mmap=True)
    return x[lo:hi], y[lo:hi]


# --- jobs ------------------------------------------------------------------------------


def plan_jobs(settings: Settings, problem: str, data: UpdateData, repeats: int, start: int = 0) -> list[ArmJob]:
    """One job per arm and repeat ``start .. start + repeats - 1`` (later calls add repeats, never redo them).

    Each job's seed drives its initial weights, data order and dropout.
    """
    cfg, up = settings.problems[problem], settings.update
    jobs = []
    for repeat in range(start, start + repeats):
        for arm, spec in ARMS.items():
            epochs = up.extra_epochs if spec.start == "champion" else (up.fresh_epochs or cfg.train.epochs)
            seed = int_seed_for(settings.seed, problem, "update", data.run_id, arm, repeat)
            jobs.append(ArmJob(problem, arm, repeat, seed, data, cfg, epochs, up.lr_factor))
    return jobs


def _task(job: ArmJob, preparer: Any, n_train: int) -> tuple[Any, Any]:
    """(train spec, task) of a job: its epochs, all of its rows, the problem's loss."""
    from lstmops.modeling.training import make_task
    from lstmops.problems import get_problem

    train = job.cfg.train.model_copy(update={"epochs": job.epochs, "train_rows": None})
    return train, make_task(get_problem(job.problem), preparer.input_shape, preparer.target_shape, n_train, train)


def _continue(job: ArmJob, preparer: Any, train_xy: tuple, val_xy: tuple) -> tuple[Any, dict]:
    """The deployed model, recompiled at ``lr_factor`` × the problem's rate, trained ``job.epochs`` more."""
    import keras

    train, task = _task(job, preparer, len(train_xy[0]))
    model = _champion_builder(job, task)(job.seed)
    history = model.fit(*train_xy, batch_size=train.batch_size, epochs=job.epochs, validation_data=val_xy,
                        callbacks=[keras.callbacks.TerminateOnNaN()], shuffle=True, verbose=0).history
    return model, history


def _fresh(job: ArmJob, preparer: Any, train_xy: tuple, val_xy: tuple) -> tuple[Any, dict]:
    """A new model of the configured architecture, early-stopped on the arm's validation slice."""
    from lstmops.modeling.training import fit

    train, task = _task(job, preparer, len(train_xy[0]))
    result = fit(job.cfg.architecture, job.cfg.model, task, train_xy, val_xy, train, job.seed)
    return result.model, result.history


def _outputs(data: UpdateData, model: Any, preparer: Any) -> np.ndarray:
    """Raw model outputs on the evaluation inputs, or for a generative problem the drawn shapes."""
    from lstmops.modeling.training import predict
    from lstmops.problems import get_problem

    if data.generative:
        rng = np.random.default_rng(data.draw_seed)
        return np.asarray(get_problem(data.problem).draw(model, preparer, data.eval_examples, rng,
                                                          data.temperature))
    return predict(model, read_array(Path(data.folder) / "X_eval.npy", mmap=True))


def _values(data: UpdateData, outputs: np.ndarray, preparer: Any) -> np.ndarray:
    """Per-example values (the problem's ``per_example``) of outputs on the evaluation rows."""
    from lstmops.problems import get_problem

    problem = get_problem(data.problem)
    table = read_table(Path(data.folder) / "eval.parquet")
    if data.generative:
        return np.asarray(problem.per_example(table, outputs), dtype=np.float64)
    if problem.HEAD == "mixture":
        from lstmops.modeling.architectures import generative

        outputs = generative.mean_prediction(outputs)
    return np.asarray(problem.per_example(table, preparer.decode(outputs)), dtype=np.float64)


def _atomic_write(path: Path, write: Any) -> None:
    """``write(tmp_path)``, then rename into place (workers may write the same file side by side)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)  # Keras insists on ".weights.h5"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name.split('.')[0]}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _compile_cache() -> None:
    """Keep compiled JAX programs on disk (see :func:`lstmops.modeling.training.use_compile_cache`).

    Every repeat of an arm compiles the same training program: with the cache, only the
    first one in any worker pays for it (echo: 4.2 s cold, 1.8 s warm per arm-repeat).
    """
    from lstmops.modeling.training import use_compile_cache

    use_compile_cache()


def run_job(job: ArmJob, out: Path | None = None) -> ArmResult:
    """Train one arm-repeat here, score it on the evaluation rows, save its weights and outputs.

    The files go under ``out/arms/<arm>/`` (default: the run's folder). A repeat whose
    final validation loss or evaluation outputs are not finite comes back
    ``diverged=True`` with NaN values (nothing is saved for it), never as an exception.
    """
    from lstmops.modeling.training import set_seed, use_default_backend

    use_default_backend()
    _compile_cache()
    from lstmops.features.preparers import load_preparer

    started = time.perf_counter()
    spec, data = ARMS[job.arm], job.data
    preparer = load_preparer(data.champion_dir / "preprocessing.json")
    train_xy, val_xy = arm_arrays(data, spec.data, "train"), arm_arrays(data, spec.data, "val")
    set_seed(job.seed)  # before the model exists: its dropout seeds come from here
    model, history = (_continue if spec.start == "champion" else _fresh)(job, preparer, train_xy, val_xy)
    return _finish(job, model, history, preparer, val_xy, time.perf_counter() - started, out)


def run_jobs(jobs: list[ArmJob], out: Path | None = None) -> list[ArmResult]:
    """Several repeats of one arm trained together as vmapped replicas (:mod:`lstmops.modeling.replicas`).

    Each replica has its job's seed (data order, dropout; a fresh arm's initial weights
    too; a continued arm starts every replica from the deployed weights), so the results
    are those of :func:`run_job` for each job, at the cost of about one. Falls back to one
    :func:`run_job` per job without JAX or for a single job. Files go under ``out`` as there.
    """
    from lstmops.modeling.replicas import fallback_reason, fit_replicas
    from lstmops.modeling.training import use_default_backend

    if len({(j.problem, j.arm, j.data.run_dir) for j in jobs}) > 1:
        raise ValueError("run_jobs trains repeats of one arm of one run together")  # a caller's bug
    if fallback_reason(len(jobs)) is not None:
        return [run_job(job, out) for job in jobs]
    use_default_backend()
    _compile_cache()
    from lstmops.features.preparers import load_preparer

    started = time.perf_counter()
    first = jobs[0]
    spec, data = ARMS[first.arm], first.data
    preparer = load_preparer(data.champion_dir / "preprocessing.json")
    train_xy, val_xy = arm_arrays(data, spec.data, "train"), arm_arrays(data, spec.data, "val")
    train, task = _task(first, preparer, len(train_xy[0]))
    build = None
    if spec.start == "champion":
        train = train.model_copy(update={"patience": 0})  # continued arms train their epochs, as run_job's do
        build = _champion_builder(first, task)
    fits = fit_replicas(first.cfg.architecture, first.cfg.model, task, train_xy, val_xy, train,
                        [j.seed for j in jobs], epochs=first.epochs, build=build)
    each = (time.perf_counter() - started) / len(jobs)
    return [_finish(job, fit.model, fit.history, preparer, val_xy, each, out) for job, fit in zip(jobs, fits)]


def _champion_builder(job: ArmJob, task: Any) -> Any:
    """Makes the deployed model recompiled at ``lr_factor`` x the problem's rate (a continued arm's start)."""
    from lstmops.modeling.architectures import resolve_loss
    from lstmops.modeling.architectures._common import optimizer
    from lstmops.modeling.bundle import load_model

    spec = job.cfg.model.model_copy(update={"learning_rate": job.cfg.model.learning_rate * job.lr_factor})

    def build(seed: int) -> Any:
        model = load_model(job.data.champion_dir)
        model.compile(optimizer=optimizer(spec, task), loss=resolve_loss(task.loss))
        return model

    return build


def group_jobs(jobs: list[ArmJob], size: int) -> list[list[ArmJob]]:
    """Jobs in groups of up to ``size`` repeats of the same arm (``size`` <= 1: one job per group)."""
    if size <= 1:
        return [[job] for job in jobs]
    by_arm: dict[str, list[ArmJob]] = {}
    for job in jobs:
        by_arm.setdefault(job.arm, []).append(job)
    return [arm_jobs[i:i + size] for arm_jobs in by_arm.values() for i in range(0, len(arm_jobs), size)]


def _finish(job: ArmJob, model: Any, history: dict, preparer: Any, val_xy: tuple, seconds: float,
            out: Path | None = None) -> ArmResult:
    """Score a trained arm-repeat on the evaluation rows, save its weights and outputs (under ``out``, default
    the run's folder), and say how it went."""
    spec, data = ARMS[job.arm], job.data
    started = time.perf_counter()
    val_loss = float(model.evaluate(*val_xy, batch_size=1024, verbose=0))
    outputs = _outputs(data, model, preparer) if math.isfinite(val_loss) else None
    diverged = outputs is None or not np.isfinite(outputs).all()
    values = np.full(data.eval_examples, np.nan) if diverged else _values(data, outputs, preparer)
    if not diverged:
        folder = Path(out or data.run_dir) / ARMS_DIR / job.arm
        arch = (data.champion_dir / "model.json").read_text(encoding="utf-8") if spec.start == "champion" \
            else model.to_json(indent=1) + "\n"
        _atomic_write(folder / "model.json", lambda p: p.write_text(arch, encoding="utf-8"))
        _atomic_write(folder / f"r{job.repeat}.weights.h5", model.save_weights)
        _atomic_write(folder / f"r{job.repeat}.outputs.npy", lambda p: np.save(p, outputs, allow_pickle=False))
    return ArmResult(job.arm, job.repeat, job.seed, [float(v) for v in values], val_loss,
                     len(history.get("loss", [])), seconds + time.perf_counter() - started, diverged)


def score_deployed(data: UpdateData) -> list[float]:
    """Per-example values of the deployed model as it is, on the evaluation rows (same draws as the arms)."""
    from lstmops.features.preparers import load_preparer
    from lstmops.modeling.bundle import load_model

    preparer = load_preparer(data.champion_dir / "preprocessing.json")
    outputs = _outputs(data, load_model(data.champion_dir), preparer)
    return [float(v) for v in _values(data, outputs, preparer)]


# --- results ---------------------------------------------------------------------------


def arm_matrices(results: list[ArmResult]) -> dict[str, np.ndarray]:
    """Per arm, its finished repeats' values as a ``repeats × examples`` matrix (in repeat order).

    Diverged repeats are left out (see :func:`diverged_counts`); an arm with none left
    gets a ``0 × examples`` matrix, which the gate refuses: the caller decides.
    """
    out = {}
    for arm in dict.fromkeys(r.arm for r in results):
        mine = sorted((r for r in results if r.arm == arm), key=lambda r: r.repeat)
        width = len(mine[0].values)
        out[arm] = np.array([r.values for r in mine if not r.diverged], dtype=np.float64).reshape(-1, width)
    return out


def diverged_counts(results: list[ArmResult]) -> dict[str, int]:
    """Per arm, how many repeats diverged (NaN or infinite loss or outputs)."""
    counts = {r.arm: 0 for r in results}
    for r in results:
        counts[r.arm] += int(r.diverged)
    return counts


def median_repeat(results: list[ArmResult], arm: str) -> ArmResult:
    """The repeat of ``arm`` with the median validation loss (the lower middle one for an even count).

    Not the best seed on purpose: the gate judged the arm's distribution, and the model
    put forward should be a typical draw from it, not its luckiest (which would regress
    to the mean once deployed, and was picked with the validation data it is judged on).
    """
    ok = sorted((r for r in results if r.arm == arm and not r.diverged), key=lambda r: (r.val_loss, r.repeat))
    if not ok:
        raise ValueError(f"arm {arm!r} has no finished (non-diverged) repeat to realise")
    return ok[(len(ok) - 1) // 2]


def _metadata(settings: Settings, problem: str, arm: str, chosen: ArmResult, results: list[ArmResult],
              data: UpdateData, champion: Any, evidence: dict) -> dict:
    """Metadata of a realised candidate: where it came from, how it was chosen, and the gate's evidence."""
    from lstmops.modeling.training import device_info
    from lstmops.problems import get_problem

    spec, cfg = ARMS[arm], settings.problems[problem]
    parent = dict(champion.metadata)
    finished = [r for r in results if r.arm == arm and not r.diverged]
    metric = get_problem(problem).PRIMARY_METRIC
    return {
        "problem": problem,
        "architecture": parent.get("architecture") if spec.continued else cfg.architecture,
        "seed": chosen.seed, "epochs": chosen.epochs,
        "settings": parent.get("settings") if spec.continued else json.loads(cfg.model_dump_json()),
        "lineage": {"parent_version": int(champion.version), "continued": spec.continued,
                    "root_seed": parent.get("seed") if spec.continued else None},
        "update": {
            "run_id": data.run_id, "arm": arm, "description": spec.description, "repeat": chosen.repeat,
            "seed": chosen.seed, "continued": spec.continued, "val_loss": chosen.val_loss,
            "chosen_by": "median validation loss over the arm's finished repeats",
            "repeats": len(finished), "diverged": diverged_counts(results).get(arm, 0),
            "epochs": chosen.epochs, "lr_factor": settings.update.lr_factor if spec.start == "champion" else None,
            "rows": {"old": data.train_rows[0] if "old" in spec.data else 0,
                     "new": data.train_rows[1] if "new" in spec.data else 0},
            "evidence": evidence,
        },
        "test_metrics": {metric: float(np.mean(chosen.values))},  # on this run's evaluation rows
        "device": device_info(),
    }


def realize(settings: Settings, problem: str, arm: str, results: list[ArmResult], data: UpdateData,
            champion: Any, run_dir: Path, evidence: dict) -> Path:
    """Assemble the winning arm's median-validation-loss repeat as a complete bundle; returns its folder.

    The files are those of :func:`lstmops.modeling.bundle.save_bundle`: the architecture
    JSON (for a weights-only arm byte-for-byte the deployed one), the chosen repeat's
    weights, the deployed model's preprocessing, metadata (arm, repeat, seed, lineage,
    evidence) and checksums, so ``Registry.register(problem, folder)`` accepts it.
    """
    from lstmops.modeling.bundle import (ARCHITECTURE, CHECKSUMS, FILES, METADATA, PREPROCESSING, WEIGHTS,
                                         sha256)

    chosen = median_repeat(results, arm)
    source = Path(run_dir) / ARMS_DIR / arm
    folder = Path(run_dir) / "candidate" / arm
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "model.json", folder / ARCHITECTURE)
    shutil.copyfile(source / f"r{chosen.repeat}.weights.h5", folder / WEIGHTS)
    shutil.copyfile(data.champion_dir / PREPROCESSING, folder / PREPROCESSING)
    meta = _metadata(settings, problem, arm, chosen, results, data, champion, evidence)
    (folder / METADATA).write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n", encoding="utf-8")
    sums = {name: sha256(folder / name) for name in FILES}
    (folder / CHECKSUMS).write_text(json.dumps(sums, indent=1) + "\n", encoding="utf-8")
    return folder
