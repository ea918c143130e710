"""Alembic environment: the schema is the SQLModel metadata in app.models; the URL comes from settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables)
from alembic import context
from app.db import create_db_engine
from app.migrations import include_object
from app.settings import load_settings

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        include_object=include_object,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection: Any = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_db_engine(load_settings())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `tocsin migrate`")
run_migrations_online()
