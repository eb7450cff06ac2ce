"""Follow-up mails to supervisors; inbox items' mail, who handled them and when, low scores

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 05:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "follow_up_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agency", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("body", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("sending_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_to", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_follow_up_mails")),
    )
    with op.batch_alter_table("follow_up_mails") as batch:
        batch.create_index(batch.f("ix_follow_up_mails_agency"), ["agency"], unique=False)
        batch.create_index(batch.f("ix_follow_up_mails_created_at"), ["created_at"], unique=False)
        batch.create_index(batch.f("ix_follow_up_mails_status"), ["status"], unique=False)
    with op.batch_alter_table("survey_comments") as batch:
        batch.add_column(sa.Column("follow_up_mail_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("handled_by", sa.String(), nullable=True))
        batch.add_column(
            sa.Column("low_score", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.create_index(
            batch.f("ix_survey_comments_follow_up_mail_id"), ["follow_up_mail_id"], unique=False
        )
        batch.create_foreign_key(
            batch.f("fk_survey_comments_follow_up_mail_id_follow_up_mails"),
            "follow_up_mails",
            ["follow_up_mail_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("survey_comments") as batch:
        batch.drop_constraint(
            batch.f("fk_survey_comments_follow_up_mail_id_follow_up_mails"), type_="foreignkey"
        )
        batch.drop_index(batch.f("ix_survey_comments_follow_up_mail_id"))
        batch.drop_column("low_score")
        batch.drop_column("handled_by")
        batch.drop_column("handled_at")
        batch.drop_column("follow_up_mail_id")
    with op.batch_alter_table("follow_up_mails") as batch:
        batch.drop_index(batch.f("ix_follow_up_mails_status"))
        batch.drop_index(batch.f("ix_follow_up_mails_created_at"))
        batch.drop_index(batch.f("ix_follow_up_mails_agency"))
    op.drop_table("follow_up_mails")
