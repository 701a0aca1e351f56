"""Schema migrations: a fresh database matches the models, an old one is stamped and keeps its rows,
a new revision upgrades an existing database, opening at head runs no migration, PostgreSQL too."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, inspect, text

from lstmops import database, migrations
from lstmops.database import engine_for, migrate
from lstmops.errors import DatabaseError
from lstmops.registry.versions import Registry
from lstmops.registry.versions import metadata as registry_metadata
from lstmops.store.records import Store
from lstmops.store.records import metadata as store_metadata
from lstmops.update.lock import metadata as lock_metadata
from test_registry import _fresh_pg, pg_url  # noqa: F401 - the throw-away PostgreSQL server fixture


def _models() -> MetaData:
    """The registry's, the store's and the update lock's tables in one MetaData, as the whole database should be."""
    combined = MetaData()
    for table in (*registry_metadata.tables.values(), *store_metadata.tables.values(),
                  *lock_metadata.tables.values()):
        table.to_metadata(combined)
    return combined


def _differences(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with engine_for(url).connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), _models())


def _revision_module(name: str):
    """A revision script of the package (its file name starts with a digit: loaded by path)."""
    import importlib.util

    (path,) = (migrations.LOCATION / "versions").glob(f"{name}_*.py")
    spec = importlib.util.spec_from_file_location(f"lstmops_revision_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _old_schema(engine, with_store: bool = True) -> None:
    """The tables lstmops made with ``create_all`` before migrations existed: exactly revision 0001's."""
    from sqlalchemy import Index, Table

    revision, old = _revision_module("0001"), MetaData()
    for name, columns in revision._tables().items():  # fresh Column objects on every call
        if with_store or name not in ("predictions", "observations"):
            table = Table(name, old, *columns)
            if name in revision.INDEXES:
                index, fields = revision.INDEXES[name]
                Index(index, *[table.c[f] for f in fields])
    old.create_all(engine)


def _revision(url: str) -> str | None:
    with engine_for(url).connect() as conn:
        return database._revision(conn)


def test_head_constant_is_the_scripts_head():
    assert database._script_head(migrations.LOCATION) == migrations.HEAD


def test_a_fresh_database_is_migrated_to_exactly_the_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    Registry(url, tmp_path / "registry")
    assert _differences(url) == [] and _revision(url) == migrations.HEAD


def test_opening_a_database_at_head_runs_no_migration(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'db.db'}"
    Store(url)

    def boom(*_args):
        raise AssertionError("upgrade ran on a database already at head")

    monkeypatch.setattr(database, "_upgrade", boom)
    Registry(url, tmp_path / "registry")
    Store(url)


@pytest.mark.parametrize("made_by", ["registry-and-store", "registry-only", "postgresql"])
def test_a_database_made_before_migrations_is_stamped_and_keeps_its_rows(tmp_path, request, made_by):
    url = (_fresh_pg(request.getfixturevalue("pg_url"), "lstmops_old") if made_by == "postgresql"
           else f"sqlite:///{tmp_path / 'old.db'}")
    old = create_engine(url)  # the old code: metadata.create_all of the 0001 tables, no alembic_version
    _old_schema(old, with_store=made_by != "registry-only")
    when = datetime(2026, 1, 2, 3, 4)
    with old.begin() as conn:
        conn.execute(text("INSERT INTO registry_problems VALUES ('echo', 3)"))
        conn.execute(text("INSERT INTO model_versions (problem, version, folder, checksums, meta, registered_at) "
                          "VALUES ('echo', 1, 'echo/v1', '{}', '{}', :t)"), {"t": when})
        if made_by != "registry-only":
            conn.execute(text("INSERT INTO predictions VALUES ('echo', 'a', 1, '1', '2', :t)"), {"t": when})
    old.dispose()
    reg = Registry(url, tmp_path / "registry")
    assert _revision(url) == migrations.HEAD and _differences(url) == []
    (mv,) = reg.versions("echo")
    assert (mv.version, mv.folder, mv.registered_at) == (1, tmp_path / "registry" / "echo" / "v1", when)
    counts = Store(url).counts("echo")
    assert counts == {"predictions": 0 if made_by == "registry-only" else 1, "observations": 0}
    assert reg.proposals("echo") == []  # 0002's tables exist, empty


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_database_at_0001_upgrades_to_proposals_keeping_its_ledger(tmp_path, request, backend):
    url = (_fresh_pg(request.getfixturevalue("pg_url"), "lstmops_0001") if backend == "postgresql"
           else f"sqlite:///{tmp_path / 'v1.db'}")
    old = create_engine(url)
    _old_schema(old)
    when = datetime(2026, 1, 2, 3, 4)
    with old.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version VALUES ('0001')"))
        conn.execute(text("INSERT INTO registry_problems VALUES ('echo', 1)"))
        for v in (1, 2):
            conn.execute(text("INSERT INTO model_versions (problem, version, folder, checksums, meta, registered_at) "
                              "VALUES ('echo', :v, :f, '{}', '{}', :t)"), {"v": v, "f": f"echo/v{v}", "t": when})
        conn.execute(text("INSERT INTO model_aliases VALUES ('echo', 'champion', 1, :t)"), {"t": when})
        conn.execute(text("INSERT INTO promotions (problem, action, champion, actor, reason, evidence, revision, at) "
                          "VALUES ('echo', 'initial', 1, 'ann', 'first', 'r.html', 1, :t)"), {"t": when})
        conn.execute(text("INSERT INTO predictions VALUES ('echo', 'a', 1, '1', '2', :t)"), {"t": when})
    old.dispose()
    reg = Registry(url, tmp_path / "registry")
    assert _revision(url) == migrations.HEAD and _differences(url) == []
    (entry,) = reg.ledger("echo")
    assert (entry.actor, entry.reason, entry.evidence, entry.at, entry.proposal_id, entry.weights_only) == (
        "ann", "first", "r.html", when, None, None)
    assert Store(url).counts("echo") == {"predictions": 1, "observations": 0}
    made = reg.propose("echo", 2, {"summary": "better"}, None, weights_only=True, arm="a",
                       expires_at=datetime(2099, 1, 1), actor="gate")
    assert made.status == "pending" and made.expected_champion == 1


_REVISION_NEXT = '''"""Add a note to each registry setting."""
import sqlalchemy as sa
from alembic import op

revision = "next"
down_revision = "%s"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("registry_settings") as batch:
        batch.add_column(sa.Column("note", sa.Text, nullable=True))
    op.execute("UPDATE registry_settings SET note = 'migrated'")


def downgrade() -> None:
    with op.batch_alter_table("registry_settings") as batch:
        batch.drop_column("note")
'''


def test_a_new_revision_upgrades_an_existing_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.db'}"
    reg = Registry(url, tmp_path / "registry")
    with engine_for(url).begin() as conn:
        conn.execute(text("INSERT INTO registry_settings VALUES ('colour', 'blue')"))
    scripts = tmp_path / "scripts"
    shutil.copytree(migrations.LOCATION, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "next_note.py").write_text(_REVISION_NEXT % migrations.HEAD)
    migrate(reg.engine, scripts)
    assert _revision(url) == "next"
    with engine_for(url).connect() as conn:
        assert conn.execute(text("SELECT value, note FROM registry_settings WHERE key = 'colour'")).one() == (
            "blue", "migrated")
    migrate(reg.engine, scripts)  # at head now: nothing to do
    assert "note" in {c["name"] for c in inspect(reg.engine).get_columns("registry_settings")}


def test_a_database_from_a_newer_lstmops_fails_in_one_line(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.db'}"
    Store(url)
    with engine_for(url).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(DatabaseError, match="schema revision 0099.*newer lstmops"):
        Registry(url, tmp_path / "registry")


def test_postgresql_is_migrated_to_exactly_the_models(pg_url):  # noqa: F811 - the fixture
    url = _fresh_pg(pg_url, "lstmops_migrations")
    Store(url)
    assert _differences(url) == [] and _revision(url) == migrations.HEAD
    Registry(url, Path("/nonexistent-registry"))  # at head: a no-op
    assert _revision(url) == migrations.HEAD
