"""Where each polled source stopped: one row per service, account and region.

``position`` is the last ``UpdatedAt`` stored and ``boundary_ids`` the ids already stored at exactly that
time, so the next pull can ask the service for ``updatedAt >= position`` (no finding updated in the same
millisecond is skipped) and still drop what it already has. The row also holds a lease so that one pull
at a time works on a stream, whichever process runs it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from app.models.types import JSONType, UTCDateTime


class SourceCursor(SQLModel, table=True):
    __tablename__ = "source_cursors"

    service: str = Field(sa_column=Column(String(32), primary_key=True))
    account: str = Field(sa_column=Column(String(64), primary_key=True))
    region: str = Field(sa_column=Column(String(32), primary_key=True))
    position: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    boundary_ids: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    lease_owner: str | None = Field(default=None, sa_column=Column(String(128)))
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
