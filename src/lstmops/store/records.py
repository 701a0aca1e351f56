"""Predictions and true observations, joined to score a deployed model per day or week.

Every prediction is stored with its problem, caller-visible id, model version, raw
input, decoded output and time; an observation is the true outcome of one earlier
prediction (the problem's target columns) and when it was observed. Skill per interval
joins the two and applies the problem's own ``score`` to each interval's rows, per
model version, so a champion and the previous model can be watched side by side. After
a promotion the previous model also predicts the served inputs in *shadow*: its outputs
are logged (``shadow_predictions``), never served, and scored against the same
observations with ``role`` ``shadow``.
A generative problem (its module's ``GENERATIVE``, e.g. rectangles) has no true
outcome: its drawings are scored by themselves (the module's ``score_outputs``).

SQLite in WAL mode by default (``$LSTMOPS_DB_URL`` or ``--db`` for another database,
e.g. PostgreSQL). Times are naive UTC. Opening a store upgrades the database's schema
(registry and store tables alike) with the Alembic scripts in :mod:`lstmops.migrations`;
a database made before migrations keeps its rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (JSON, Column, DateTime, ForeignKeyConstraint, Index, Integer, MetaData, String, Table,
                        select)
from sqlalchemy.exc import IntegrityError

from lstmops import paths
from lstmops.database import engine_for, migrate, utcnow, writing
from lstmops.errors import StoreError
from lstmops.problems import is_generative

INTERVALS = ("day", "week", "month")
_CHUNK = 500  # ids per IN (...) query: well inside every database's parameter limit

metadata = MetaData()
predictions_table = Table(
    "predictions", metadata,
    Column("problem", String(64), primary_key=True),
    Column("id", String(128), primary_key=True),
    Column("model_version", Integer, nullable=False),
    Column("input", JSON, nullable=False),
    Column("output", JSON, nullable=False),
    Column("predicted_at", DateTime, nullable=False),
    Index("ix_predictions_problem_time", "problem", "predicted_at"),
)
observations_table = Table(
    "observations", metadata,
    Column("problem", String(64), primary_key=True),
    Column("prediction_id", String(128), primary_key=True),
    Column("target", JSON, nullable=False),
    Column("observed_at", DateTime, nullable=False),
    Column("recorded_at", DateTime, nullable=False),
    ForeignKeyConstraint(["problem", "prediction_id"], ["predictions.problem", "predictions.id"]),
)
shadow_table = Table(  # outputs of the previous model on served inputs: logged, never served (migration 0002)
    "shadow_predictions", metadata,
    Column("problem", String(64), primary_key=True),
    Column("prediction_id", String(128), primary_key=True),
    Column("model_version", Integer, primary_key=True, autoincrement=False),
    Column("output", JSON, nullable=False),
    Column("predicted_at", DateTime, nullable=False),
    ForeignKeyConstraint(["problem", "prediction_id"], ["predictions.problem", "predictions.id"],
                         name="fk_shadow_prediction"),
    Index("ix_shadow_problem_time", "problem", "predicted_at"),
)


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start:start + _CHUNK]


def score_outputs(problem_name: str, outputs: list[Any], targets: list[dict[str, Any]] | None) -> dict[str, float]:
    """The problem's skill metrics for decoded ``outputs`` against true ``targets`` (target-column dicts).

    A generative problem is scored without targets, by its module's ``score_outputs``
    (rectangles: mean geometric error of the drawn shapes and the spread of their
    widths and heights; a collapsed generator has none).
    """
    import pandas as pd

    from lstmops.problems import get_problem

    problem = get_problem(problem_name)
    if getattr(problem, "GENERATIVE", False):
        return problem.score_outputs(list(outputs))
    return problem.score(pd.DataFrame(targets), list(outputs))


def _period_start(times: Any, interval: str) -> Any:
    """The start of the day, week (Monday) or month that each time falls in."""
    if interval == "day":
        return times.dt.floor("D")
    return times.dt.to_period("W-SUN" if interval == "week" else "M").dt.start_time


class Store:
    """Predictions, observations and skill over time.

    Args:
        url: database URL; default ``$LSTMOPS_DB_URL``, else the registry's SQLite file.
    """

    def __init__(self, url: str | None = None):
        self.url = url or paths.database_url()
        self.engine = engine_for(self.url)
        migrate(self.engine)

    def _existing(self, table: Table, key: str, problem: str, ids: Sequence[str]) -> set[str]:
        column = table.c[key]
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(ids)):
                found |= set(conn.execute(select(column).where((table.c.problem == problem)
                                                               & column.in_(chunk))).scalars())
        return found

    def versions_of(self, problem: str, ids: Sequence[str]) -> dict[str, int]:
        """The model version of each of ``ids`` that names a logged prediction."""
        p = predictions_table
        found: dict[str, int] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(ids)):
                rows = conn.execute(select(p.c.id, p.c.model_version).where((p.c.problem == problem)
                                                                            & p.c.id.in_(chunk)))
                found.update({i: int(v) for i, v in rows})
        return found

    def known_ids(self, problem: str, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that already name a logged prediction of ``problem``."""
        return self._existing(predictions_table, "id", problem, ids)

    def observed_ids(self, problem: str, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` whose prediction already has an observation."""
        return self._existing(observations_table, "prediction_id", problem, ids)

    def log_predictions(self, problem: str, model_version: int, ids: Sequence[str], inputs: Sequence[Any],
                        outputs: Sequence[Any], at: datetime | None = None) -> int:
        """Store one batch of predictions in one transaction (all or none); returns the count."""
        if not (len(ids) == len(inputs) == len(outputs)):
            raise StoreError(f"{problem}: {len(ids)} ids, {len(inputs)} inputs and {len(outputs)} outputs differ")
        when = at or utcnow()
        rows = [{"problem": problem, "id": i, "model_version": int(model_version), "input": x, "output": y,
                 "predicted_at": when} for i, x, y in zip(ids, inputs, outputs)]
        try:
            with writing(self.engine) as conn:
                if rows:
                    conn.execute(predictions_table.insert(), rows)
        except IntegrityError:
            clash = sorted(self.known_ids(problem, ids))
            raise StoreError(f"{problem}: prediction id {clash[0] if clash else '?'!r} is already logged; "
                             "nothing was logged") from None
        return len(rows)

    def log_shadow(self, problem: str, model_version: int, ids: Sequence[str], outputs: Sequence[Any],
                   at: datetime | None = None) -> int:
        """Store what a shadow model (not served) predicted for served predictions ``ids``; returns the count."""
        if len(ids) != len(outputs):
            raise StoreError(f"{problem}: {len(ids)} ids and {len(outputs)} shadow outputs differ")
        when = at or utcnow()
        rows = [{"problem": problem, "prediction_id": i, "model_version": int(model_version), "output": y,
                 "predicted_at": when} for i, y in zip(ids, outputs)]
        try:
            with writing(self.engine) as conn:
                if rows:
                    conn.execute(shadow_table.insert(), rows)
        except IntegrityError:
            raise StoreError(f"{problem}: shadow outputs of v{model_version} name an unknown prediction or one "
                             "already shadowed; nothing was logged") from None
        return len(rows)

    def record_observations(self, problem: str, ids: Sequence[str], targets: Sequence[dict[str, Any]],
                            observed_at: Sequence[datetime | None] | None = None, replace: bool = False) -> int:
        """Store the true outcomes of earlier predictions in one transaction (all or none)."""
        if is_generative(problem):
            raise StoreError(f"{problem}: a generated shape has no true outcome to observe; its skill is scored "
                             f"from the drawings themselves (lstmops skill {problem})")
        now = utcnow()
        times = list(observed_at) if observed_at is not None else [None] * len(ids)
        rows = [{"problem": problem, "prediction_id": i, "target": t, "observed_at": when or now, "recorded_at": now}
                for i, t, when in zip(ids, targets, times)]
        try:
            with writing(self.engine) as conn:
                if replace:
                    for chunk in _chunks(list(ids)):
                        conn.execute(observations_table.delete().where(
                            (observations_table.c.problem == problem) & observations_table.c.prediction_id.in_(chunk)))
                if rows:
                    conn.execute(observations_table.insert(), rows)
        except IntegrityError:
            raise StoreError(f"{problem}: an observation names an unknown prediction or one already observed; "
                             "nothing was recorded") from None
        return len(rows)

    def joined(self, problem: str, model_version: int | None = None, since: datetime | None = None,
               until: datetime | None = None, observed_only: bool = True,
               shadow: bool = False) -> list[dict[str, Any]]:
        """Predictions with their observations (inner join unless ``observed_only`` is False), oldest first.

        With ``shadow``, the shadow models' outputs for the same predictions are rows too,
        each with ``role`` ``shadow`` (served rows: ``served``), joined with the same observations.
        """
        p, o, s = predictions_table, observations_table, shadow_table
        join = p.join(o, (o.c.problem == p.c.problem) & (o.c.prediction_id == p.c.id), isouter=not observed_only)
        query = (select(p.c.id, p.c.model_version, p.c.input, p.c.output, p.c.predicted_at, o.c.target,
                        o.c.observed_at).select_from(join).where(p.c.problem == problem)
                 .order_by(p.c.predicted_at, p.c.id))
        queries = [("served", query, p)]
        if shadow:
            shadows = (select(s.c.prediction_id.label("id"), s.c.model_version, p.c.input, s.c.output,
                              s.c.predicted_at, o.c.target, o.c.observed_at)
                       .select_from(s.join(p, (p.c.problem == s.c.problem) & (p.c.id == s.c.prediction_id))
                                    .join(o, (o.c.problem == s.c.problem) & (o.c.prediction_id == s.c.prediction_id),
                                          isouter=not observed_only))
                       .where(s.c.problem == problem).order_by(s.c.predicted_at, s.c.prediction_id))
            queries.append(("shadow", shadows, s))
        out: list[dict[str, Any]] = []
        with self.engine.connect() as conn:
            for role, q, table in queries:
                if model_version is not None:
                    q = q.where(table.c.model_version == model_version)
                if since is not None:
                    q = q.where(table.c.predicted_at >= since)
                if until is not None:
                    q = q.where(table.c.predicted_at < until)
                out += [row._asdict() | ({"role": role} if shadow else {}) for row in conn.execute(q)]
        return sorted(out, key=lambda r: (r["predicted_at"], r["id"])) if shadow else out

    def skill(self, problem: str, interval: str = "day", model_version: int | None = None,
              since: datetime | None = None, until: datetime | None = None, by: str = "predicted",
              shadow: bool = True) -> list[dict]:
        """Skill per interval, model version and role: ``period``, ``model_version``, ``role``, ``n``, metrics.

        ``role`` is ``served`` for the predictions users got, ``shadow`` for a model's
        outputs on the same inputs that were only logged (the previous model after a
        promotion), so champion and previous are scored side by side on the same rows.

        Args:
            interval: ``day``, ``week`` (from Monday) or ``month``.
            by: bucket by when the prediction was made (``predicted``) or observed (``observed``).
            shadow: include shadow predictions.
        """
        import pandas as pd

        if interval not in INTERVALS:
            raise StoreError(f"interval must be one of {', '.join(INTERVALS)}, not {interval!r}")
        if by not in ("predicted", "observed"):
            raise StoreError(f"'by' must be 'predicted' or 'observed', not {by!r}")
        generative = is_generative(problem)
        rows = self.joined(problem, model_version, since, until, observed_only=not generative, shadow=True)
        if not shadow:
            rows = [r for r in rows if r["role"] == "served"]
        if not rows:
            return []
        frame = pd.DataFrame(rows)
        when = "predicted_at" if by == "predicted" or generative else "observed_at"
        frame["period"] = _period_start(pd.to_datetime(frame[when]), interval)
        out = []
        for (period, version, role), group in frame.groupby(["period", "model_version", "role"], sort=True):
            targets = None if generative else group["target"].tolist()
            metrics = score_outputs(problem, group["output"].tolist(), targets)
            out.append({"period": period.date().isoformat(), "model_version": int(version), "role": role,
                        "n": len(group), **metrics})
        return out

    def counts(self, problem: str) -> dict[str, int]:
        """How many predictions and observations ``problem`` has."""
        from sqlalchemy import func

        with self.engine.connect() as conn:
            n_pred = conn.execute(select(func.count()).select_from(predictions_table)
                                  .where(predictions_table.c.problem == problem)).scalar_one()
            n_obs = conn.execute(select(func.count()).select_from(observations_table)
                                 .where(observations_table.c.problem == problem)).scalar_one()
        return {"predictions": int(n_pred), "observations": int(n_obs)}

    def shadow_count(self, problem: str, model_version: int | None = None) -> int:
        """How many shadow predictions ``problem`` has (of ``model_version``, when given)."""
        from sqlalchemy import func

        query = select(func.count()).select_from(shadow_table).where(shadow_table.c.problem == problem)
        if model_version is not None:
            query = query.where(shadow_table.c.model_version == model_version)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
