"""The few places where SQLite and PostgreSQL differ: upsert constructs and row locks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Column, ColumnElement, Select, Table, any_, bindparam
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
        # NO KEY UPDATE: serialises writers of the row but not the foreign-key checks (KEY SHARE) of
        # concurrent batches inserting events for it.
        return stmt.with_for_update(key_share=True)  # renders FOR NO KEY UPDATE
    return stmt


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def unique(items: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(items))


def is_in(session: Session, column: Column[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """``column IN values``. On PostgreSQL ``= ANY(:array)``: one parameter, so the statement text is the
    same for every batch and is prepared once, instead of being re-rendered and re-parsed with a
    thousand placeholders."""
    if dialect_name(session) == "postgresql":
        array = bindparam(f"{column.name}_set", list(values), type_=postgresql.ARRAY(column.type))
        return column == any_(array)
    return column.in_(values)


def in_chunks(session: Session, items: Sequence[T]) -> Iterator[Sequence[T]]:
    """The whole list at once on PostgreSQL (one array parameter); SQLite needs its parameter limit."""
    if not items:
        return
    if dialect_name(session) == "postgresql":
        yield items
    else:
        yield from chunks(items)
