"""SQL for API tokens (hashes only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import ApiToken


def by_hash(session: Session, token_hash: str) -> ApiToken | None:
    return session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash)).scalar_one_or_none()  # type: ignore[arg-type]


def by_name(session: Session, name: str) -> ApiToken | None:
    return session.execute(select(ApiToken).where(ApiToken.name == name)).scalar_one_or_none()  # type: ignore[arg-type]


def all_tokens(session: Session) -> Sequence[ApiToken]:
    return session.execute(select(ApiToken).order_by(ApiToken.created_at)).scalars().all()  # type: ignore[arg-type]


def add(session: Session, token: ApiToken) -> None:
    session.add(token)
    session.flush()


def touch(session: Session, token_id: str, now: datetime) -> None:
    session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now))  # type: ignore[arg-type]


def has_active_admin(session: Session, now: datetime) -> bool:
    for token in all_tokens(session):
        expired = token.expires_at is not None and token.expires_at <= now
        if "admin" in token.scopes and token.revoked_at is None and not expired:
            return True
    return False
