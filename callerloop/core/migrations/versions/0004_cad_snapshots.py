"""CAD snapshots and watched-folder files: what the poller and the folder have told

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 01:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cad_snapshots",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("incident_id", sa.String(), nullable=False),
        sa.Column("row_digest", sa.String(), nullable=False),
        sa.Column("sent", sa.String(), nullable=False),
        sa.Column("call_type_digest", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "incident_id", name=op.f("pk_cad_snapshots")),
    )
    op.create_index(
        op.f("ix_cad_snapshots_updated_at"), "cad_snapshots", ["updated_at"], unique=False
    )
    op.create_table(
        "cad_folder_files",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("dead_letters", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("problem", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("source", "digest", name=op.f("pk_cad_folder_files")),
    )


def downgrade() -> None:
    op.drop_table("cad_folder_files")
    op.drop_index(op.f("ix_cad_snapshots_updated_at"), table_name="cad_snapshots")
    op.drop_table("cad_snapshots")
