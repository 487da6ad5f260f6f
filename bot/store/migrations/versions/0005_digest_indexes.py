"""indexes for the weekly digest: first deliveries, wrong answers, a person's teams

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 16:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_team_members_person_id", "team_members", ["person_id"])
    op.create_index(
        "ix_lesson_deliveries_first",
        "lesson_deliveries",
        ["enrolment_id", "delivered_at"],
        postgresql_where=sa.text("position = 1"),
        sqlite_where=sa.text("position = 1"),
    )
    op.create_index(
        "ix_answers_wrong",
        "answers",
        ["enrolment_id", "topic"],
        postgresql_where=sa.text("correct = false"),
        sqlite_where=sa.text("correct = 0"),
    )


def downgrade() -> None:
    op.drop_index("ix_answers_wrong", table_name="answers")
    op.drop_index("ix_lesson_deliveries_first", table_name="lesson_deliveries")
    op.drop_index("ix_team_members_person_id", table_name="team_members")
