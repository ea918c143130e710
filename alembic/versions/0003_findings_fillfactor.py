"""Leave free space in findings pages so repeats are updated in place (HOT) on PostgreSQL.

A repeat that changes no indexed column (last_seen moves at most once a minute, the score only at
doublings of occurrences) can be a heap-only-tuple update when its page has room: no index entries are
added for it. fillfactor 85 keeps that room.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE findings SET (fillfactor = 85)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE findings RESET (fillfactor)")
