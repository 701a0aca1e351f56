"""Initial schema: the registry (settings, problems, versions, aliases, ledger) and the store.

Exactly the tables lstmops created with ``metadata.create_all`` before it had migrations.
A database made by that code already holds some or all of them, with users' rows:
only the missing tables are created, so upgrading it amounts to stamping it here.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> dict[str, tuple]:
    """Each table's columns and constraints, in creation order (foreign keys point backwards)."""
    return {
        "registry_settings": (
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        ),
        "registry_problems": (
            sa.Column("problem", sa.String(64), primary_key=True),
            sa.Column("revision", sa.Integer, nullable=False),
        ),
        "model_versions": (
            sa.Column("problem", sa.String(64), sa.ForeignKey("registry_problems.problem"), primary_key=True),
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("architecture", sa.String(64)),
            sa.Column("folder", sa.String(255), nullable=False),
            sa.Column("checksums", sa.JSON, nullable=False),
            sa.Column("meta", sa.JSON, nullable=False),
            sa.Column("source", sa.Text),
            sa.Column("registered_by", sa.String(255)),
            sa.Column("registered_at", sa.DateTime, nullable=False),
        ),
        "model_aliases": (
            sa.Column("problem", sa.String(64), primary_key=True),
            sa.Column("alias", sa.String(32), primary_key=True),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("updated_at", sa.DateTime, nullable=False),
            sa.ForeignKeyConstraint(["problem", "version"], ["model_versions.problem", "model_versions.version"]),
        ),
        "promotions": (
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("problem", sa.String(64), nullable=False),
            sa.Column("action", sa.String(16), nullable=False),
            sa.Column("champion", sa.Integer, nullable=False),
            sa.Column("replaced", sa.Integer),
            sa.Column("previous", sa.Integer),
            sa.Column("actor", sa.String(255), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("evidence", sa.Text),
            sa.Column("revision", sa.Integer, nullable=False),
            sa.Column("at", sa.DateTime, nullable=False),
        ),
        "predictions": (
            sa.Column("problem", sa.String(64), primary_key=True),
            sa.Column("id", sa.String(128), primary_key=True),
            sa.Column("model_version", sa.Integer, nullable=False),
            sa.Column("input", sa.JSON, nullable=False),
            sa.Column("output", sa.JSON, nullable=False),
            sa.Column("predicted_at", sa.DateTime, nullable=False),
        ),
        "observations": (
            sa.Column("problem", sa.String(64), primary_key=True),
            sa.Column("prediction_id", sa.String(128), primary_key=True),
            sa.Column("target", sa.JSON, nullable=False),
            sa.Column("observed_at", sa.DateTime, nullable=False),
            sa.Column("recorded_at", sa.DateTime, nullable=False),
            sa.ForeignKeyConstraint(["problem", "prediction_id"], ["predictions.problem", "predictions.id"]),
        ),
    }


INDEXES = {"promotions": ("ix_promotions_problem", ["problem"]),
           "predictions": ("ix_predictions_problem_time", ["problem", "predicted_at"])}


def upgrade() -> None:
    """Create the tables (and their indexes) this database does not have yet."""
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns in _tables().items():
        if name in existing:
            continue
        op.create_table(name, *columns)
        if name in INDEXES:
            index, fields = INDEXES[name]
            op.create_index(index, name, fields)


def downgrade() -> None:
    """Drop every table (and with them all registry and store data)."""
    for name in reversed(_tables()):
        op.drop_table(name)
