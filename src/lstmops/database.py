"""One SQLAlchemy engine per database URL, with SQLite set up for safe concurrent use.

SQLite (the default) runs in WAL mode, so readers never block the writer, with foreign
keys on and a generous busy timeout. Write transactions that must not interleave
(registering a version, promoting, rolling back) start with ``BEGIN IMMEDIATE``, which
takes SQLite's write lock at once: two racing promoters then run one after the other,
never both on the same stale state. On PostgreSQL the same code locks the problem's
row with ``SELECT ... FOR UPDATE`` (see :func:`lock_row`).

Schemas are versioned with Alembic (:mod:`lstmops.migrations`): :func:`migrate` brings
a database to the newest revision when the registry or the store opens it.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, inspect, select
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from lstmops.errors import DatabaseError, InputError

_ENGINES: dict[str, Engine] = {}
BUSY_TIMEOUT_S = 30
MIGRATION_LOCK_KEY = 7_051_731  # PostgreSQL advisory lock id of lstmops schema upgrades



CLOCK_ENV = "LSTMOPS_CLOCK"


def utcnow() -> datetime:
    """The current time in UTC, naive (every timestamp in the database is naive UTC).

    A rehearsal runs on simulated time: ``$LSTMOPS_CLOCK`` = ``<simulated ISO time>@<real
    epoch seconds>`` makes this return the simulated time plus the real time elapsed since
    the clock was set, so ledger rows, proposals and expiries carry the rehearsed dates and
    keep their order.
    """
    real = datetime.now(UTC).replace(tzinfo=None)
    clock = os.environ.get(CLOCK_ENV)
    if not clock:
        return real
    simulated, _, since = clock.partition("@")
    try:
        start = datetime.fromisoformat(simulated)
        elapsed = real - datetime.fromtimestamp(float(since), UTC).replace(tzinfo=None) if since else timedelta(0)
    except ValueError:
        raise InputError(f"{CLOCK_ENV}={clock!r}: expected <ISO time>@<epoch seconds>") from None
    return start.replace(tzinfo=None) + max(elapsed, timedelta(0))


def set_clock(simulated: datetime) -> None:
    """Run this process (and its children) on simulated time from ``simulated`` on (see :func:`utcnow`)."""
    import time

    os.environ[CLOCK_ENV] = f"{simulated.replace(tzinfo=None).isoformat()}@{time.time()}"


def _sqlite_setup(engine: Engine) -> None:
    in_memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        if not in_memory:
            _wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _wal(cursor: Any) -> None:
    """Switch the file to write-ahead logging, waiting out another connection doing the same.

    Two processes opening a new database at once both switch it; SQLite answers the
    second "database is locked" at once, without its busy handler, so it is retried here
    for up to the busy timeout (once the file is in WAL mode, the switch is a no-op).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def engine_for(url: str) -> Engine:
    """The (cached) engine of ``url``; a SQLite file's folder is created on first use."""
    if url in _ENGINES:
        return _ENGINES[url]
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - SQLAlchemy raises several types for a bad URL
        raise DatabaseError(f"not a database URL: {url!r}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        folder = Path(parsed.database).parent if parsed.database not in (None, "", ":memory:") else None
        if folder is not None and not folder.is_dir():
            try:  # e.g. the registry folder of a fresh checkout; never a whole missing tree
                folder.mkdir(exist_ok=True)
            except OSError:
                raise DatabaseError(f"cannot create the database {parsed.database}: no folder {folder.parent}") from None
        kwargs["connect_args"] = {"timeout": BUSY_TIMEOUT_S}
    try:
        engine = create_engine(url, **kwargs)
    except Exception as err:  # noqa: BLE001 - e.g. a driver that is not installed
        raise DatabaseError(f"cannot use database {parsed.render_as_string(hide_password=True)}: {err}") from None
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    _ENGINES[url] = engine
    return engine


def _revision(connection: Connection) -> str | None:
    """The database's Alembic revision, or None before the first migration (plain SQL: no Alembic import)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()


def _migration_lock(connection: Connection) -> None:
    """Serialise migrators: SQLite holds its write lock already (``BEGIN IMMEDIATE``); PostgreSQL locks here."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")


def migrate(engine: Engine, scripts: Path | None = None, head: str | None = None) -> None:
    """Upgrade the database to the newest schema revision; cheap when it is already there.

    Two processes opening a new database at once are serialised by a lock held for the
    whole upgrade (DDL is transactional on SQLite and PostgreSQL); the second one then
    finds the database at head and does nothing.

    Args:
        scripts: the Alembic script folder; default the package's own ``lstmops/migrations``.
        head: its newest revision; default :data:`lstmops.migrations.HEAD` (or read from ``scripts``).
    """
    from lstmops import migrations

    if head is None:
        head = migrations.HEAD if scripts is None else _script_head(scripts)
    try:
        with engine.connect() as connection:
            if _revision(connection) == head:
                return
        with writing(engine) as connection:
            _migration_lock(connection)
            if _revision(connection) != head:
                _upgrade(connection, scripts or migrations.LOCATION)
    except (OperationalError, ProgrammingError, IntegrityError) as err:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot open database {url}: {str(err.orig).strip().splitlines()[0]}") from None


def _script_head(scripts: Path) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(scripts)).get_current_head()


def _upgrade(connection: Connection, scripts: Path) -> None:
    """Run Alembic's upgrade to head inside the caller's transaction."""
    from alembic import command
    from alembic.config import Config

    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(scripts))
    config.attributes["connection"] = connection
    try:
        command.upgrade(config, "head")
    except CommandError as err:  # e.g. a revision written by a newer lstmops
        url = connection.engine.url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot migrate database {url} (schema revision {_revision(connection)}): {err}; "
                            "is it used by a newer lstmops? upgrade lstmops") from None


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the write lock from its first statement (SQLite) and commits at the end."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


def lock_row(connection: Connection, table: Table, key_column: str, key: Any, defaults: dict | None = None) -> Any:
    """Get-or-create one row and lock it until the transaction ends (``FOR UPDATE``).

    On SQLite, :func:`writing` already holds the database's write lock, and
    ``FOR UPDATE`` is left out by the dialect; on PostgreSQL the row lock serialises
    every writer of this key while other keys proceed.
    """
    column = table.c[key_column]
    query = select(table).where(column == key).with_for_update()
    row = connection.execute(query).first()
    if row is None:
        try:
            with connection.begin_nested():
                connection.execute(table.insert().values({key_column: key, **(defaults or {})}))
        except IntegrityError:
            pass  # another writer created it first: lock theirs
        row = connection.execute(query).first()
    return row
