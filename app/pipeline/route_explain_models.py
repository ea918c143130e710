"""The answer of the routing explain API: what was tried, where a finding goes, and what would be sent.

Pydantic models (they are the API response) and the plain history record the API passes in; the logic
that fills them is ``route_explain``. Pure: no SQL, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class NotificationHistory:
    """One notification already queued or sent for the finding (from the ``notifications`` table)."""

    channel: str
    event: str
    status: str
    sent_at: datetime | None = None
    due_at: datetime | None = None
    held_reason: str | None = None


class FactsOut(BaseModel):
    """The fields routing looked at."""

    finding_id: str | None = Field(description="The finding's id; null for a finding posted to explain.")
    source: str
    type: str
    severity: float
    severity_label: str
    score: float
    status: str
    account_id: str | None = None
    region: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    repository: str | None = None
    path: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class RuleTrial(BaseModel):
    """One ownership rule, in evaluation order."""

    position: int = Field(description="1-based place of the rule in the ordered list.")
    name: str
    outcome: Literal["matched", "no match", "matched, no team", "disabled", "not tried"] = Field(
        description="`not tried`: an earlier rule matched without `continue`; `matched, no team`: its "
        "`team_from_tag` tag is missing or names no team and it has no fallback `team`."
    )
    matched: bool = Field(description="The rule's matchers hold (false for disabled and untried rules).")
    reasons: list[str] = Field(
        description="What held (when it matched) or every condition that failed (when it did not)."
    )
    team: str | None = Field(None, description="The team this rule routed the finding to, if it did.")
    routed_by: str | None = None
    continue_: bool = Field(False, alias="continue", description="Later rules are tried after this one.")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ChannelVerdict(BaseModel):
    """Whether one channel would be told now, and why (not)."""

    channel: str = Field(description="The channel's name in Tocsin.")
    kind: str
    would_notify: bool
    why: str = Field(examples=["notifies after group_wait 30s", "quiet hours until 2026-03-11T06:00:00Z"])
    held_until: datetime | None = Field(
        None, description="When a silence or quiet hours stop holding it (then it is re-evaluated)."
    )


class RouteExplanation(BaseModel):
    """One team the finding goes to (several when rules use `continue`)."""

    team: str
    routed_by: str = Field(description="`rule:<name>`, `tag:<key>` (team taken from a tag) or `default`.")
    rule: str | None
    owner: bool = Field(description="The first route: the team stored on the finding.")
    policy: str = Field(description="The effective policy (team policy with the rule's override), in words.")
    group_key: str = Field(description="Findings sharing this key are sent together in one message.")
    group_labels: dict[str, str]
    channels: list[ChannelVerdict] = Field(description="Empty when the team has no enabled channel.")


class SilenceOut(BaseModel):
    id: str
    reason: str
    created_by: str | None
    starts_at: datetime
    ends_at: datetime


_EXAMPLE: dict[str, Any] = {
    "finding": {
        "finding_id": "0192c1d6a4f07e3b9c1d2e3f4a5b6c7d",
        "source": "guardduty",
        "type": "Policy:S3/BucketBlockPublicAccessDisabled",
        "severity": 55.0,
        "severity_label": "medium",
        "score": 61.5,
        "status": "open",
        "account_id": "123456789012",
        "region": "eu-west-1",
        "resource_type": "AwsS3Bucket",
        "resource_id": "arn:aws:s3:::acme-invoices",
        "repository": None,
        "path": None,
        "tags": {"env": "prod", "owner": "payments"},
    },
    "event": "new",
    "at": "2026-03-10T12:00:00Z",
    "rules": [
        {
            "position": 1,
            "name": "secrets",
            "outcome": "no match",
            "matched": False,
            "reasons": ["source 'guardduty' does not match 'gitleaks'"],
            "team": None,
            "routed_by": None,
            "continue": False,
        },
        {
            "position": 2,
            "name": "owner-tag",
            "outcome": "matched",
            "matched": True,
            "reasons": ["tag env=prod"],
            "team": "payments",
            "routed_by": "tag:owner",
            "continue": False,
        },
        {
            "position": 3,
            "name": "s3",
            "outcome": "not tried",
            "matched": False,
            "reasons": ["rule 'owner-tag' matched first and has no continue"],
            "team": None,
            "routed_by": None,
            "continue": False,
        },
    ],
    "routes": [
        {
            "team": "payments",
            "routed_by": "tag:owner",
            "rule": "owner-tag",
            "owner": True,
            "policy": "events new, regressed, escalated, reminder; at least low, score 0; grouped by "
            "team, type; group_wait 30s, group_interval 5m, repeat_interval 1d",
            "group_key": "team=payments|type=Policy:S3/BucketBlockPublicAccessDisabled",
            "group_labels": {"team": "payments", "type": "Policy:S3/BucketBlockPublicAccessDisabled"},
            "channels": [
                {
                    "channel": "payments-alerts",
                    "kind": "slack",
                    "would_notify": True,
                    "why": "notifies after group_wait 30s",
                    "held_until": None,
                }
            ],
        }
    ],
    "owner": "payments",
    "silenced_by": None,
    "would_notify": True,
    "summary": [
        "Rule 'owner-tag' (2 of 3) matched: tag env=prod; the team comes from tag owner.",
        "1 rule before it did not match; 1 later rule was not tried ('owner-tag' has no continue).",
        "Owner: team payments (tag:owner).",
        "payments-alerts (slack) would be notified after group_wait 30s, in group "
        "team=payments|type=Policy:S3/BucketBlockPublicAccessDisabled.",
    ],
}


class Explanation(BaseModel):
    """How Tocsin routes one finding and whether it would notify now."""

    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    finding: FactsOut
    event: str = Field(description="The event evaluated: new, regressed, escalated, resolved or reminder.")
    at: datetime = Field(description="The instant evaluated (silences and quiet hours depend on it).")
    rules: list[RuleTrial] = Field(description="Every rule in order, with what happened to it.")
    routes: list[RouteExplanation] = Field(description="The teams it goes to; empty when no team owns it.")
    owner: str | None = Field(None, description="The team stored on the finding (the first route's).")
    silenced_by: SilenceOut | None = Field(None, description="The active silence covering it, if any.")
    would_notify: bool = Field(description="At least one channel would be notified.")
    summary: list[str] = Field(description="The same, in plain sentences.")
