"""Store documents that are never queried (raw, context, references, score breakdown) as json, not jsonb.

jsonb parses every document into a binary tree on write; these columns are only stored and returned, and
that parsing was a large part of PostgreSQL's time per ingested finding. `raw` is also compressed with
lz4 where the server supports it. Tags stay jsonb: the list endpoint filters on them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DOCUMENT_COLUMNS = ("raw", "context", "references", "score_breakdown")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite stores JSON as text either way
    for column in DOCUMENT_COLUMNS:
        op.alter_column(
            "findings",
            column,
            type_=sa.JSON(),
            existing_type=postgresql.JSONB(astext_type=sa.Text()),
            postgresql_using=f'"{column}"::json',
        )
    lz4 = bind.execute(
        sa.text(
            "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
        )
    ).scalar_one()
    if lz4:
        op.execute("ALTER TABLE findings ALTER COLUMN raw SET COMPRESSION lz4")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for column in DOCUMENT_COLUMNS:
        op.alter_column(
            "findings",
            column,
            type_=postgresql.JSONB(astext_type=sa.Text()),
            existing_type=sa.JSON(),
            postgresql_using=f'"{column}"::jsonb',
        )
