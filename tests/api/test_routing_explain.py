"""POST /v1/routing/explain and GET /v1/findings/{id}/routing on SQLite and PostgreSQL: the answer says
which rules were tried and why, where the finding goes, and why a channel would or would not be told."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from app.clock import new_id, utcnow
from app.db import unit_of_work
from app.models.notifications import Notification, NotificationGroup
from app.models.routing import NotificationChannel, RoutingRule, Silence, Team
from app.pipeline.route_explain import Explanation
from tests.helpers import finding, post

ROUTING_TABLES = (
    "deliveries",
    "notifications",
    "notification_groups",
    "channels",
    "silences",
    "routing_rules",
    "teams",
)

S3_FINDING = finding(
    source="guardduty",
    type="Policy:S3/BucketBlockPublicAccessDisabled",
    title="Public access block disabled on acme-invoices",
    severity="medium",
    resource={
        "type": "AwsS3Bucket",
        "id": "arn:aws:s3:::acme-invoices",
        "account_id": "123456789012",
        "region": "eu-west-1",
        "tags": {"env": "prod", "owner": "payments"},
    },
)


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ROUTING_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
def routing(engine: Engine) -> Iterator[dict[str, str]]:
    """Two teams (platform is the default), one Slack channel each, three rules, one silence."""
    _clear(engine)
    now = utcnow()
    stamps = {"created_at": now, "updated_at": now}
    ids = {
        "payments": new_id(),
        "platform": new_id(),
        "payments-alerts": new_id(),
        "platform-alerts": new_id(),
    }
    with unit_of_work(engine) as session:
        session.add_all(
            [
                Team(
                    id=ids["payments"],
                    name="payments",
                    timezone="Europe/Paris",
                    policy={"min_severity": "low", "group_by": ["team", "type"]},
                    **stamps,
                ),
                Team(id=ids["platform"], name="platform", policy={}, is_default=True, **stamps),
            ]
        )
        session.flush()
        session.add_all(
            [
                NotificationChannel(
                    id=ids["payments-alerts"],
                    name="payments-alerts",
                    team_id=ids["payments"],
                    kind="slack",
                    target="C0PAYMENTS",
                    **stamps,
                ),
                NotificationChannel(
                    id=ids["platform-alerts"],
                    name="platform-alerts",
                    team_id=ids["platform"],
                    kind="slack",
                    target="C0PLATFORM",
                    **stamps,
                ),
                RoutingRule(
                    id=new_id(),
                    name="secrets",
                    position=1,
                    matchers={"source": ["gitleaks", "trufflehog"]},
                    team="platform",
                    **stamps,
                ),
                RoutingRule(
                    id=new_id(),
                    name="owner-tag",
                    position=2,
                    matchers={"tags": ["env=prod"]},
                    team_from_tag="owner",
                    **stamps,
                ),
                RoutingRule(
                    id=new_id(),
                    name="s3",
                    position=3,
                    matchers={"type": ["*S3/*"]},
                    team="platform",
                    policy={"group_wait": "1m"},
                    **stamps,
                ),
                RoutingRule(
                    id=new_id(),
                    name="old",
                    position=4,
                    matchers={},
                    team="payments",
                    enabled=False,
                    **stamps,
                ),
                Silence(
                    id="sil-iam",
                    matchers={"type": ["IAM/*"]},
                    starts_at=now - timedelta(hours=1),
                    ends_at=now + timedelta(hours=2),
                    reason="IAM clean-up in progress",
                    created_by="alice",
                    **stamps,
                ),
            ]
        )
    yield ids
    _clear(engine)


def explain(client: Any, body: dict[str, Any]) -> Explanation:
    resp = client.post("/v1/routing/explain", json=body)
    assert resp.status_code == 200, resp.text
    return Explanation.model_validate(resp.json())


NOON = "2026-03-10T12:00:00Z"


def test_explain_says_which_rule_matched_and_why(client: Any, routing: dict[str, str]) -> None:
    answer = explain(client, {"finding": S3_FINDING, "at": NOON})
    assert [(r.name, r.outcome) for r in answer.rules] == [
        ("secrets", "no match"),
        ("owner-tag", "matched"),
        ("s3", "not tried"),
        ("old", "disabled"),
    ]
    assert answer.rules[0].reasons == ["source 'guardduty' matches none of ['gitleaks', 'trufflehog']"]
    assert answer.rules[1].reasons == ["tag env=prod", "the team comes from tag owner"]
    assert answer.rules[2].reasons == ["rule 'owner-tag' matched first and has no continue"]
    assert answer.owner == "payments"
    (only,) = answer.routes
    assert (only.team, only.routed_by, only.rule, only.owner) == ("payments", "tag:owner", "owner-tag", True)
    assert only.group_key == "team=payments|type=Policy:S3/BucketBlockPublicAccessDisabled"
    assert [(c.channel, c.would_notify, c.why) for c in only.channels] == [
        ("payments-alerts", True, "notifies after group_wait 30s")
    ]
    assert answer.would_notify and answer.silenced_by is None
    assert answer.finding.score > 0 and answer.finding.severity_label == "medium"
    assert answer.summary == [
        "Rule 'owner-tag' (2 of 4) matched: tag env=prod; the team comes from tag owner.",
        "1 rule did not match; 1 later rule not tried ('owner-tag' has no continue); 1 rule disabled.",
        "Owner: team payments (tag:owner).",
        "payments-alerts (slack) would be notified after group_wait 30s, in group "
        "team=payments|type=Policy:S3/BucketBlockPublicAccessDisabled.",
    ]


def test_rule_policy_override_and_tag_fallback(client: Any, routing: dict[str, str]) -> None:
    """Without the owner tag the tag rule matches but routes nowhere; the next rule takes it with its
    own group_wait."""
    untagged = {**S3_FINDING, "resource": {**S3_FINDING["resource"], "tags": {"env": "prod"}}}
    answer = explain(client, {"finding": untagged, "score": 50, "at": NOON})
    assert [(r.name, r.outcome) for r in answer.rules][:3] == [
        ("secrets", "no match"),
        ("owner-tag", "matched, no team"),
        ("s3", "matched"),
    ]
    assert answer.rules[1].reasons[-1] == "tag owner is missing and the rule has no fallback team"
    assert answer.routes[0].routed_by == "rule:s3"
    assert answer.routes[0].channels[0].why == "notifies after group_wait 1m"
    assert "group_wait 1m" in answer.routes[0].policy
    assert answer.finding.score == 50


def test_silenced_finding_says_by_what_and_until_when(client: Any, routing: dict[str, str]) -> None:
    iam = finding(source="guardduty", type="IAM/RootCredentialUsage", severity="high")
    answer = explain(client, {"finding": iam})
    assert answer.owner == "platform" and answer.routes[0].routed_by == "default"
    assert answer.silenced_by is not None and answer.silenced_by.id == "sil-iam"
    verdict = answer.routes[0].channels[0]
    assert not verdict.would_notify and verdict.held_until is not None
    assert verdict.why.startswith("silenced by sil-iam (IAM clean-up in progress) until ")
    assert "No rule routed it: the default team platform owns it." in answer.summary
    assert not answer.would_notify


def test_quiet_hours_in_team_timezone_hold_all_but_critical(
    client: Any, routing: dict[str, str], engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE teams SET quiet_hours = :q WHERE name = 'payments'"),
            {"q": '{"start": "22:00", "end": "07:00"}'},
        )
    night = "2026-03-10T23:30:00Z"  # 00:30 in Paris
    held = explain(client, {"finding": S3_FINDING, "at": night}).routes[0].channels[0]
    assert not held.would_notify
    assert held.why == "quiet hours until 2026-03-11T06:00:00Z (not critical)"
    critical = explain(client, {"finding": {**S3_FINDING, "severity": "critical"}, "at": night})
    assert critical.routes[0].channels[0].would_notify


def test_below_threshold_and_event_not_in_policy(client: Any, routing: dict[str, str]) -> None:
    info = explain(client, {"finding": {**S3_FINDING, "severity": "informational"}})
    assert info.routes[0].channels[0].why == (
        "below threshold: severity 0 (informational) below min_severity low"
    )
    resolved = explain(client, {"finding": S3_FINDING, "event": "resolved"})
    assert resolved.routes[0].channels[0].why.startswith("event 'resolved' is not in this policy's events")


def test_no_team_at_all(client: Any, routing: dict[str, str], engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE teams SET is_default = :f"), {"f": False})
    answer = explain(client, {"finding": finding(severity="high")})
    assert answer.routes == [] and answer.owner is None and not answer.would_notify
    assert (
        answer.summary[-1] == "No team: no rule matched and there is no default team, so nobody is notified."
    )


def test_explain_validates_the_finding(client: Any, routing: dict[str, str]) -> None:
    resp = client.post("/v1/routing/explain", json={"finding": {**S3_FINDING, "severity": "huge"}})
    assert resp.status_code == 422
    resp = client.post("/v1/routing/explain", json={"finding": S3_FINDING, "event": "maybe"})
    assert resp.status_code == 422


def test_stored_finding_with_history(client: Any, routing: dict[str, str], engine: Engine) -> None:
    fid = post(client, S3_FINDING).json()["results"][0]["id"]
    sent_at = datetime(2026, 3, 10, 9, 15, tzinfo=UTC)
    with unit_of_work(engine) as session:
        session.execute(text("DELETE FROM notifications WHERE finding_id = :id"), {"id": fid})
        group = NotificationGroup(
            id=new_id(),
            channel_id=routing["payments-alerts"],
            group_key="team=payments|type=x",
            team="payments",
            created_at=sent_at,
        )
        session.add(group)
        session.flush()
        session.add(
            Notification(
                id=new_id(),
                finding_id=fid,
                group_id=group.id,
                channel_id=routing["payments-alerts"],
                team="payments",
                event="new",
                status="sent",
                due_at=sent_at,
                sent_at=sent_at,
                created_at=sent_at,
            )
        )
    resp = client.get(f"/v1/findings/{fid}/routing")
    assert resp.status_code == 200, resp.text
    answer = Explanation.model_validate(resp.json())
    assert answer.finding.finding_id == fid and answer.event == "new"
    verdict = answer.routes[0].channels[0]
    assert not verdict.would_notify
    assert verdict.why == "already notified at 2026-03-10T09:15:00Z via payments-alerts"
    reminder = Explanation.model_validate(client.get(f"/v1/findings/{fid}/routing?event=reminder").json())
    assert reminder.routes[0].channels[0].why == "reminders only at or above high; severity 55 (medium)"


def test_stored_finding_unknown_is_404(client: Any, routing: dict[str, str]) -> None:
    resp = client.get("/v1/findings/nope/routing")
    assert resp.status_code == 404 and "nope" in resp.json()["detail"]


def test_openapi_documents_both_endpoints(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    post_op = paths["/v1/routing/explain"]["post"]
    get_op = paths["/v1/findings/{finding_id}/routing"]["get"]
    assert post_op["summary"] and get_op["summary"]
    assert {"401", "403", "422"} <= set(post_op["responses"]) and "404" in get_op["responses"]
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    example = schemas["Explanation"]["examples"][0]
    Explanation.model_validate(example)
