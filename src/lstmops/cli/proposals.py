"""``lstmops proposals list``, ``lstmops approve`` and ``lstmops reject``: a person decides on the gate's proposals.

Approving promotes the proposed version in one transaction with its ledger row
(:mod:`lstmops.registry.proposals`); then, when an update flow is paused waiting for
this decision, it is resumed (:mod:`lstmops.update.orchestration`). A Prefect API that
cannot be reached only prints a note: the decision stands, and the flow reads it when
it resumes or re-runs.
"""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from lstmops.cli import JsonOpt, ProblemArg, _errors, _print_json, _problem, _registry, _table, app
from lstmops.errors import InputError

proposals_app = typer.Typer(help="Promotion proposals of the update gate, waiting for a person's decision.",
                            no_args_is_help=True)
app.add_typer(proposals_app, name="proposals")

STATUSES = ("pending", "approved", "promoted", "rejected", "expired", "superseded", "all")
IdArg = Annotated[int, typer.Argument(help="The proposal's number (lstmops proposals list).", show_default=False)]
ReasonOpt = Annotated[Optional[str], typer.Option(help="Why, for the record (required).", show_default=False)]
ActorOpt = Annotated[Optional[str], typer.Option(help="Who decides (default: user@host).")]


def _row(p: Any) -> dict[str, Any]:
    return {"id": p.id, "problem": p.problem, "candidate": f"v{p.candidate_version}",
            "champion": "-" if p.expected_champion is None else f"v{p.expected_champion}", "arm": p.arm,
            "weights-only": "yes" if p.weights_only else "no", "created": f"{p.created_at:%Y-%m-%d %H:%M}",
            "expires": f"{p.expires_at:%Y-%m-%d %H:%M}", "status": p.status, "evidence": p.summary}


@proposals_app.command("list")
def proposals_list(
    ctx: typer.Context,
    problem: Annotated[Optional[str], typer.Argument(help="One problem (default: all).")] = None,
    status: Annotated[str, typer.Option(help=f"{'|'.join(STATUSES)}.")] = "all",
    json_out: JsonOpt = False,
) -> None:
    """Proposals, newest first, with their evidence in one line (times in UTC).

    Overdue pending proposals are marked expired first: no one can decide them any more.
    """
    with _errors("proposals list"):
        if status not in STATUSES:
            raise InputError(f"--status must be one of {', '.join(STATUSES)}, not {status!r}")
        registry = _registry(ctx)
        registry.expire_due()
        found = registry.proposals(_problem(problem) if problem else None, status)
        if json_out:
            _print_json([p.to_dict() for p in found])
        elif found:
            _table([_row(p) for p in found], list(_row(found[0])))
        else:
            typer.echo("no proposals" + (f" of {problem}" if problem else "") + (f" {status}" if status != "all"
                                                                                    else ""))


def _resume(proposal: Any, approve: bool, actor: str, reason: str) -> str | None:
    """Resume the paused flow waiting for this proposal, if any; the note to show."""
    if not proposal.flow_run_id:
        return None
    from lstmops.update.orchestration import resume_waiting_run

    return resume_waiting_run(proposal.flow_run_id, {"approve": approve, "reason": reason, "actor": actor,
                                                     "decided_in": "cli"})


@app.command()
def approve(ctx: typer.Context, problem: ProblemArg, proposal_id: IdArg, reason: ReasonOpt = None,
            actor: ActorOpt = None, json_out: JsonOpt = False) -> None:
    """Approve a pending proposal: its candidate becomes the champion (ledger row with your reason)."""
    with _errors("approve"):
        registry = _registry(ctx)
        _problem(problem)
        if reason is None or not reason.strip():
            raise InputError("approve needs --reason \"...\" (why, for the promotion ledger)")
        entry = registry.approve(problem, proposal_id, actor, reason)
        proposal = registry.proposal(problem, proposal_id)
        note = _resume(proposal, True, entry.actor, entry.reason)
        if json_out:
            _print_json({"proposal": proposal.to_dict(), "promotion": entry.to_dict(), "flow": note})
            return
        typer.echo(f"{problem}: proposal #{proposal_id} approved by {entry.actor}: v{entry.champion} is the champion, "
                   f"previous {'-' if entry.previous is None else f'v{entry.previous}'} (ledger #{entry.id})")
        if note:
            typer.echo(f"lstmops approve: note: {note}", err=True)


@app.command()
def reject(ctx: typer.Context, problem: ProblemArg, proposal_id: IdArg, reason: ReasonOpt = None,
           actor: ActorOpt = None, json_out: JsonOpt = False) -> None:
    """Reject a pending proposal: the champion stays."""
    with _errors("reject"):
        registry = _registry(ctx)
        _problem(problem)
        if reason is None or not reason.strip():
            raise InputError("reject needs --reason \"...\" (why, for the record)")
        proposal = registry.reject(problem, proposal_id, actor, reason)
        note = _resume(proposal, False, proposal.decided_by, proposal.reason)
        if json_out:
            _print_json({"proposal": proposal.to_dict(), "flow": note})
            return
        typer.echo(f"{problem}: proposal #{proposal_id} (v{proposal.candidate_version}) rejected by "
                   f"{proposal.decided_by}; the champion stays")
        if note:
            typer.echo(f"lstmops reject: note: {note}", err=True)
