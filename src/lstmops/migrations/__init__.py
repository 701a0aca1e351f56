"""Alembic schema migrations of the whole lstmops database (registry and store tables).

The scripts ship inside the package, so an installed ``lstmops`` upgrades a database
without a checkout. :func:`lstmops.database.migrate` runs them on every open: it
compares the database's ``alembic_version`` with :data:`HEAD` first (one query, no
Alembic import) and only upgrades when they differ. A database made before migrations
existed (tables, no ``alembic_version``) keeps its tables and rows: the initial
revision creates only the tables it lacks.

Adding a revision: ``alembic -c src/lstmops/migrations/alembic.ini revision -m "..."``
(or copy ``versions/0001_initial.py``), then set :data:`HEAD` to its id; a test checks
that :data:`HEAD` is the scripts' head.
"""

from pathlib import Path

LOCATION = Path(__file__).resolve().parent
HEAD = "0003"  # the newest revision: known without importing Alembic, so opening stays cheap
