"""Who owns what: teams, their channels, ordered ownership rules, and silences.

Config documents (matchers, policies, quiet hours, channel options) are stored as validated JSON in the
shape of ``app.pipeline.route_spec``; credentials never are (a channel names its secret, ``secret_ref``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from app.models.types import JSONType, UTCDateTime


class Team(SQLModel, table=True):
    __tablename__ = "teams"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    description: str = Field(default="", sa_column=Column(Text, nullable=False))
    timezone: str = Field(default="UTC", sa_column=Column(String(64), nullable=False))
    quiet_hours: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    policy: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    is_default: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class NotificationChannel(SQLModel, table=True):
    __tablename__ = "channels"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    team_id: str = Field(
        sa_column=Column(String(32), ForeignKey("teams.id", ondelete="RESTRICT"), nullable=False, index=True)
    )
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    target: str = Field(sa_column=Column(Text, nullable=False))
    secret_ref: str | None = Field(default=None, sa_column=Column(String(64)))
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class RoutingRule(SQLModel, table=True):
    """One ownership rule; ``position`` orders them (first match wins unless ``continue_matching``)."""

    __tablename__ = "routing_rules"

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    name: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    position: int = Field(sa_column=Column(Integer, nullable=False, index=True))
    matchers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    team: str | None = Field(default=None, sa_column=Column(String(64)))
    team_from_tag: str | None = Field(default=None, sa_column=Column(String(128)))
    continue_matching: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    policy: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Silence(SQLModel, table=True):
    """Findings matching a silence are stored, routed and visible, but not notified while it is active.
    Deleting a silence expires it (``ends_at`` = now); expired silences stay listed."""

    __tablename__ = "silences"
    __table_args__ = (Index("ix_silences_ends_at", "ends_at"),)

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    matchers: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    finding_id: str | None = Field(default=None, sa_column=Column(String(32), index=True))
    starts_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    ends_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(sa_column=Column(String(256), nullable=False))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    updated_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
