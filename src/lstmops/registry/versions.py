"""Model registry: numbered versions per problem, ``champion``/``previous`` aliases, a ledger.

Each version is a verified copy of a finalized bundle (architecture JSON, weights,
preprocessing, metadata, checksums) under ``<registry>/<problem>/v<N>/``; its metadata,
the sha256 of every file, the aliases and the promotion ledger live in a database
(SQLite by default, any SQLAlchemy URL, e.g. PostgreSQL). Opening a registry upgrades
its database's schema with Alembic when needed (:func:`lstmops.database.migrate`).

Ownership: each database has a registry id (a uuid in ``registry_settings``), and every
version folder names the registry that wrote it (:mod:`lstmops.registry.storage`). A
database never writes into, or deletes from, a folder holding versions it cannot prove
are its own: pointed at another registry's folder, it refuses and changes nothing.

Crash safety: files are copied into a staging folder first and renamed into place
under the database write lock, and the version only exists once the transaction that
records it commits. A crash at any point leaves at most an orphan folder owned by this
registry, which nothing reads (every lookup goes through the database) and the next
registration removes. Alias changes and their ledger row commit together, or not at
all. Two promoters of the same problem are serialised by the lock; with
``expect_champion`` the second one (or a repeated request) fails cleanly instead of
replacing a champion it never saw.

Past one machine: with a model store (``LSTMOPS_MODEL_STORE=s3://bucket/prefix``, see
:mod:`lstmops.registry.objects`) every registration also uploads the bundle, before the
database records the version, and a version whose folder is missing here is downloaded
into the registry folder (a cache) and checked against the recorded checksums before
anything uses it. Without one, nothing of this runs.

Proposals (the update gate proposes, a person approves or rejects) are rows of the
``proposals`` table defined here; their logic is in :mod:`lstmops.registry.proposals`,
reached through the ``propose``/``approve``/``reject``/... methods below. A ledger row
written by an approval names its proposal (``proposal_id``) and ``weights_only``.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (JSON, Boolean, Column, DateTime, ForeignKey, ForeignKeyConstraint, Index, Integer, MetaData,
                        String, Table, Text, select, update)
from sqlalchemy.engine import Connection

from lstmops import paths
from lstmops.database import engine_for, lock_row, migrate, utcnow, writing
from lstmops.errors import BundleError, NoModelError, PromotionConflict, RegistryError
from lstmops.modeling.bundle import CHECKSUMS, FILES, METADATA, sha256, verify_bundle
from lstmops.registry import storage

ALIASES = ("champion", "previous")

metadata = MetaData()
settings_table = Table(
    "registry_settings", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
problems_table = Table(
    "registry_problems", metadata,
    Column("problem", String(64), primary_key=True),
    Column("revision", Integer, nullable=False, default=0),  # bumped by every alias change
)
versions_table = Table(
    "model_versions", metadata,
    Column("problem", String(64), ForeignKey("registry_problems.problem"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("architecture", String(64)),
    Column("folder", String(255), nullable=False),  # relative to the registry folder
    Column("checksums", JSON, nullable=False),
    Column("meta", JSON, nullable=False),
    Column("source", Text),
    Column("registered_by", String(255)),
    Column("registered_at", DateTime, nullable=False),
)
aliases_table = Table(
    "model_aliases", metadata,
    Column("problem", String(64), primary_key=True),
    Column("alias", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    ForeignKeyConstraint(["problem", "version"], ["model_versions.problem", "model_versions.version"]),
)
PROPOSAL_STATUSES = ("pending", "approved", "promoted", "rejected", "expired", "superseded")
proposals_table = Table(  # the logic is in lstmops.registry.proposals
    "proposals", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem", String(64), nullable=False),
    Column("candidate_version", Integer, nullable=False),
    Column("expected_champion", Integer),           # the champion when proposed (None: none yet)
    Column("status", String(16), nullable=False),
    Column("weights_only", Boolean, nullable=False),
    Column("arm", String(64)),
    Column("evidence", JSON, nullable=False),       # the gate's statistics
    Column("report_path", Text),
    Column("flow_run_id", String(64)),              # the paused Prefect run waiting for the decision
    Column("proposed_by", String(255), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("decided_by", String(255)),
    Column("decided_at", DateTime),
    Column("reason", Text),
    ForeignKeyConstraint(["problem", "candidate_version"], ["model_versions.problem", "model_versions.version"],
                         name="fk_proposals_version"),
    Index("ix_proposals_problem_status", "problem", "status"),
)
ledger_table = Table(
    "promotions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("problem", String(64), nullable=False, index=True),
    Column("action", String(16), nullable=False),  # initial | promote | rollback
    Column("champion", Integer, nullable=False),    # the champion after this change
    Column("replaced", Integer),                    # the champion before it
    Column("previous", Integer),                    # the previous alias after it
    Column("actor", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text),
    Column("revision", Integer, nullable=False),
    Column("at", DateTime, nullable=False),
    # set when an approved proposal made this change (migration 0002)
    Column("proposal_id", Integer, ForeignKey("proposals.id", name="fk_promotions_proposal")),
    Column("weights_only", Boolean),
)

# Fault injection for tests: called with the name of each step of a registration or
# promotion; raising (or exiting the process) there simulates a crash at that point.
crash_hook: Callable[[str], None] | None = None
_ANY: Any = object()
_FROM_ENV: Any = object()


def _checkpoint(step: str) -> None:
    if crash_hook is not None:
        crash_hook(step)


def default_actor() -> str:
    """``user@host`` of this process, for the ledger."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a problem's model."""

    problem: str
    version: int
    architecture: str | None
    folder: Path
    checksums: dict[str, str]
    metadata: dict[str, Any]
    source: str | None
    registered_by: str | None
    registered_at: datetime
    aliases: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (metadata included)."""
        out = asdict(self)
        out |= {"folder": str(self.folder), "registered_at": self.registered_at.isoformat() + "Z",
                "aliases": list(self.aliases)}
        return out


@dataclass(frozen=True)
class Promotion:
    """One row of the promotion ledger: who changed the champion, when, why, on what evidence."""

    id: int
    problem: str
    action: str
    champion: int
    replaced: int | None
    previous: int | None
    actor: str
    reason: str
    evidence: str | None
    revision: int
    at: datetime
    proposal_id: int | None = None
    weights_only: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self) | {"at": self.at.isoformat() + "Z"}


@dataclass(frozen=True)
class Registration:
    """What :meth:`Registry.register` did: the version, and whether it is new."""

    version: ModelVersion
    created: bool
    removed_orphans: list[str] = field(default_factory=list)


def parse_ref(ref: str | int | None) -> str | int:
    """``champion``, ``previous``, ``latest`` or a version number (``3`` or ``v3``)."""
    if ref is None:
        return "champion"
    if isinstance(ref, int):
        return ref
    text = str(ref).strip().lower()
    if text in (*ALIASES, "latest"):
        return text
    if re.fullmatch(r"v?\d+", text):
        return int(text.lstrip("v"))
    raise RegistryError(f"model {ref!r} is neither champion, previous, latest nor a version number")


def _model_store(store: Any) -> Any:
    """The registry's :class:`~lstmops.registry.objects.ObjectStore`, or None (no store, the default)."""
    if store is None:
        return None
    from lstmops.registry.objects import ObjectStore

    if store is _FROM_ENV:
        return ObjectStore.from_env()
    return store if isinstance(store, ObjectStore) else ObjectStore.parse(store)


def promotion_of(problem: str, version: int) -> Callable[[dict[str, int], set[int]], tuple[int, int | None]]:
    """The alias change of promoting ``version``: it becomes champion, the old champion previous."""
    def pick(aliases: dict[str, int], known: set[int]) -> tuple[int, int | None]:
        if version not in known:
            raise NoModelError(f"{problem} has no version {version}")
        if aliases.get("champion") == version:
            raise RegistryError(f"{problem} v{version} is already the champion")
        return version, aliases.get("champion")

    return pick


class Registry:
    """The model registry of every problem.

    Args:
        url: database URL; default ``$LSTMOPS_DB_URL``, else ``<folder>/lstmops.db``.
        folder: where version folders live. Default: the folder this database recorded
            when its first version was registered (so ``--db`` alone finds the files),
            else ``<repo>/registry``.
        store: the model store (an ``s3://bucket/prefix`` URL or an
            :class:`~lstmops.registry.objects.ObjectStore`); default ``$LSTMOPS_MODEL_STORE``,
            None for none.
    """

    def __init__(self, url: str | None = None, folder: Path | None = None, store: Any = _FROM_ENV):
        if url is None:
            url = paths.database_url() if folder is None else os.environ.get(
                "LSTMOPS_DB_URL", f"sqlite:///{Path(folder) / 'lstmops.db'}")
        self.url = url
        self.engine = engine_for(url)
        migrate(self.engine)
        self._id: str | None = None
        self.folder = Path(folder) if folder is not None else self._recorded_folder() or paths.registry_dir()
        self.store = _model_store(store)

    def _recorded_folder(self) -> Path | None:
        with self.engine.connect() as conn:
            value = conn.execute(select(settings_table.c.value).where(settings_table.c.key == "folder")).scalar()
        return Path(value) if value and Path(value).is_dir() else None

    def _record_folder(self, conn: Connection) -> None:
        """Remember where this database's version folders live (first registration, or after a move)."""
        value = str(self.folder.resolve())
        current = conn.execute(select(settings_table.c.value).where(settings_table.c.key == "folder")).scalar()
        if current is None:
            conn.execute(settings_table.insert().values(key="folder", value=value))
        elif current != value and not Path(current).is_dir():
            conn.execute(update(settings_table).where(settings_table.c.key == "folder").values(value=value))

    # --- reading -------------------------------------------------------------------

    def _aliases(self, conn: Connection, problem: str) -> dict[str, int]:
        rows = conn.execute(select(aliases_table.c.alias, aliases_table.c.version)
                            .where(aliases_table.c.problem == problem))
        return {alias: version for alias, version in rows}

    def _version(self, row: Any, aliases: dict[str, int]) -> ModelVersion:
        return ModelVersion(
            problem=row.problem, version=row.version, architecture=row.architecture,
            folder=self.folder / row.folder, checksums=dict(row.checksums), metadata=dict(row.meta),
            source=row.source, registered_by=row.registered_by, registered_at=row.registered_at,
            aliases=tuple(a for a in ALIASES if aliases.get(a) == row.version),
        )

    def _read(self, conn: Connection, problem: str, version: int) -> ModelVersion:
        row = conn.execute(select(versions_table).where((versions_table.c.problem == problem)
                                                        & (versions_table.c.version == version))).one()
        return self._version(row, self._aliases(conn, problem))

    def versions(self, problem: str) -> list[ModelVersion]:
        """Every version of ``problem``, oldest first, with its aliases."""
        with self.engine.connect() as conn:
            aliases = self._aliases(conn, problem)
            rows = conn.execute(select(versions_table).where(versions_table.c.problem == problem)
                                .order_by(versions_table.c.version))
            return [self._version(row, aliases) for row in rows]

    def aliases(self, problem: str) -> dict[str, int]:
        """``{"champion": N, "previous": M}`` as far as set."""
        with self.engine.connect() as conn:
            return self._aliases(conn, problem)

    def problems(self) -> list[str]:
        """Problems with at least one registered version."""
        with self.engine.connect() as conn:
            return sorted(conn.execute(select(versions_table.c.problem).distinct()).scalars())

    def resolve(self, problem: str, ref: str | int | None = "champion") -> ModelVersion:
        """The version ``ref`` names (alias, ``latest`` or number), or a one-line :class:`NoModelError`."""
        want = parse_ref(ref)
        found = self.versions(problem)
        if not found:
            raise NoModelError(f"no registered model for {problem} (run `dvc repro` or "
                               f"`python stages/register.py {problem}`)")
        numbers = ", ".join(str(v.version) for v in found)
        if want == "latest":
            return self.local(found[-1])
        if isinstance(want, str):
            match = [v for v in found if want in v.aliases]
            if not match:
                raise NoModelError(f"{problem} has no {want} model (versions: {numbers})")
            return self.local(match[0])
        match = [v for v in found if v.version == want]
        if not match:
            raise NoModelError(f"{problem} has no version {want} (versions: {numbers})")
        return self.local(match[0])

    def local(self, mv: ModelVersion) -> ModelVersion:
        """``mv`` with its files on this machine: downloaded from the model store when its folder is missing.

        The download lands in a staging folder, is checked against the checksums the
        database recorded, and only then renamed to ``<folder>/<problem>/v<N>``; a missing
        or tampered object is a one-line error and leaves nothing behind.
        """
        if self.store is None or mv.folder.is_dir():
            return mv
        storage.fetch(self.store, mv.folder, mv.problem, mv.version, mv.checksums, self._registry_id(create=False))
        return mv

    def verify(self, mv: ModelVersion) -> None:
        """Check every file of ``mv`` against the checksums recorded at registration."""
        self.local(mv)
        label = f"{mv.problem} v{mv.version}"
        for name in FILES:
            path = mv.folder / name
            if not path.is_file():
                raise BundleError(f"{label}: {name} is missing from {mv.folder}")
            if sha256(path) != mv.checksums.get(name):
                raise BundleError(f"{label}: {name} does not match the checksum recorded at registration "
                                  "(tampered or corrupt); refusing to load it")
        index = mv.folder / CHECKSUMS
        if not index.is_file() or json.loads(index.read_text(encoding="utf-8")) != mv.checksums:
            raise BundleError(f"{label}: {CHECKSUMS} differs from the registration record (tampered)")

    def ledger(self, problem: str | None = None, limit: int | None = None) -> list[Promotion]:
        """Promotion ledger rows, newest first."""
        query = select(ledger_table).order_by(ledger_table.c.id.desc())
        if problem is not None:
            query = query.where(ledger_table.c.problem == problem)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [Promotion(**row._asdict()) for row in conn.execute(query)]

    # --- registering ---------------------------------------------------------------

    def _known(self, conn: Connection) -> set[tuple[str, int]]:
        return {(p, v) for p, v in conn.execute(select(versions_table.c.problem, versions_table.c.version))}

    def _registry_id(self, create: bool = True) -> str | None:
        """This database's registry id, the owner named in its version folders (made at first registration)."""
        if self._id is None:
            with self.engine.connect() as conn:
                self._id = conn.execute(select(settings_table.c.value)
                                        .where(settings_table.c.key == "registry_id")).scalar()
        if self._id is None and create:
            with writing(self.engine) as conn:
                row = lock_row(conn, settings_table, "key", "registry_id", {"value": uuid.uuid4().hex})
                self._id = row.value
        return self._id

    def _check_folder(self) -> None:
        """Refuse before touching the disk when the folder holds another registry's versions."""
        with self.engine.connect() as conn:
            known = self._known(conn)
        storage.check_owned(self.folder, self._registry_id(create=False), known)

    def register(self, problem: str, source: Path, actor: str | None = None) -> Registration:
        """Register the bundle at ``source`` as ``problem``'s next version.

        Idempotent: when the newest version has the same checksums, nothing changes and
        that version is returned with ``created=False``. Raises :class:`RegistryError`,
        changing nothing, when the folder holds versions of another registry.
        """
        source = Path(source)
        if not source.is_dir():
            raise NoModelError(f"{problem}: no finalized model at {source} (run `dvc repro` first)")
        sums = verify_bundle(source)
        meta = json.loads((source / METADATA).read_text(encoding="utf-8"))
        self._check_folder()
        owner = self._registry_id()
        staged = storage.stage(self.folder / problem, source, sums, owner)
        try:
            if self.store is not None:  # before the database knows the version: content-addressed, safe to redo
                self.store.put_bundle(problem, staged, sums, (*FILES, CHECKSUMS))
            _checkpoint("staged")
            with writing(self.engine) as conn:
                lock_row(conn, problems_table, "problem", problem, {"revision": 0})
                storage.check_owned(self.folder, owner, self._known(conn))  # again, now under the lock
                self._record_folder(conn)
                rows = conn.execute(select(versions_table.c.version, versions_table.c.checksums)
                                    .where(versions_table.c.problem == problem)).all()
                latest = max(rows, default=None, key=lambda r: r.version)
                if latest is not None and dict(latest.checksums) == sums:
                    return Registration(self._read(conn, problem, latest.version), created=False)
                removed = storage.remove_orphans(self.folder / problem, owner, {r.version for r in rows}, staged)
                number = storage.next_number(self.folder / problem, latest.version if latest else 0)
                storage.place(staged, number)
                _checkpoint("moved")
                conn.execute(versions_table.insert().values(
                    problem=problem, version=number, architecture=meta.get("architecture"),
                    folder=f"{problem}/v{number}", checksums=sums, meta=meta, source=str(source.resolve()),
                    registered_by=actor or default_actor(), registered_at=utcnow()))
                _checkpoint("recorded")
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        return Registration(self.resolve(problem, number), created=True, removed_orphans=removed)

    # --- promoting -----------------------------------------------------------------

    def _set_alias(self, conn: Connection, problem: str, alias: str, version: int | None, now: datetime) -> None:
        conn.execute(aliases_table.delete().where((aliases_table.c.problem == problem)
                                                  & (aliases_table.c.alias == alias)))
        if version is not None:
            conn.execute(aliases_table.insert().values(problem=problem, alias=alias, version=version, updated_at=now))

    def _change(self, problem: str, action: str, pick: Callable[[dict[str, int], set[int]], tuple[int, int | None]],
                actor: str | None, reason: str, evidence: str | None, expect_champion: Any) -> Promotion:
        """Set champion and previous as ``pick`` decides, with a ledger row, in one transaction."""
        with writing(self.engine) as conn:
            row_id = self._apply_change(conn, problem, action, pick, actor, reason, evidence, expect_champion)
        return self.ledger_entry(row_id)

    def _apply_change(self, conn: Connection, problem: str, action: str,
                      pick: Callable[[dict[str, int], set[int]], tuple[int, int | None]], actor: str | None,
                      reason: str, evidence: str | None, expect_champion: Any, **extra: Any) -> int:
        """The body of :meth:`_change` inside the caller's write transaction; returns the ledger row id.

        ``extra`` fills the ledger's optional columns (``proposal_id``, ``weights_only``).
        """
        if not reason or not reason.strip():
            raise RegistryError(f"{problem}: a {action} needs a reason for the ledger")
        state = lock_row(conn, problems_table, "problem", problem, {"revision": 0})
        aliases = self._aliases(conn, problem)
        known = set(conn.execute(select(versions_table.c.version)
                                 .where(versions_table.c.problem == problem)).scalars())
        old = aliases.get("champion")
        if action == "promote" and old is None:
            action = "initial"
        if expect_champion is not _ANY and old != expect_champion:
            seen = "none" if old is None else f"v{old}"
            wanted = "none" if expect_champion is None else f"v{expect_champion}"
            raise PromotionConflict(f"{problem}: the champion is {seen}, not {wanted} as expected "
                                    "(someone changed it meanwhile); nothing was changed")
        champion, previous = pick(aliases, known)
        now, revision = utcnow(), state.revision + 1
        self._set_alias(conn, problem, "champion", champion, now)
        _checkpoint("champion-set")
        self._set_alias(conn, problem, "previous", previous, now)
        conn.execute(update(problems_table).where(problems_table.c.problem == problem).values(revision=revision))
        result = conn.execute(ledger_table.insert().values(
            problem=problem, action=action, champion=champion, replaced=old, previous=previous,
            actor=actor or default_actor(), reason=reason.strip(), evidence=evidence, revision=revision, at=now,
            **extra))
        _checkpoint("ledger-written")
        return result.inserted_primary_key[0]

    def ledger_entry(self, row_id: int) -> Promotion:
        """One ledger row by its id."""
        with self.engine.connect() as conn:
            row = conn.execute(select(ledger_table).where(ledger_table.c.id == row_id)).one()
        return Promotion(**row._asdict())

    def promote(self, problem: str, version: int, reason: str, actor: str | None = None,
                evidence: str | None = None, expect_champion: Any = _ANY) -> Promotion:
        """Make ``version`` the champion; the old champion becomes ``previous``.

        Args:
            expect_champion: the champion the caller based its decision on (None = no
                champion yet); if it changed meanwhile, :class:`PromotionConflict` is raised
                and nothing changes. Left out, concurrent promotions simply serialise.
        """
        return self._change(problem, "promote", promotion_of(problem, version), actor, reason, evidence,
                            expect_champion)

    # --- proposals (lstmops.registry.proposals: the gate proposes, a person decides) -------------

    def propose(self, problem: str, version: int, evidence: dict[str, Any], report_path: str | None,
                weights_only: bool, arm: str | None, expires_at: datetime, flow_run_id: str | None = None,
                actor: str | None = None, expect_champion: Any = ...) -> Any:
        """Propose ``version`` for promotion (:func:`lstmops.registry.proposals.propose`)."""
        from lstmops.registry import proposals
        return proposals.propose(self, problem, version, evidence, report_path, weights_only, arm, expires_at,
                                 flow_run_id, actor, expect_champion)

    def proposals(self, problem: str | None = None, status: str | None = None) -> list[Any]:
        """Proposals, newest first (:func:`lstmops.registry.proposals.proposals`)."""
        from lstmops.registry import proposals
        return proposals.proposals(self, problem, status)

    def proposal(self, problem: str, proposal_id: int) -> Any:
        """One proposal (:func:`lstmops.registry.proposals.proposal`)."""
        from lstmops.registry import proposals
        return proposals.proposal(self, problem, proposal_id)

    def approve(self, problem: str, proposal_id: int, actor: str | None, reason: str) -> Promotion:
        """Approve and promote a pending proposal (:func:`lstmops.registry.proposals.approve`)."""
        from lstmops.registry import proposals
        return proposals.approve(self, problem, proposal_id, actor, reason)

    def reject(self, problem: str, proposal_id: int, actor: str | None, reason: str) -> Any:
        """Reject a pending proposal (:func:`lstmops.registry.proposals.reject`)."""
        from lstmops.registry import proposals
        return proposals.reject(self, problem, proposal_id, actor, reason)

    def expire_due(self, now: datetime | None = None, problems: list[str] | None = None) -> list[Any]:
        """Expire overdue pending proposals (:func:`lstmops.registry.proposals.expire_due`)."""
        from lstmops.registry import proposals
        return proposals.expire_due(self, now, problems)

    def attach_flow_run(self, proposal_id: int, flow_run_id: str) -> Any:
        """Record the paused flow run waiting on a proposal (:func:`lstmops.registry.proposals.attach_flow_run`)."""
        from lstmops.registry import proposals
        return proposals.attach_flow_run(self, proposal_id, flow_run_id)

    def rollback(self, problem: str, reason: str, actor: str | None = None, evidence: str | None = None,
                 expect_champion: Any = _ANY) -> Promotion:
        """Swap champion and previous: the previous model serves again, the current one stays at hand."""
        def pick(aliases: dict[str, int], known: set[int]) -> tuple[int, int | None]:
            if aliases.get("previous") is None:
                raise NoModelError(f"{problem} has no previous model to roll back to")
            return aliases["previous"], aliases.get("champion")

        return self._change(problem, "rollback", pick, actor, reason, evidence, expect_champion)
