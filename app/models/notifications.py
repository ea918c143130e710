"""The outbox: notification intents, the groups they are sent in, and the log of every delivery attempt.

An intent (``notifications``) is written in the same transaction as the finding change that causes it.
Intents join a group (one per channel and group key); the group is the unit a worker claims and sends,
so two workers never send the same group twice, and the group remembers its timers and thread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Column, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from app.models.types import BigIntId, JSONType, UTCDateTime


class NotificationGroup(SQLModel, table=True):
    """Findings of one channel that share a group key: the unit a worker claims (``claimed_until`` is its
    lease while it sends) and the memory of the group's thread, last message and failures. A group is due
    when one of its ``pending`` intents is (``notifications.due_at``), so no timer can be lost in a race
    between an ingest adding an intent and a worker finishing a send."""

    __tablename__ = "notification_groups"
    __table_args__ = (UniqueConstraint("channel_id", "group_key", name="uq_notification_groups_channel_key"),)

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    channel_id: str = Field(
        sa_column=Column(String(32), ForeignKey("channels.id", ondelete="CASCADE"), nullable=False)
    )
    group_key: str = Field(sa_column=Column(String(512), nullable=False))
    labels: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    team: str = Field(sa_column=Column(String(64), nullable=False))
    group_interval: float = Field(default=300.0, sa_column=Column(Float, nullable=False))
    """Seconds between two messages of this group (the policy's ``group_interval`` when last enqueued)."""
    last_sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    thread_ref: str | None = Field(default=None, sa_column=Column(String(256)))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    claimed_by: str | None = Field(default=None, sa_column=Column(String(128)))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    """Failed attempts in a row; reset on success."""
    first_failed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Notification(SQLModel, table=True):
    """One reason to tell one channel about one finding (new, regressed, escalated, resolved, reminder).

    status: ``pending`` (due at ``due_at`` with the rest of its group), ``held`` (silenced or quiet hours:
    ``held_reason``, re-evaluated at ``due_at``), ``sent``, ``dead`` (gave up: ``last_error``), ``dropped`` (no longer
    relevant when due, e.g. the finding was resolved before a reminder went out: ``held_reason``).
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_group_status", "group_id", "status"),
        Index("ix_notifications_status_due", "status", "due_at"),
        Index("ix_notifications_finding", "finding_id", "created_at"),
    )

    id: str = Field(sa_column=Column(String(32), primary_key=True))
    finding_id: str = Field(
        sa_column=Column(String(32), ForeignKey("findings.id", ondelete="CASCADE"), nullable=False)
    )
    group_id: str = Field(
        sa_column=Column(String(32), ForeignKey("notification_groups.id", ondelete="CASCADE"), nullable=False)
    )
    channel_id: str = Field(sa_column=Column(String(32), nullable=False, index=True))
    team: str = Field(sa_column=Column(String(64), nullable=False, index=True))
    event: str = Field(sa_column=Column(String(16), nullable=False))
    routed_by: str | None = Field(default=None, sa_column=Column(String(64)))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    held_reason: str | None = Field(default=None, sa_column=Column(Text))
    silence_id: str | None = Field(default=None, sa_column=Column(String(32), index=True))
    """The silence holding it, so expiring that silence early releases it at once."""
    due_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    last_attempt_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    delivery_id: int | None = Field(default=None, sa_column=Column(BigIntId))
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class Delivery(SQLModel, table=True):
    """The notification log: every attempt to send a group's message, with what the channel answered."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_group", "group_id", "started_at"),)

    id: int | None = Field(default=None, sa_column=Column(BigIntId, primary_key=True, autoincrement=True))
    message_id: str = Field(sa_column=Column(String(32), nullable=False, unique=True))
    group_id: str = Field(
        sa_column=Column(String(32), ForeignKey("notification_groups.id", ondelete="CASCADE"), nullable=False)
    )
    channel_id: str = Field(sa_column=Column(String(32), nullable=False))
    worker: str = Field(sa_column=Column(String(128), nullable=False))
    started_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime()))
    ok: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    retryable: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    status_code: int | None = Field(default=None, sa_column=Column(Integer))
    detail: str | None = Field(default=None, sa_column=Column(Text))
    notification_ids: list[str] = Field(default_factory=list, sa_column=Column(JSONType, nullable=False))
    finding_count: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    digest: bool = Field(default=False, sa_column=Column(Boolean, nullable=False))
    thread_ref: str | None = Field(default=None, sa_column=Column(String(256)))
    extra: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONType))
