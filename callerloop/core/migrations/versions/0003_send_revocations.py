"""send revocations and CAD closures: what the hand-off of a send checks

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 15:34:07.876512
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cad_closures",
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reopened_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_cad_closures")),
    )
    op.create_table(
        "send_revocations",
        sa.Column("workflow_id", sa.String(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", "generation", name=op.f("pk_send_revocations")),
    )


def downgrade() -> None:
    op.drop_table("send_revocations")
    op.drop_table("cad_closures")
