"""The arms' trainings on workers that share no disk with the flow process.

On one machine, a worker process reads the run's prepared arrays and the copy of the
deployed bundle straight from ``<run dir>/data``. A Dask worker on another machine has
no such folder, so with ``update.runner: dask`` and a model store (``LSTMOPS_MODEL_STORE``,
:mod:`lstmops.registry.objects`) the flow process *publishes* the folder once per run
under ``<store>/runs/<problem>/<run id>/data/`` (a manifest of sha256 checksums written
last) and hands the workers jobs whose ``data.folder`` is that ``s3://`` URL: a job
carries no path of the flow's machine at all. Each worker *materialises* the data in its
own scratch folder (``$LSTMOPS_SCRATCH``, default ``<tmp>/lstmops-scratch-<uid>``),
checked against the manifest and downloaded once per worker machine and run, trains,
and returns weights and outputs as bytes (:class:`Trained`). The flow process saves
them under its run folder as each group arrives (:func:`keep`), exactly where a local
run saves them, so a re-run after a crash trains only what is missing, and the gate and
the registration read the flow's own disk as before.

The scratch folder is a cache: deleting it costs a download, and a worker drops its
copies of a problem's runs that no job used for :data:`SCRATCH_DAYS`. The uploads under
``runs/`` are left to the bucket's own lifecycle rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lstmops.errors import DataError
from lstmops.modeling.bundle import sha256

MANIFEST = "manifest.json"
SCRATCH_ENV = "LSTMOPS_SCRATCH"
REMOTE = "s3://"
SCRATCH_DAYS = 7       # a worker drops its copies of a problem's other runs untouched this long


def scratch_root() -> Path:
    """This machine's scratch folder for shipped run data: ``$LSTMOPS_SCRATCH``, else ``<tmp>/lstmops-scratch-<uid>``.

    Not in :mod:`lstmops.paths` on purpose: it is a worker's local cache, not a place
    in the repository, and ``paths`` is a dependency of every DVC stage.
    """
    env = os.environ.get(SCRATCH_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / f"lstmops-scratch-{os.getuid()}"


def _manifest(folder: Path) -> bytes:
    """Canonical JSON of every file under ``folder`` (relative POSIX names) and its sha256."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".partial"))
    return json.dumps({p.relative_to(folder).as_posix(): sha256(p) for p in files}, indent=1,
                      sort_keys=True).encode()


def is_shipped(data: Any) -> bool:
    """Whether ``data`` (an :class:`~lstmops.update.candidates.UpdateData`) points at the object store."""
    return str(data.folder).startswith(REMOTE)


def publish(data: Any, store: Any) -> Any:
    """Upload the run's data folder to ``store`` (once: an identical manifest there is reused).

    Returns:
        ``data`` as workers see it: its ``folder`` is the ``s3://`` URL of the upload.
    """
    folder = Path(data.folder)
    manifest = _manifest(folder)
    parts = ("runs", data.problem, data.run_id, "data")
    if store.get_bytes(*parts, MANIFEST) != manifest:
        for name in json.loads(manifest):
            store.put_file(folder / name, *parts, name)
        store.put_bytes(manifest, *parts, MANIFEST)  # last: its presence means the upload is complete
    return dataclasses.replace(data, folder=f"{REMOTE}{store.bucket}/{store.key(*parts)}")


def for_workers(data: Any, runner: str, store: Any) -> Any:
    """The data as the arms' workers get it: published to the model store for Dask when there is one.

    A local process pool shares this machine's disk; so does a Dask cluster without a
    model store (a local one), which keeps the run's paths.
    """
    if runner != "dask" or store is None:
        return data
    return publish(data, store)


def materialise(data: Any) -> Any:
    """``data`` readable on this machine: shipped data is downloaded into the scratch folder (once) and checked.

    Raises:
        DataError: the run's folder is neither shipped nor on this machine's disk, or a
            shipped file is missing or does not match the manifest.
    """
    if not is_shipped(data):
        if not Path(data.folder).is_dir():
            raise DataError(f"{data.problem}: the run's data {data.folder} is not on this worker's disk "
                            f"({socket.gethostname()}); set LSTMOPS_MODEL_STORE so the flow ships it to its workers")
        return data
    from lstmops.registry.objects import ObjectStore

    store = ObjectStore.parse(data.folder)
    manifest = store.get_bytes(MANIFEST)
    if manifest is None:
        raise DataError(f"{data.problem}: {data.folder}/{MANIFEST} is missing (the run's data was not shipped)")
    local = scratch_root() / "runs" / data.problem / data.run_id / hashlib.sha256(manifest).hexdigest()[:16] / "data"
    if not (local / MANIFEST).is_file():
        _download(store, json.loads(manifest), manifest, local, data.folder)
        _prune(local.parents[2], keep=local.parents[1])
    os.utime(local.parents[1])  # in use: not stale
    return dataclasses.replace(data, folder=str(local))


def _prune(problem_dir: Path, keep: Path) -> None:
    """Remove this worker's copies of the problem's other runs that nothing used for :data:`SCRATCH_DAYS`."""
    import time

    cutoff = time.time() - SCRATCH_DAYS * 86400
    for run in problem_dir.iterdir():
        if run != keep and run.is_dir() and run.stat().st_mtime < cutoff:
            shutil.rmtree(run, ignore_errors=True)


def _download(store: Any, files: dict[str, str], manifest: bytes, local: Path, where: str) -> None:
    """Every file of the manifest into a staging folder, checked, then renamed to ``local``."""
    staged = local.parent / f".incoming-{uuid.uuid4().hex[:12]}"
    try:
        for name, digest in files.items():
            (staged / name).parent.mkdir(parents=True, exist_ok=True)
            store.get_file(staged / name, name)
            if sha256(staged / name) != digest:
                raise DataError(f"{where}/{name} does not match the run's manifest (corrupt or changed)")
        (staged / MANIFEST).write_bytes(manifest)  # last, as on the store
        try:
            os.replace(staged, local)
        except OSError:  # another worker process of this machine was faster; its copy was checked too
            if not (local / MANIFEST).is_file():
                raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)


@dataclass(frozen=True)
class Trained:
    """One finished arm-repeat as it travels back to the flow: its result and its files (bytes)."""

    result: Any                       # ArmResult
    files: dict[str, bytes]           # names relative to the run folder: arms/<arm>/...


def train_here(jobs: list[Any]) -> list[Trained]:
    """What a worker runs for a group of one arm's repeats: materialise the data, train, pack the results.

    The weights and outputs are written to a private temporary folder and returned as
    bytes, so nothing is written where the flow process would have to find it.
    """
    from lstmops.update.candidates import ARMS_DIR, run_jobs

    data = materialise(jobs[0].data)
    jobs = [dataclasses.replace(job, data=data) for job in jobs]
    worker = f"{socket.gethostname()}:{os.getpid()}"
    scratch = scratch_root()
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="arms-", dir=scratch) as out:
        packed = []
        for result in run_jobs(jobs, Path(out)):
            names = [] if result.diverged else [f"{ARMS_DIR}/{result.arm}/model.json",
                                                f"{ARMS_DIR}/{result.arm}/r{result.repeat}.weights.h5",
                                                f"{ARMS_DIR}/{result.arm}/r{result.repeat}.outputs.npy"]
            files = {name: (Path(out) / name).read_bytes() for name in names}
            packed.append(Trained(dataclasses.replace(result, worker=worker), files))
    return packed


def keep(run_dir: Path, trained: Trained) -> None:
    """Save a returned arm-repeat under the flow's run folder: its files first, then its result record.

    The record's presence is what :meth:`~lstmops.update.cycle.UpdateRun.results` reads
    as "done", so a crash between the two re-trains the repeat instead of losing files.
    """
    from lstmops.update.candidates import _atomic_write
    from lstmops.update.cycle import keep_result

    for name, content in trained.files.items():
        _atomic_write(Path(run_dir) / name, lambda p, content=content: p.write_bytes(content))
    keep_result(run_dir, trained.result)
