"""``lstmops rehearse``: make the world, spread the problems over worker processes, report.

The problems are independent (each has its own champion, batches, proposals and update
lock), so ``workers`` processes each drive every day for some of them
(:mod:`lstmops.rehearsal.driver`), sharing the rehearsal's database and repository and
advancing together, at most a week apart (each owns its problems); then the stakeholder report of
the rehearsed period and the decisions table are written.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from lstmops.rehearsal.world import Plan, check_plan, create, env_for, load_plan, write_table

STOP_WAIT_S = 15   # how long an interrupted rehearsal waits for a worker to stop before killing it
# Rough relative cost of a problem's rehearsal day (monitoring + its share of weekly updates),
# used only to balance the workers.
COST = {"moving_square": 3, "addition": 3, "damped_sine": 3, "cumulative_sum": 2, "rectangles": 2, "echo": 1}


def groups(problems: list[str], workers: int) -> list[list[str]]:
    """``problems`` spread over up to ``workers`` groups of about equal cost (largest first)."""
    n = max(1, min(workers, len(problems)))
    out: list[list[str]] = [[] for _ in range(n)]
    load = [0] * n
    for problem in sorted(problems, key=lambda p: -COST.get(p, 2)):
        i = load.index(min(load))
        out[i].append(problem)
        load[i] += COST.get(problem, 2)
    return [g for g in out if g]


def rehearse(plan: Plan, source: Path, replace: bool = False, echo=print) -> dict:
    """Run the whole rehearsal; returns where its report and decisions are, and how long it took."""
    check_plan(plan, source)
    started = time.perf_counter()
    folder = create(plan, source, replace=replace)
    echo(f"rehearsal {plan.name}: {plan.first} to {plan.last}, {', '.join(plan.problems)}; world in {folder}")
    env = {**os.environ, **env_for(folder), "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"),
           "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING")}
    env.pop("LSTMOPS_CLOCK", None)
    (folder / "logs").mkdir(exist_ok=True)
    server = None
    if not os.environ.get("PREFECT_API_URL"):  # the rehearsal's own Prefect server (state in its .prefect/)
        server, env["PREFECT_API_URL"] = start_prefect(folder)
        echo(f"Prefect server for the rehearsal: {env['PREFECT_API_URL'].removesuffix('/api')} (tag rehearsal)")
    try:
        procs = _workers(plan, folder, source, env, echo)
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
    failed = [(g, p.returncode) for p, _, g in procs if p.returncode != 0]
    if failed:
        names = ", ".join(f"{'/'.join(g)} (exit {rc})" for g, rc in failed)
        raise RuntimeError(f"rehearsal worker(s) failed: {names}; see {folder / 'logs'}")
    index = _report(folder)
    table = write_table(folder)
    seconds = time.perf_counter() - started
    return {"root": str(folder), "report": str(index), "decisions": str(table), "seconds": round(seconds, 1),
            "plan": load_plan(folder)}


def start_prefect(folder: Path, timeout_s: float = 120) -> tuple[subprocess.Popen, str]:
    """A Prefect server on a free port of 127.0.0.1, its state in the rehearsal's ``.prefect/``; (server, API URL)."""
    import socket

    from lstmops.update.orchestration import start_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_server(port, folder / ".prefect", folder / "logs" / "prefect-server.log", timeout_s)
    return server, f"http://127.0.0.1:{port}/api"


def _workers(plan: Plan, folder: Path, source: Path, env: dict, echo) -> list:
    """Start one driver process per group of problems; echo their progress; wait for all."""
    from lstmops.modeling.replicas import share_of_cores

    procs = []
    split = groups(plan.problems, plan.workers)
    env = {**env, **share_of_cores(len(split))}  # each worker's replicas use its share of the cores
    for k, group in enumerate(split):
        log = (folder / "logs" / f"worker-{k}.log").open("w", encoding="utf-8")
        cmd = [sys.executable, "-m", "lstmops.rehearsal.driver", str(folder), str(source), *group,
               "--index", str(k), "--workers", str(len(split))]
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=source), log, group))
    seen = {k: 0 for k in range(len(procs))}
    try:
        while any(p.poll() is None for p, _, _ in procs):
            time.sleep(2)
            seen = _progress(folder, seen, echo)
            if any(p.returncode not in (None, 0) for p, _, _ in procs):  # the others would wait for it forever
                _stop(procs)
    except BaseException:  # Ctrl-C or a kill of the parent: no worker is left running on its own
        _stop(procs)
        raise
    _progress(folder, seen, echo)
    for _, log, _ in procs:
        log.close()
    return procs


def _stop(procs: list) -> None:
    """Terminate every worker still running; kill one that is still alive after :data:`STOP_WAIT_S`
    (inside a flow run Prefect turns SIGTERM into a crashed run)."""
    for proc, _, _ in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc, _, _ in procs:
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _progress(folder: Path, seen: dict[int, int], echo) -> dict[int, int]:
    """Echo the workers' new per-day lines (``YYYY-MM-DD problems: n event(s), s``)."""
    for k in seen:
        path = folder / "logs" / f"worker-{k}.log"
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for line in lines[seen[k]:]:
            if line[:4].isdigit() and " event(s), " in line:
                echo("  " + line)
        seen[k] = len(lines)
    return seen


def _report(folder: Path) -> Path:
    """The stakeholder report of the rehearsal's world (run in a subprocess pointed at it)."""
    code = ("from lstmops import paths; from lstmops.config import load_settings; "
            "from lstmops.monitoring.report import build_report; from lstmops.registry import Registry; "
            "from lstmops.store import Store; r = Registry(); "
            "print(build_report(load_settings(paths.params_file()), registry=r, store=Store(r.url)))")
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env_for(folder)}, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the rehearsal's report failed: {done.stderr.strip()[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def summary_lines(plan: Plan) -> list[str]:
    """The decisions table in plain text, one line per event."""
    width = max((len(r["event"]) for r in plan.decisions), default=5)
    out = [f"{'day':10}  {'problem':14}  {'event':{width}}  deployed  what happened"]
    for r in plan.decisions:
        champion = "-" if r.get("champion") is None else f"v{r['champion']}"
        detail = r.get("detail", "")
        out.append(f"{r['day']:10}  {r['problem']:14}  {r['event']:{width}}  {champion:8}  "
                   f"{detail[:150] + ('…' if len(detail) > 150 else '')}")
    return out
