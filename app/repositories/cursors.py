"""SQL for the cursors of polled sources: read, advance (an upsert that never moves back), lease.

A cursor is advanced in the transaction that stores its page of findings, so a crash can repeat a page
but never skip one. The lease (owner + expiry on the same row) lets one process at a time pull a stream;
an expired lease is free, so a crashed puller holds nothing for longer than its lease.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.orm import Session

from app.models import SourceCursor
from app.repositories.dialect import insert_for

cursors_t = SourceCursor.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class CursorKey:
    service: str
    account: str
    region: str


@dataclass(slots=True)
class CursorState:
    position: datetime | None = None
    boundary_ids: list[str] = field(default_factory=list)
    lease_owner: str | None = None
    lease_until: datetime | None = None


def _where(key: CursorKey) -> ColumnElement[bool]:
    return and_(
        cursors_t.c.service == key.service,
        cursors_t.c.account == key.account,
        cursors_t.c.region == key.region,
    )


def get(session: Session, key: CursorKey) -> CursorState | None:
    row = session.execute(
        select(
            cursors_t.c.position, cursors_t.c.boundary_ids, cursors_t.c.lease_owner, cursors_t.c.lease_until
        ).where(_where(key))
    ).first()
    if row is None:
        return None
    return CursorState(row.position, list(row.boundary_ids or []), row.lease_owner, row.lease_until)


def set(session: Session, key: CursorKey, position: datetime, boundary_ids: list[str], now: datetime) -> None:
    """Upsert the position; a position older than the stored one is ignored (the cursor never moves back)."""
    stmt = insert_for(session, cursors_t).values(
        service=key.service,
        account=key.account,
        region=key.region,
        position=position,
        boundary_ids=boundary_ids,
        updated_at=now,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[cursors_t.c.service, cursors_t.c.account, cursors_t.c.region],
        set_={
            "position": stmt.excluded.position,
            "boundary_ids": stmt.excluded.boundary_ids,
            "updated_at": stmt.excluded.updated_at,
        },
        where=or_(cursors_t.c.position.is_(None), cursors_t.c.position <= stmt.excluded.position),
    )
    session.execute(stmt)


def claim(session: Session, key: CursorKey, owner: str, now: datetime, until: datetime) -> CursorState:
    """Take (or renew) the stream's lease when it is free, expired or already ours.

    Returns the row as it is after the attempt: ``lease_owner == owner`` means the lease is held.
    """
    session.execute(
        insert_for(session, cursors_t)
        .values(service=key.service, account=key.account, region=key.region, boundary_ids=[], updated_at=now)
        .on_conflict_do_nothing(index_elements=[cursors_t.c.service, cursors_t.c.account, cursors_t.c.region])
    )
    session.execute(
        update(cursors_t)
        .where(
            _where(key),
            or_(
                cursors_t.c.lease_until.is_(None),
                cursors_t.c.lease_until <= now,
                cursors_t.c.lease_owner == owner,
            ),
        )
        .values(lease_owner=owner, lease_until=until)
    )
    state = get(session, key)
    assert state is not None  # inserted above
    return state


def extend(session: Session, key: CursorKey, owner: str, until: datetime) -> None:
    session.execute(
        update(cursors_t).where(_where(key), cursors_t.c.lease_owner == owner).values(lease_until=until)
    )


def release(session: Session, key: CursorKey, owner: str) -> None:
    session.execute(
        update(cursors_t)
        .where(_where(key), cursors_t.c.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )
