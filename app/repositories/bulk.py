"""Batch writes in one statement per batch, the fastest way each database offers.

PostgreSQL: one ``INSERT … SELECT FROM unnest(arrays)`` / ``UPDATE … FROM unnest(arrays)``, with the
arrays sent in binary. SQLAlchemy's multi-row VALUES for large batches cost more client CPU (building
and re-parsing a statement with thousands of placeholders) than the database work itself; see
PERF-NOTES.md. SQLite: the stdlib driver's ``executemany`` with values converted once per column
(JSON text, naive-UTC datetimes in SQLAlchemy's storage format), which halves the client CPU of going
through SQLAlchemy's per-value type processing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import JSON, Column, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.models.types import UTCDateTime
from app.repositories.dialect import dialect_name

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON) or isinstance(getattr(column.type, "impl", None), JSON)


@cache
def _pg_array_type(column: Column[Any]) -> str:
    if _is_json(column):
        return "text[]"  # sent as JSON text, cast to jsonb in the SELECT
    return f"{column.type.compile(dialect=_PG)}[]"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _arrays(table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    arrays = []
    for name in names:
        if _is_json(table.c[name]):
            arrays.append([_json_text(row[name]) for row in rows])
        else:
            arrays.append([row[name] for row in rows])
    return arrays


@cache
def _pg_json_cast(column: Column[Any]) -> str:
    """JSON values travel as text; cast to the column's own type (json or jsonb)."""
    return "jsonb" if "JSONB" in str(column.type.compile(dialect=_PG)).upper() else "json"


def _value_expr(table: Table, name: str) -> str:
    column = table.c[name]
    return f"v.{_quote(name)}::{_pg_json_cast(column)}" if _is_json(column) else f"v.{_quote(name)}"


def _select_list(table: Table, names: Sequence[str]) -> str:
    return ", ".join(_value_expr(table, name) for name in names)


def _unnest(table: Table, names: Sequence[str]) -> str:
    params = ", ".join(f"%b::{_pg_array_type(table.c[name])}" for name in names)
    return f"unnest({params}) AS v({', '.join(_quote(n) for n in names)})"


def _sqlite_value(column: Column[Any]) -> Any:
    """A converter for one column's values to what SQLAlchemy would have stored on SQLite."""
    if _is_json(column):
        return _json_text
    if isinstance(column.type, UTCDateTime):
        return _sqlite_datetime
    return None


def _sqlite_datetime(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    # SQLAlchemy's own format; strftime("%Y") would not zero-pad years before 1000 (Go's zero time).
    return value.isoformat(sep=" ", timespec="microseconds")


def _sqlite_rows(table: Table, names: Sequence[str], rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    converters = [_sqlite_value(table.c[name]) for name in names]
    columns = []
    for name, convert in zip(names, converters, strict=True):
        values = [row[name] for row in rows]
        columns.append([convert(v) for v in values] if convert else values)
    return list(zip(*columns, strict=True))


def _run(session: Session, sql: str, params: Any, many: bool) -> list[Any]:
    """Execute on the session's own DBAPI connection (same transaction), translating driver errors into
    SQLAlchemy's (OperationalError, IntegrityError...) so deadlock retries and the 503 handler see them."""
    connection = session.connection()
    dialect = connection.dialect
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if many:
            cursor.executemany(sql, params)
            return []
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
        ) from exc
    finally:
        cursor.close()


def bulk_insert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    skip_conflicts_on: Sequence[str] = (),
    returning: str | None = None,
) -> list[Any] | None:
    """Insert ``rows`` (all with the same keys) in one statement.

    With ``skip_conflicts_on``, rows colliding on that unique key are skipped. With ``returning``, the
    values of that column for the rows actually inserted are returned on PostgreSQL; on SQLite the
    caller holds the database write lock (BEGIN IMMEDIATE), so nothing can collide that it did not
    already see, and ``None`` is returned.
    """
    if not rows:
        return [] if returning else None
    names = list(rows[0])
    if dialect_name(session) != "postgresql":
        verb = "INSERT OR IGNORE" if skip_conflicts_on else "INSERT"
        sql = (
            f"{verb} INTO {_quote(table.name)} ({', '.join(_quote(n) for n in names)}) "
            f"VALUES ({', '.join('?' for _ in names)})"
        )
        _run(session, sql, _sqlite_rows(table, names, rows), many=True)
        return None
    # Identifiers come from our own table metadata, quoted; values travel as bound arrays.
    sql = (
        f"INSERT INTO {_quote(table.name)} ({', '.join(_quote(n) for n in names)}) "
        f"SELECT {_select_list(table, names)} FROM {_unnest(table, names)}"
    )
    if skip_conflicts_on:
        sql += f" ON CONFLICT ({', '.join(_quote(n) for n in skip_conflicts_on)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {_quote(returning)}"
    result = _run(session, sql, _arrays(table, names, rows), many=False)
    return [row[0] for row in result] if returning else None


def bulk_update(session: Session, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Update each row (matched on ``key``) with its other values, in one statement."""
    if not rows:
        return
    names = list(rows[0])
    columns = [n for n in names if n != key]
    if dialect_name(session) != "postgresql":
        sets = ", ".join(f"{_quote(n)} = ?" for n in columns)
        sql = f"UPDATE {_quote(table.name)} SET {sets} WHERE {_quote(key)} = ?"
        _run(session, sql, _sqlite_rows(table, [*columns, key], rows), many=True)
        return
    sets = ", ".join(f"{_quote(n)} = {_value_expr(table, n)}" for n in columns)
    sql = (
        f"UPDATE {_quote(table.name)} AS t SET {sets} FROM {_unnest(table, names)} "
        f"WHERE t.{_quote(key)} = v.{_quote(key)}"
    )
    _run(session, sql, _arrays(table, names, rows), many=False)
