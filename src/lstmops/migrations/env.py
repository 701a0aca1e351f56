"""Alembic environment of the lstmops database: run by :func:`lstmops.database.migrate` and by ``alembic``.

Programmatic runs pass their open connection (inside the transaction that holds the
migration lock) in ``config.attributes["connection"]``; the ``alembic`` command line
gets the URL from ``-x url=...``, ``$LSTMOPS_DB_URL`` or the default registry database.
"""

from __future__ import annotations

from alembic import context

from lstmops.registry.versions import metadata as registry_metadata
from lstmops.store.records import metadata as store_metadata
from lstmops.update.lock import metadata as lock_metadata

target_metadata = [registry_metadata, store_metadata, lock_metadata]


def _run(connection) -> None:
    # Batch mode lets future revisions alter SQLite tables (copy-and-move) with the same script.
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Upgrade through the caller's connection, or open one from the URL (command line)."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from lstmops import paths
    from lstmops.database import engine_for

    url = context.get_x_argument(as_dictionary=True).get("url") or paths.database_url()
    with engine_for(url).begin() as connection:  # one transaction: all revisions or none
        _run(connection)


main()
