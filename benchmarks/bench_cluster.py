"""Benchmark: the update's training fan-out on 2 Dask workers against the local pool of 2 processes.

The same 20 trainings (echo: the five arms × 4 repeats, one training per task,
``update.replicas: 0``, at the ``update`` sizes of params.yaml: 5,000 old and 2,000 new
rows, 1,000 evaluation rows) go through the real fan-out of ``flows/update.py``
(``train_arms`` on the task runner ``task_runner`` picks) in one process, alternating:

- ``process``: ``update.runner: process``, a ``ProcessPoolTaskRunner`` of 2 processes that
  read the run's data from this machine's disk (what ``make update`` does);
- ``dask``: ``update.runner: dask`` with ``update.dask_address`` of a running
  ``distributed.LocalCluster`` (2 worker processes, 1 thread each) and a model store on a
  local moto S3 server: the run's data is published to the store and each worker
  downloads it into its own scratch folder, as workers on other machines would;
- ``dask-cold`` (``--cold``): ``update.runner: dask`` without an address, so the flow starts
  and stops a local cluster of 2 workers itself, start-up included.

Every round uses a fresh run id (a copy of the prepared data under a new run folder), so
every round of the Dask modes uploads and downloads the data again; seeds follow the run
id, so the modes of a round train exactly the same jobs. A first, untimed round of the
process pool warms the JAX compile cache (on disk, shared by every mode) and Prefect.

Prefect: by default the flows talk to Prefect's temporary server, as ``make update`` does.
Then every process of the local pool, which does not inherit the temporary server's
address, starts a temporary server of its own for its task runs, at every fan-out.
``--prefect-server`` starts ``prefect server start`` on a free port and sets
``PREFECT_API_URL`` for everything, as a deployment (``make serve``, a cluster) runs. Rounds wait while ``/tmp/lstmops-quiet`` exists (someone is timing).
Target of the issue: time(dask) / time(process) <= 1.25.

Usage: ``KERAS_BACKEND=jax .venv/bin/python benchmarks/bench_cluster.py [--rounds 3] [--repeats 4]
[--problem echo] [--cold] [--prefect-server] [--out benchmarks/results/cluster.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path


os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
QUIET = Path("/tmp/lstmops-quiet")
BUCKET = "lstmops-bench"


def wait_for_quiet() -> None:
    """Another engineer's timing run asked for a quiet machine: wait until it is done."""
    while QUIET.exists():
        print("waiting: /tmp/lstmops-quiet exists", flush=True)
        time.sleep(30)


def start_s3() -> object:
    """A moto S3 server on a free 127.0.0.1 port (a thread of this process) with the bench bucket."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update({"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    return server


def prepare(settings, problem: str, work: Path):
    """A throw-away champion (1 epoch), registered with the S3 model store, and the run's prepared data."""
    from lstmops.registry.versions import Registry

    from update_arms import update_data

    registry = Registry(url=f"sqlite:///{work / 'db.sqlite'}", folder=work / "registry",
                        store=f"s3://{BUCKET}/registry")
    return update_data(settings, problem, work, registry, "base")


def fan_out(settings, data, store, repeats: int, run_id: str, work: Path) -> tuple[float, int]:
    """One timed fan-out of ``repeats`` per arm through the flow's own code; returns (seconds, trainings)."""
    from flows.update import task_runner, train_arms
    from lstmops import paths
    from lstmops.update.candidates import group_jobs, plan_jobs
    from lstmops.update.shipping import for_workers

    run_dir = paths.update_run_dir(data.problem, run_id, work)
    shutil.copytree(Path(data.folder), run_dir / "data")
    mine = replace(data, run_id=run_id, folder=str(run_dir / "data"))
    jobs = plan_jobs(settings, data.problem, mine, repeats)
    started = time.perf_counter()
    shipped = for_workers(mine, settings.update.runner, store)  # a no-op for the process pool
    groups = group_jobs([replace(job, data=shipped) for job in jobs], settings.update.replicas)
    saved = train_arms.with_options(task_runner=task_runner(settings))(groups, str(run_dir))
    return time.perf_counter() - started, saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problem", default="echo")
    parser.add_argument("--repeats", type=int, default=4, help="repeats per arm (5 arms: 4 → 20 trainings)")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the modes")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cold", action="store_true", help="also time a Dask cluster started by each flow run")
    parser.add_argument("--prefect-server", action="store_true",
                        help="run against a real Prefect server (PREFECT_API_URL) instead of temporary ones")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cluster.json"))
    args = parser.parse_args()

    load = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="lstmops-bench-cluster-"))
    os.environ["PREFECT_HOME"] = str(work / "prefect")  # Prefect's temporary server keeps its state here
    os.environ["LSTMOPS_SCRATCH"] = str(work / "worker-scratch")  # the Dask workers' own folder
    server = start_s3()
    prefect = None
    if args.prefect_server:
        import socket

        from lstmops.update.orchestration import start_server

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        prefect = start_server(port, work / "prefect-server", work / "prefect-server.log", timeout_s=120)
        os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    from distributed import LocalCluster

    from lstmops import paths
    from lstmops.config import load_settings, update_for
    from lstmops.registry.objects import ObjectStore

    settings = update_for(load_settings(paths.params_file(ROOT)), args.problem)
    base = settings.update.model_copy(update={"replicas": 0, "workers": args.workers})
    wait_for_quiet()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1")
    modes = {"process": settings.model_copy(update={"update": base.model_copy(update={"runner": "process"})}),
             "dask": settings.model_copy(update={"update": base.model_copy(
                 update={"runner": "dask", "dask_address": cluster.scheduler_address})})}
    if args.cold:
        modes["dask-cold"] = settings.model_copy(update={"update": base.model_copy(update={"runner": "dask"})})
    data = prepare(settings, args.problem, work)
    trainings = 5 * args.repeats
    print(f"{args.problem}: {trainings} trainings per fan-out, {args.workers} workers; warming up", flush=True)
    warm = fan_out(modes["process"], data, None, args.repeats, "warm-up", work)
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(args.rounds):
        order = list(modes) if i % 2 == 0 else list(reversed(modes))
        for mode in order:
            wait_for_quiet()
            # the same run id (hence the same seeds) in every mode of a round, but each Dask mode ships the
            # data anew: its own key prefix, and a started-per-run cluster its own scratch folder
            os.environ["LSTMOPS_SCRATCH"] = str(work / f"scratch-{mode}-{i}")
            store = ObjectStore(BUCKET, f"bench/{mode}")
            seconds, saved = fan_out(modes[mode], data, store, args.repeats, f"round{i}", work / mode)
            assert saved == trainings, (mode, saved)
            times[mode].append(round(seconds, 2))
            print(f"round {i} {mode}: {seconds:.1f} s", flush=True)
    cluster.close()
    server.stop()
    if prefect is not None:
        prefect.terminate()
        prefect.wait(timeout=60)
    report = {
        "problem": args.problem, "trainings": trainings, "workers": args.workers, "rounds": args.rounds,
        "sizes": {"old": settings.update.old_size, "new": settings.update.batch_size,
                  "eval": settings.update.eval_size, "extra_epochs": settings.update.extra_epochs,
                  "fresh_epochs": settings.update.fresh_epochs or settings.problems[args.problem].train.epochs},
        "warm_up_process_s": round(warm[0], 2), "seconds": times,
        "median_s": {mode: statistics.median(t) for mode, t in times.items()},
        "ratio_dask_over_process": round(statistics.median(times["dask"]) / statistics.median(times["process"]), 3),
        "ratios_per_round": [round(d / p, 3) for d, p in zip(times["dask"], times["process"])],
        "prefect": "a prefect server (PREFECT_API_URL)" if args.prefect_server else "temporary servers",
        "machine": f"{os.cpu_count()} CPU cores, load average before the run {load:.2f}",
        "target": "ratio <= 1.25",
    }
    if args.cold:
        report["ratio_dask_cold_over_process"] = round(
            statistics.median(times["dask-cold"]) / statistics.median(times["process"]), 3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
