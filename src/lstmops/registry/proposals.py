"""Proposals: the gate proposes a candidate version, a person approves (it is promoted) or rejects it.

A proposal's life (``DESIGN.md`` principle 13)::

    pending ──approve──▶ promoted        (approved and promoted in one transaction)
       ├──reject───▶ rejected
       ├──(expires_at passed)──▶ expired
       └──(a newer proposal, or the champion changed meanwhile)──▶ superseded

Only :func:`approve` moves ``champion``, and only as the proposal said: from the
champion it was proposed against (``expected_champion``) to the candidate. Approving
and promoting are one transaction: the proposal is first claimed with a conditional
update (``... WHERE status = 'pending'``), then promoted, then marked ``promoted``;
so two approvers racing (two processes, two databases sessions) give one promotion
and one clear error, and ``approved`` is never seen committed on its own. It stays a
valid status for a deployment that separates approval from promotion.

Every decision records who, when and why (``decided_by``, ``decided_at``, ``reason``);
an approval's ledger row names the proposal, whether it was a weights-only update, and
the evidence (report path and a one-line statistics summary). Refusals that change the
record (an expired proposal, a champion changed meanwhile) commit that change first and
then raise, so the database always says why a proposal can no longer be approved.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from lstmops.database import lock_row, utcnow, writing
from lstmops.errors import NoModelError, PromotionConflict, ProposalError, RegistryError
from lstmops.registry.versions import (PROPOSAL_STATUSES, Promotion, default_actor, ledger_table, problems_table,
                                       promotion_of, proposals_table, versions_table)

if TYPE_CHECKING:
    from lstmops.registry.versions import Registry

EXPIRED_BY = "lstmops (approval period over)"
P = proposals_table


@dataclass(frozen=True)
class Proposal:
    """A candidate version proposed for promotion, and its decision once taken."""

    id: int
    problem: str
    candidate_version: int
    expected_champion: int | None
    status: str
    weights_only: bool
    arm: str | None
    evidence: dict[str, Any]
    report_path: str | None
    flow_run_id: str | None
    proposed_by: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None

    @property
    def summary(self) -> str:
        """One line of evidence, e.g. ``accuracy 0.998 vs 0.101, P(better) 1.00``."""
        return evidence_summary(self.evidence)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (times as ISO UTC), with the evidence summary."""
        out = asdict(self) | {"summary": self.summary}
        for key in ("created_at", "expires_at", "decided_at"):
            out[key] = None if out[key] is None else out[key].isoformat() + "Z"
        return out


def evidence_summary(evidence: dict[str, Any]) -> str:
    """A one-line summary of a proposal's statistics.

    Understands ``{"summary": "..."}``; flat ``metric``, ``candidate``, ``deployed`` (or
    ``champion``) and ``p_better``; and the gate's ``Decision.to_dict()`` (``winner``,
    ``means``, ``candidates[*].tests.deployed.p_improve``), with an optional ``metric``.
    """
    if evidence.get("summary"):
        return str(evidence["summary"])
    metric = evidence.get("metric", "score")
    cand, p = evidence.get("candidate"), evidence.get("p_better")
    old = evidence.get("deployed", evidence.get("champion"))
    winner, means = evidence.get("winner"), evidence.get("means") or {}
    if winner is not None and winner in means:
        cand, old = means[winner], means.get("deployed", old)
        for result in evidence.get("candidates") or []:
            if result.get("name") == winner:
                p = ((result.get("tests") or {}).get("deployed") or {}).get("p_improve", p)
    parts = []
    if isinstance(cand, (int, float)):
        parts.append(f"{metric} {cand:.3g}" + (f" vs {old:.3g}" if isinstance(old, (int, float)) else ""))
    if isinstance(p, (int, float)):
        parts.append(f"P(better) {p:.2f}")
    return ", ".join(parts) or "-"


def _naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo is not None else when


def _row(conn: Connection, proposal_id: int) -> Any:
    return conn.execute(select(P).where(P.c.id == proposal_id)).first()


def _proposal(row: Any) -> Proposal:
    fields = row._asdict()
    return Proposal(**fields | {"evidence": dict(fields["evidence"] or {}), "weights_only": bool(row.weights_only)})


def _checked(row: Any, problem: str, proposal_id: int) -> Any:
    if row is None:
        raise ProposalError(f"{problem}: no proposal #{proposal_id} (see `lstmops proposals list {problem}`)")
    if row.problem != problem:
        raise ProposalError(f"proposal #{proposal_id} is for {row.problem}, not {problem}")
    return row


def _decided(row: Any) -> str:
    when = f" at {row.decided_at:%Y-%m-%d %H:%M} UTC" if row.decided_at else ""
    who = f" by {row.decided_by}" if row.decided_by else ""
    why = f": {row.reason}" if row.reason else ""
    return f"{row.problem}: proposal #{row.id} is already {row.status}{who}{when}{why}; nothing was changed"


def _reason(reason: str | None, what: str) -> str:
    if reason is None or not str(reason).strip():
        raise ProposalError(f"{what} needs a reason (--reason) for the record")
    return " ".join(str(reason).split())


def _close(conn: Connection, proposal_id: int, status: str, actor: str, reason: str, now: datetime,
           from_status: str = "pending") -> bool:
    """Move one proposal on from ``from_status`` (a conditional update); False if someone else did first."""
    done = conn.execute(update(P).where((P.c.id == proposal_id) & (P.c.status == from_status))
                        .values(status=status, decided_by=actor, decided_at=now, reason=reason))
    return done.rowcount == 1


def propose(registry: Registry, problem: str, version: int, evidence: dict[str, Any], report_path: str | None,
            weights_only: bool, arm: str | None, expires_at: datetime, flow_run_id: str | None = None,
            actor: str | None = None, expect_champion: Any = ...) -> Proposal:
    """Propose ``version`` to replace the current champion; older pending proposals become superseded.

    Idempotent for a re-run flow: while a pending proposal of the same version against
    the same champion exists, it is returned (its ``flow_run_id`` updated when given).

    Args:
        evidence: the gate's statistics (JSON-able), summarised by :func:`evidence_summary`.
        expires_at: when the proposal expires undecided (``update.approval_days`` after now).
        expect_champion: the champion the gate compared against; when given and no longer
            the champion, :class:`PromotionConflict` is raised and nothing is recorded.

    Raises:
        NoModelError: no such version. RegistryError: the version is the champion.
    """
    now, actor = utcnow(), actor or default_actor()
    with writing(registry.engine) as conn:
        lock_row(conn, problems_table, "problem", problem, {"revision": 0})
        known = select(versions_table.c.version).where((versions_table.c.problem == problem)
                                                       & (versions_table.c.version == version))
        if conn.execute(known).first() is None:
            raise NoModelError(f"{problem} has no version {version} to propose")
        champion = registry._aliases(conn, problem).get("champion")
        if expect_champion is not ... and expect_champion != champion:
            raise PromotionConflict(f"{problem}: the champion is {'none' if champion is None else f'v{champion}'}, "
                                    f"not v{expect_champion} as the gate assumed; nothing was proposed")
        if champion == version:
            raise RegistryError(f"{problem} v{version} is already the champion; nothing to propose")
        same = conn.execute(select(P).where((P.c.problem == problem) & (P.c.status == "pending")
                                            & (P.c.candidate_version == version)
                                            & (P.c.expected_champion.is_(None) if champion is None
                                               else P.c.expected_champion == champion))).first()
        if same is not None:
            if flow_run_id is not None:
                conn.execute(update(P).where(P.c.id == same.id).values(flow_run_id=flow_run_id))
            new_id = same.id
        else:
            new_id = conn.execute(P.insert().values(
                problem=problem, candidate_version=version, expected_champion=champion, status="pending",
                weights_only=bool(weights_only), arm=arm, evidence=dict(evidence), report_path=report_path,
                flow_run_id=flow_run_id, proposed_by=actor, created_at=now,
                expires_at=_naive_utc(expires_at))).inserted_primary_key[0]
            older = conn.execute(select(P.c.id).where((P.c.problem == problem) & (P.c.status == "pending")
                                                      & (P.c.id != new_id))).scalars().all()
            for old in older:
                _close(conn, old, "superseded", actor, f"superseded by proposal #{new_id} (v{version})", now)
        return _proposal(_row(conn, new_id))


def proposals(registry: Registry, problem: str | None = None, status: str | None = None) -> list[Proposal]:
    """Proposals, newest first; ``status`` one of :data:`PROPOSAL_STATUSES` (None or ``all``: every one)."""
    query = select(P).order_by(P.c.id.desc())
    if problem is not None:
        query = query.where(P.c.problem == problem)
    if status not in (None, "all"):
        if status not in PROPOSAL_STATUSES:
            raise ProposalError(f"status must be one of {', '.join(PROPOSAL_STATUSES)} or all, not {status!r}")
        query = query.where(P.c.status == status)
    with registry.engine.connect() as conn:
        return [_proposal(row) for row in conn.execute(query)]


def proposal(registry: Registry, problem: str, proposal_id: int) -> Proposal:
    """One proposal of ``problem``; a one-line :class:`ProposalError` when there is none."""
    with registry.engine.connect() as conn:
        return _proposal(_checked(_row(conn, proposal_id), problem, proposal_id))


def _claim(conn: Connection, row: Any, status: str, actor: str, reason: str, now: datetime) -> str | None:
    """Take a pending, unexpired proposal to ``status``; else the refusal (after recording an expiry)."""
    if row.status != "pending":
        return _decided(row)
    if row.expires_at <= now:
        _close(conn, row.id, "expired", EXPIRED_BY, _expiry_reason(row), now)
        return (f"{row.problem}: proposal #{row.id} expired at {row.expires_at:%Y-%m-%d %H:%M} UTC undecided and "
                "can no longer be decided (it is now marked expired; the next update run may propose again)")
    if not _close(conn, row.id, status, actor, reason, now):  # another decider won the race
        return _decided(_row(conn, row.id))
    return None


def _expiry_reason(row: Any) -> str:
    return f"not decided by {row.expires_at:%Y-%m-%d %H:%M} UTC"


def approve(registry: Registry, problem: str, proposal_id: int, actor: str | None, reason: str) -> Promotion:
    """Approve a pending proposal and promote its candidate, in one transaction.

    Raises:
        ProposalError: unknown, already decided, or expired (then marked expired).
        PromotionConflict: the champion changed since the proposal (then marked superseded).
    """
    reason, actor, now = _reason(reason, "an approval"), actor or default_actor(), utcnow()
    refusal: RegistryError | None = None
    with writing(registry.engine) as conn:
        lock_row(conn, problems_table, "problem", problem, {"revision": 0})
        row = _checked(_row(conn, proposal_id), problem, proposal_id)
        if (text := _claim(conn, row, "approved", actor, reason, now)) is not None:
            refusal = ProposalError(text)
        elif (champion := registry._aliases(conn, problem).get("champion")) != row.expected_champion:
            was = "none" if row.expected_champion is None else f"v{row.expected_champion}"
            now_is = "none" if champion is None else f"v{champion}"
            _close(conn, row.id, "superseded", actor, f"the champion changed from {was} to {now_is} before approval",
                   now, from_status="approved")
            refusal = PromotionConflict(f"{problem}: the champion is {now_is}, not {was} as when proposal #{row.id} "
                                        "was made; the proposal is now superseded and nothing else was changed")
        else:
            evidence = f"proposal #{row.id}: {evidence_summary(dict(row.evidence or {}))}" + (
                f"; report {row.report_path}" if row.report_path else "")
            ledger_id = registry._apply_change(conn, problem, "promote", promotion_of(problem, row.candidate_version),
                                               actor, reason, evidence, row.expected_champion,
                                               proposal_id=row.id, weights_only=bool(row.weights_only))
            conn.execute(update(P).where((P.c.id == row.id) & (P.c.status == "approved")).values(status="promoted"))
    if refusal is not None:  # raised after the commit: an expiry or supersession is recorded
        raise refusal
    return registry.ledger_entry(ledger_id)


def reject(registry: Registry, problem: str, proposal_id: int, actor: str | None, reason: str) -> Proposal:
    """Reject a pending proposal; the champion stays. Errors as :func:`approve`."""
    reason, actor, now = _reason(reason, "a rejection"), actor or default_actor(), utcnow()
    with writing(registry.engine) as conn:
        row = _checked(_row(conn, proposal_id), problem, proposal_id)
        refusal = _claim(conn, row, "rejected", actor, reason, now)
    if refusal is not None:
        raise ProposalError(refusal)
    return proposal(registry, problem, proposal_id)


def expire_due(registry: Registry, now: datetime | None = None, problems: list[str] | None = None) -> list[Proposal]:
    """Mark every pending proposal (of ``problems``; None: any) whose ``expires_at`` has passed as expired."""
    now = utcnow() if now is None else _naive_utc(now)
    query = select(P).where((P.c.status == "pending") & (P.c.expires_at <= now))
    if problems is not None:
        query = query.where(P.c.problem.in_(list(problems)))
    with writing(registry.engine) as conn:
        due = conn.execute(query).all()
        ids = [row.id for row in due if _close(conn, row.id, "expired", EXPIRED_BY, _expiry_reason(row), now)]
    with registry.engine.connect() as conn:
        return [_proposal(_row(conn, i)) for i in ids]


def attach_flow_run(registry: Registry, proposal_id: int, flow_run_id: str) -> Proposal:
    """Record the paused Prefect run that waits for this (pending) proposal's decision."""
    with writing(registry.engine) as conn:
        row = conn.execute(select(P).where(P.c.id == proposal_id)).first()
        if row is None:
            raise ProposalError(f"no proposal #{proposal_id}")
        if row.status != "pending":
            raise ProposalError(_decided(row))
        conn.execute(update(P).where(P.c.id == proposal_id).values(flow_run_id=str(flow_run_id)))
    with registry.engine.connect() as conn:
        return _proposal(_row(conn, proposal_id))


def promotion_for(registry: Registry, proposal_id: int) -> Promotion | None:
    """The ledger row an approval of this proposal wrote, if any."""
    with registry.engine.connect() as conn:
        row = conn.execute(select(ledger_table).where(ledger_table.c.proposal_id == proposal_id)).first()
    return None if row is None else Promotion(**row._asdict())
