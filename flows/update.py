"""The five-step update process as Prefect flows: one task per business step.

``update`` runs one problem's update on one date: collect → assess the deployed model →
develop candidates (the arms' trainings fanned out on a process pool or a Dask cluster)
→ compare (the gate; an INCONCLUSIVE verdict adds repeats up to ``update.max_repeats``)
→ propose the winner and pause for a person's approval. ``update_all`` runs it for every
problem. The steps themselves are plain functions in ``lstmops.update``; this module only
wires them, holds the per-problem lock and talks to Prefect.

    python flows/update.py echo --as-of 2027-02-01            # one problem, waits for approval
    python flows/update.py --all --as-of 2027-04-01 --no-wait # every problem, leaves proposals pending
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.input import RunInput

DECIDED = ("promoted", "approved", "rejected", "expired", "superseded")


class Approval(RunInput):
    """The form a paused update run shows in the Prefect UI (Resume)."""

    approve: bool = False
    reason: str = ""
    actor: str = ""


def _context(problem: str, as_of: str | None) -> Any:
    from lstmops import paths
    from lstmops.config import load_settings, problem_settings, update_for
    from lstmops.registry import Registry
    from lstmops.store import Store
    from lstmops.update.cycle import UpdateRun, parse_day

    settings = load_settings(paths.params_file())
    problem_settings(settings, problem)
    settings = update_for(settings, problem)  # the problem's own update sizes
    registry = Registry()
    return UpdateRun(settings, problem, parse_day(as_of, settings), paths.repo_root(), registry, Store(registry.url))


@task(name="collect", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)  # DVC, git and the database are I/O that can fail
def collect(run: Any) -> dict:
    """Step 1: draw, validate, version and replay the day's batch."""
    return run.collect()


@task(name="assess deployed model", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def assess(run: Any) -> dict:
    """Step 2: skill per interval and the trend verdict of the deployed model."""
    return run.assess()


@task(name="prepare arms' data", cache_policy=NO_CACHE)
def prepare(run: Any) -> Any:
    """The old, new and evaluation arrays every arm uses (the deployed model's preprocessing)."""
    return run.data()


@task(name="train arm")
def train_arm(jobs: list) -> list:
    """Repeats of one arm, trained together as vmapped replicas (``update.replicas``), in a worker
    process or on a Dask worker. The worker reads the run's data from this machine's disk, or its
    own copy of the data the flow shipped through the model store, and returns weights and outputs
    to the flow process, which saves them: a worker needs no disk in common with the flow."""
    from lstmops.update.shipping import train_here

    trained = train_here(jobs)
    results = [t.result for t in trained]
    finished = [r for r in results if not r.diverged]
    mean = sum(sum(r.values) / len(r.values) for r in finished) / len(finished) if finished else float("nan")
    print(f"{jobs[0].problem} arm {jobs[0].arm}: {len(results)} repeats ({len(results) - len(finished)} diverged), "
          f"mean per-example value {mean:.4g}, {sum(r.seconds for r in results):.0f} s on {results[0].worker}")
    return trained


@task(name="compare (gate)", cache_policy=NO_CACHE)
def compare(run: Any, data: Any, repeats: int) -> Any:
    """Step 4: the gate's decision on all repeats so far."""
    return run.decide(data, repeats)


@task(name="propose", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def propose(run: Any, decision: Any, data: Any, flow_run_id: str | None) -> dict | None:
    """Step 5a: register the winner and create the proposal a person decides on."""
    return run.propose(decision, data, flow_run_id)


@task(name="stakeholder report", cache_policy=NO_CACHE)
def publish_report(run: Any) -> str | None:
    """Rebuild the stakeholder report (monitoring/reports/index.html); a failure is logged, the run goes on."""
    from lstmops.monitoring.report import build_report

    try:
        index = build_report(run.settings, registry=run.registry, store=run.store, root=run.root,
                             problems=[run.problem])
    except Exception:  # noqa: BLE001 - the report is for people; the update's result stands without it
        get_run_logger().exception("%s: the stakeholder report could not be built", run.problem)
        return None
    print(f"{run.problem}: stakeholder report {index}")
    return str(index)


def task_runner(settings: Any) -> Any:
    """Where the arms train: a local process pool, or a Dask cluster (``update.runner: dask``).

    With one local worker there is nothing to run side by side: the arms train in this
    process (a thread), which spares a worker's start-up and keeps JAX's compiled
    training programs warm from one run to the next (a rehearsal's weekly runs).
    """
    if settings.update.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.update.dask_address:
            return DaskTaskRunner(address=settings.update.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": settings.update.workers, "threads_per_worker": 1,
                                              "processes": True})
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    if settings.update.workers == 1:
        return ThreadPoolTaskRunner(max_workers=1)
    return ProcessPoolTaskRunner(max_workers=settings.update.workers)


@flow(name="lstmops-train-arms", log_prints=True)
def train_arms(groups: list, run_dir: str) -> int:
    """Step 3: every group of arm-repeats side by side on this flow's task runner; each group's results
    are saved here, under ``run_dir``, as soon as it returns, so a run that dies (a killed worker, a lost
    machine) re-trains only the repeats not yet saved. Returns how many were saved."""
    from pathlib import Path

    from prefect.futures import as_completed

    from lstmops.update.shipping import keep

    saved, failure = 0, None
    for future in as_completed(train_arm.map(groups)):
        try:
            trained = future.result()
        except Exception as err:  # noqa: BLE001 - keep the other groups' results, then fail
            failure = failure or err
            continue
        for one in trained:
            keep(Path(run_dir), one)
            saved += 1
    if failure is not None:
        raise failure
    return saved


def develop(run: Any, data: Any, repeats: int) -> None:
    """Train the arm-repeats still missing for ``repeats`` per arm, saving each as it finishes.

    With ``update.runner: dask`` and a model store, the run's data is shipped to the workers
    through the store (:mod:`lstmops.update.shipping`): they need nothing of this machine's disk.
    """
    from dataclasses import replace

    from lstmops.update.candidates import group_jobs
    from lstmops.update.shipping import for_workers

    jobs = run.jobs(data, repeats)
    if jobs:
        shipped = for_workers(data, run.settings.update.runner, run.registry.store)
        jobs = [replace(job, data=shipped) for job in jobs]
        with _cores_shared(run.settings.update.workers):
            train_arms.with_options(task_runner=task_runner(run.settings))(
                group_jobs(jobs, run.settings.update.replicas), str(run.folder))


@contextmanager
def _cores_shared(workers: int):
    """While the arms train, each of ``workers`` local processes splits its replicas over its share
    of the cores (:func:`lstmops.modeling.replicas.share_of_cores`); the processes inherit it."""
    from lstmops.modeling.replicas import share_of_cores

    env = share_of_cores(workers)
    os.environ.update(env)
    try:
        yield
    finally:
        for key in env:
            os.environ.pop(key, None)


def _alive(run_id: str) -> bool:
    """Whether the flow run holding a lock still runs or waits (a crashed holder's lock is taken over)."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
    except Exception:  # noqa: BLE001 - unknown (not a Prefect run id, or no API): assume it lives
        return True
    return state is None or state.type in (StateType.RUNNING, StateType.PAUSED, StateType.PENDING,
                                           StateType.SCHEDULED, StateType.CANCELLING)


def _description(problem: str, proposal: dict, evidence: dict) -> str:
    lines = [f"## {problem}: approve candidate v{proposal['candidate_version']}?", "",
             evidence.get("headline", ""), "",
             f"- arm ({proposal.get('arm')}), weights-only update: {proposal.get('weights_only')}",
             f"- evidence: `{proposal.get('report_path')}`",
             f"- or on the command line: `lstmops approve {problem} {proposal['id']} --reason \"...\"`"]
    return "\n".join(lines)


def await_decision(run: Any, proposal: dict, timeout_s: int) -> str:
    """Pause until a person approves or rejects in the UI (or on the command line); apply a UI decision."""
    from prefect.flow_runs import pause_flow_run

    logger = get_run_logger()
    form = Approval.with_initial_data(description=_description(run.problem, proposal, run.record("gate") or {}),
                                      approve=False)
    try:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=5)
    except Exception as err:  # FlowPauseTimeout: nobody decided in time
        expired = run.registry.expire_due()
        logger.info("no decision before the pause ended (%s); expired: %s", type(err).__name__, expired)
        return "expired"
    current = run.registry.proposal(run.problem, proposal["id"])
    if current.status in DECIDED:  # decided on the command line, which also resumed us
        return current.status
    actor = answer.actor.strip() or "prefect-ui"
    if answer.approve:
        run.registry.approve(run.problem, proposal["id"], actor=actor, reason=answer.reason or "approved in the UI")
        return "promoted"
    run.registry.reject(run.problem, proposal["id"], actor=actor, reason=answer.reason or "rejected in the UI")
    return "rejected"


@flow(name="lstmops-update", log_prints=True)
def update(problem: str, as_of: str | None = None, wait_for_approval: bool = True,
           approval_timeout_s: int | None = None, lock_wait_s: float = 0) -> dict:
    """The five-step update of one problem on ``as_of`` (YYYY-MM-DD; default the build date)."""
    from prefect.runtime import flow_run

    from lstmops.registry.versions import default_actor
    from lstmops.update import lock
    from lstmops.update.compare import headline, needs_more_repeats

    run = _context(problem, as_of)
    run_id = str(flow_run.get_id() or f"local-{os.getpid()}")
    engine = run.registry.engine
    lock.acquire(engine, problem, run_id, default_actor(), _alive, wait_s=lock_wait_s)
    try:
        collected = collect(run)
        if collected["quarantined"]:
            print(f"{problem}: batch of {collected['day']} quarantined ({collected['reason']}); champion untouched")
            return {"problem": problem, "verdict": "QUARANTINED", "reason": collected["reason"]}
        assessed = assess(run)
        data = prepare(run)
        repeats, cap = run.settings.update.repeats, run.settings.update.max_repeats
        develop(run, data, repeats)
        decision = compare(run, data, repeats)
        while needs_more_repeats(decision, repeats, cap):
            repeats = min(cap, repeats + max(1, run.settings.update.repeats // 2))
            develop(run, data, repeats)
            decision = compare(run, data, repeats)
        proposal = propose(run, decision, data, run_id)
        line = headline(problem, decision)
        outcome = {"problem": problem, "verdict": decision.verdict.value, "winner": decision.winner,
                   "trend": assessed["verdict"], "line": line, "proposal": proposal}
        outcome["report"] = publish_report(run)  # the approver reads it while the run waits
        if proposal is None:
            print(line)
            return outcome
        print(f"{line} — awaiting approval: lstmops approve {problem} {proposal['id']}")
        if wait_for_approval and proposal["status"] == "pending":
            timeout = approval_timeout_s or int(timedelta(days=run.settings.update.approval_days).total_seconds())
            outcome["decision"] = await_decision(run, proposal, timeout)
            publish_report(run)  # now with the decision in the ledger
        return outcome
    finally:
        lock.release(engine, problem, run_id)


@flow(name="lstmops-update-all", log_prints=True)
def update_all(as_of: str | None = None, wait_for_approval: bool = False, problems: list[str] | None = None) -> list[dict]:
    """Every problem's (or the given problems') update on ``as_of``, one after the other."""
    from lstmops import paths
    from lstmops.config import load_settings

    outcomes = []
    for problem in problems or load_settings(paths.params_file()).problems:
        try:
            outcomes.append(update(problem, as_of, wait_for_approval=wait_for_approval))
        except Exception as err:  # noqa: BLE001 - one problem's failure must not stop the others
            get_run_logger().exception("%s: update failed", problem)  # with its traceback
            print(f"{problem}: update failed: {err}")
            outcomes.append({"problem": problem, "verdict": "FAILED", "reason": str(err)})
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Command line: one problem or ``--all``, on a date; one line per problem."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("problem", nargs="?")
    parser.add_argument("--all", action="store_true", help="every problem in params.yaml")
    parser.add_argument("--only", nargs="+", metavar="PROBLEM", help="these problems, one after the other")
    parser.add_argument("--as-of", help="the run's date, YYYY-MM-DD (default: params.yaml as_of)")
    parser.add_argument("--no-wait", action="store_true", help="leave proposals pending instead of pausing")
    args = parser.parse_args(argv)
    from lstmops.errors import LstmopsError

    if sum(map(bool, (args.problem, args.all, args.only))) != 1:
        parser.error("give one problem, --all or --only P [P ...]")
    try:
        check_args([args.problem] if args.problem else args.only, args.as_of)
        if args.all or args.only:
            outcomes = update_all(args.as_of, wait_for_approval=not args.no_wait, problems=args.only)
        else:
            outcomes = [update(args.problem, args.as_of, wait_for_approval=not args.no_wait)]
    except LstmopsError as err:
        print(f"update: error: {err}", file=sys.stderr)
        return 2
    print("\n".join(summary_line(o) for o in outcomes))
    return 1 if any(o.get("verdict") == "FAILED" for o in outcomes) else 0


def check_args(problems: list[str] | None, as_of: str | None) -> None:
    """Bad names and dates fail here, in one line, before any flow (or Prefect server) starts."""
    from lstmops import paths
    from lstmops.config import load_settings, problem_settings
    from lstmops.update.cycle import parse_day

    settings = load_settings(paths.params_file())
    for problem in problems or []:
        problem_settings(settings, problem)
    parse_day(as_of, settings)


def summary_line(outcome: dict) -> str:
    """One line per problem for people: the verdict, and how to approve a proposal."""
    problem, verdict = outcome["problem"], outcome["verdict"]
    if verdict in ("QUARANTINED", "FAILED"):
        return f"{problem}: {verdict} ({outcome.get('reason')})"
    proposal = outcome.get("proposal")
    if proposal is None or proposal.get("status") != "pending":
        return outcome["line"]
    return f"{outcome['line']} — awaiting approval: lstmops approve {problem} {proposal['id']}"


if __name__ == "__main__":
    sys.exit(main())
