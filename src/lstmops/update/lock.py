"""One update run per problem at a time, held in the registry database, pauses included.

A Prefect deployment concurrency slot is released while a run waits for approval
(RUNNING → PAUSED), so it cannot keep a second run out; a row in ``update_locks`` can.
The row names the run holding it. A second run is refused (or waits, when asked to)
unless the holder is dead: the caller supplies ``is_alive(run_id)`` (the flow asks
Prefect whether that flow run is still running or paused), and a dead holder's lock is
taken over in the same transaction that checks it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, DateTime, MetaData, String, Table, delete, select
from sqlalchemy.engine import Engine

from lstmops.database import utcnow, writing
from lstmops.errors import LstmopsError

metadata = MetaData()
locks_table = Table(
    "update_locks", metadata,
    Column("problem", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
    Column("holder", String(255), nullable=False),
    Column("acquired_at", DateTime, nullable=False),
)


class UpdateBusy(LstmopsError):
    """Another update run of the same problem holds the lock."""


@dataclass(frozen=True)
class Held:
    """Who holds a problem's update lock."""

    problem: str
    run_id: str
    holder: str
    acquired_at: datetime


def holder(engine: Engine, problem: str) -> Held | None:
    """The run holding ``problem``'s update lock, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(locks_table).where(locks_table.c.problem == problem)).first()
    return None if row is None else Held(**row._asdict())


def _try_acquire(engine: Engine, problem: str, run_id: str, who: str,
                 is_alive: Callable[[str], bool]) -> Held | None:
    """Take the lock (or keep it, for the same run); returns the live holder that blocks us, else None."""
    with writing(engine) as conn:
        row = conn.execute(select(locks_table).where(locks_table.c.problem == problem).with_for_update()).first()
        if row is not None and row.run_id != run_id and is_alive(row.run_id):
            return Held(**row._asdict())
        conn.execute(delete(locks_table).where(locks_table.c.problem == problem))
        conn.execute(locks_table.insert().values(problem=problem, run_id=run_id, holder=who, acquired_at=utcnow()))
    return None


def acquire(engine: Engine, problem: str, run_id: str, who: str, is_alive: Callable[[str], bool],
            wait_s: float = 0, poll_s: float = 2.0) -> None:
    """Hold ``problem``'s update lock for ``run_id``; wait up to ``wait_s`` for a live holder, then refuse.

    Raises:
        UpdateBusy: a live run still holds it (named in the message).
    """
    deadline = time.monotonic() + wait_s
    while True:
        blocking = _try_acquire(engine, problem, run_id, who, is_alive)
        if blocking is None:
            return
        if time.monotonic() >= deadline:
            raise UpdateBusy(f"{problem}: update run {blocking.run_id} ({blocking.holder}) has held the update "
                             f"lock since {blocking.acquired_at:%Y-%m-%d %H:%M} UTC; it must finish (or be "
                             "cancelled) before another update of this problem starts")
        time.sleep(poll_s)


def release(engine: Engine, problem: str, run_id: str) -> bool:
    """Give the lock back if ``run_id`` holds it; True when it did."""
    with writing(engine) as conn:
        done = conn.execute(delete(locks_table).where((locks_table.c.problem == problem)
                                                      & (locks_table.c.run_id == run_id)))
    return bool(done.rowcount)
