"""Survey answers by channel (page or text thread); calls whose survey is in the thread

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 04:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("survey_responses") as batch:
        batch.add_column(sa.Column("channel", sa.String(), nullable=False, server_default="link"))
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column("survey_thread_open", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("survey_thread_open")
    with op.batch_alter_table("survey_responses") as batch:
        batch.drop_column("channel")
