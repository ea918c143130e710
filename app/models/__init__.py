"""SQLModel tables. Importing this package registers every table on ``SQLModel.metadata``."""

from app.models.audit import AuditRecord
from app.models.cursors import SourceCursor
from app.models.findings import FINDINGS_TAGS_GIN, Finding, FindingAlias, FindingEvent
from app.models.notifications import Delivery, Notification, NotificationGroup
from app.models.routing import NotificationChannel, RoutingRule, Silence, Team
from app.models.tokens import ApiToken

__all__ = [
    "FINDINGS_TAGS_GIN",
    "ApiToken",
    "AuditRecord",
    "Delivery",
    "Finding",
    "FindingAlias",
    "FindingEvent",
    "Notification",
    "NotificationChannel",
    "NotificationGroup",
    "RoutingRule",
    "Silence",
    "SourceCursor",
    "Team",
]
