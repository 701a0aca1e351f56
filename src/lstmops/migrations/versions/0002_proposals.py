"""Proposals and their decisions, the ledger's link to them, and shadow predictions.

``proposals``: a candidate version the gate found better, waiting for a person's
approval (pending → approved → promoted, or rejected, expired, superseded).
``promotions`` gains ``proposal_id`` (the proposal an approval promoted) and
``weights_only`` (whether that change kept the architecture and preprocessing).
``shadow_predictions``: outputs of the ``previous`` model on the inputs the champion
served after a promotion; logged, never served. Existing rows are kept; the new
columns are empty on old ledger rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _proposals() -> tuple:
    return (
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("problem", sa.String(64), nullable=False),
        sa.Column("candidate_version", sa.Integer, nullable=False),
        sa.Column("expected_champion", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("weights_only", sa.Boolean, nullable=False),
        sa.Column("arm", sa.String(64)),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("report_path", sa.Text),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("proposed_by", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("decided_by", sa.String(255)),
        sa.Column("decided_at", sa.DateTime),
        sa.Column("reason", sa.Text),
        sa.ForeignKeyConstraint(["problem", "candidate_version"], ["model_versions.problem", "model_versions.version"],
                                name="fk_proposals_version"),
    )


def _shadow() -> tuple:
    return (
        sa.Column("problem", sa.String(64), primary_key=True),
        sa.Column("prediction_id", sa.String(128), primary_key=True),
        sa.Column("model_version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("output", sa.JSON, nullable=False),
        sa.Column("predicted_at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(["problem", "prediction_id"], ["predictions.problem", "predictions.id"],
                                name="fk_shadow_prediction"),
    )


def upgrade() -> None:
    """Create the two tables and add the ledger's two columns (rows kept; batch mode copies on SQLite)."""
    op.create_table("proposals", *_proposals())
    op.create_index("ix_proposals_problem_status", "proposals", ["problem", "status"])
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("proposal_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("weights_only", sa.Boolean, nullable=True))
        batch.create_foreign_key("fk_promotions_proposal", "proposals", ["proposal_id"], ["id"])
    op.create_table("shadow_predictions", *_shadow())
    op.create_index("ix_shadow_problem_time", "shadow_predictions", ["problem", "predicted_at"])


def downgrade() -> None:
    """Drop shadow predictions, the ledger's link columns and the proposals (their rows are lost)."""
    op.drop_index("ix_shadow_problem_time", "shadow_predictions")
    op.drop_table("shadow_predictions")
    with op.batch_alter_table("promotions") as batch:
        batch.drop_constraint("fk_promotions_proposal", type_="foreignkey")
        batch.drop_column("weights_only")
        batch.drop_column("proposal_id")
    op.drop_index("ix_proposals_problem_status", "proposals")
    op.drop_table("proposals")
