"""The few places where SQLite and PostgreSQL differ: upsert constructs and row locks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Select, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

T = TypeVar("T")

# SQLite allows 32,766 bound parameters per statement; stay well below it for IN lists.
IN_CHUNK = 5000


def dialect_name(session: Session) -> str:
    return session.get_bind().dialect.name


def insert_for(session: Session, table: Table) -> Any:
    """A dialect INSERT that supports ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
    if dialect_name(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def lock_rows(session: Session, stmt: Select[Any]) -> Select[Any]:
    """FOR UPDATE on PostgreSQL; SQLite already serialises writers with BEGIN IMMEDIATE."""
    if dialect_name(session) == "postgresql":
        return stmt.with_for_update()
    return stmt


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unique(items: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(items))
