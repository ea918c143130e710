"""Append-only audit trail of changes made through the API and the CLI."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from app.models.types import BigIntId, JSONType, UTCDateTime


class AuditRecord(SQLModel, table=True):
    __tablename__ = "audit_log"

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True, autoincrement=True))
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    action: str = Field(sa_column=Column(String(64), nullable=False))
    target_type: str = Field(sa_column=Column(String(32), nullable=False))
    target_id: str = Field(sa_column=Column(String(128), nullable=False, index=True))
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    request_id: str | None = Field(default=None, sa_column=Column(String(64)))
