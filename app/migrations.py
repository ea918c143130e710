"""Applying and checking Alembic migrations from the service (``tocsin migrate``, ``tocsin serve``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from alembic import command

# Indexes that exist on one dialect only, created by hand in the migrations; autogenerate must not
# see them as drift.
DIALECT_SPECIFIC_INDEXES = frozenset({"ix_findings_tags_gin", "ix_findings_title_trgm"})


MIGRATION_LOCK_KEY = 0x70C5_1A  # arbitrary, constant: one advisory lock for "migrating"


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    return not (type_ == "index" and name in DIALECT_SPECIFIC_INDEXES)


def migrations_dir() -> Path:
    override = os.environ.get("TOCSIN_MIGRATIONS_DIR")
    if override:
        return Path(override)
    for candidate in (Path(__file__).resolve().parent.parent / "alembic", Path.cwd() / "alembic"):
        if (candidate / "env.py").exists():
            return candidate
    raise RuntimeError("cannot find the alembic/ migrations folder; set TOCSIN_MIGRATIONS_DIR")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def upgrade(engine: Engine) -> None:
    """Apply every pending migration (idempotent)."""
    import app.models  # noqa: F401

    config = alembic_config()
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together take turns; the second finds nothing left to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_drift(engine: Engine) -> list[Any]:
    """Differences between the models and the migrated database; empty when they agree."""
    import app.models  # noqa: F401

    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_object": include_object, "compare_type": True}
        )
        return list(compare_metadata(context, SQLModel.metadata))
