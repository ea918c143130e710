"""explain(): pure cases the API tests do not reach (continue, history, undefined teams)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from app.pipeline.route import ChannelRef, RoutingTable
from app.pipeline.route_explain import Explanation, NotificationHistory, explain
from app.pipeline.route_spec import RuleSpec, TeamSpec
from tests.pipeline.test_route import FACTS

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def table(*rules: dict[str, object]) -> RoutingTable:
    return RoutingTable(
        teams={"payments": TeamSpec(name="payments"), "security": TeamSpec(name="security")},
        rules=[RuleSpec.model_validate(r) for r in rules],
        channels=[
            ChannelRef("c1", "payments-alerts", "payments", "slack"),
            ChannelRef("c2", "payments-mail", "payments", "email"),
            ChannelRef("c3", "security-alerts", "security", "slack"),
        ],
    )


def test_continue_gives_several_routes_each_with_its_channels() -> None:
    t = table(
        {"name": "audit", "match": {"severity_min": "high"}, "team": "security", "continue": True},
        {"name": "s3", "match": {"type": "S3/*"}, "team": "payments"},
    )
    answer = explain(FACTS, t, NOW)
    assert [(r.team, r.owner) for r in answer.routes] == [("security", True), ("payments", False)]
    assert [c.channel for c in answer.routes[1].channels] == ["payments-alerts", "payments-mail"]
    assert "Also routed to payments (rule:s3) (continue)." in answer.summary
    assert answer.rules[0].reasons == ["severity 80 (high) is at least high"]


def test_history_pending_held_and_reminders() -> None:
    t = table({"name": "s3", "match": {"type": "S3/*"}, "team": "payments"})
    history = [
        NotificationHistory("payments-alerts", "new", "pending", due_at=NOW + timedelta(seconds=20)),
        NotificationHistory("payments-mail", "new", "held", held_reason="quiet hours until 07:00"),
    ]
    verdicts = explain(FACTS, t, NOW, history=history).routes[0].channels
    assert [(v.would_notify, v.why) for v in verdicts] == [
        (True, "already queued: sends at 2026-03-10T12:00:20Z with its group"),
        (False, "held: quiet hours until 07:00"),
    ]
    sent = [NotificationHistory("payments-alerts", "new", "sent", sent_at=NOW - timedelta(days=2))]
    reminder = explain(FACTS, t, NOW, "reminder", sent).routes[0].channels[0]
    assert reminder.would_notify  # a reminder repeats what was sent


def test_rule_naming_an_undefined_team_says_so() -> None:
    t = table({"name": "s3", "match": {"type": "S3/*"}, "team": "ghosts"})
    answer = explain(FACTS, t, NOW)
    assert answer.owner == "ghosts" and answer.routes[0].channels == []
    assert "Team ghosts is not defined; add it and a channel." in answer.summary
    assert "No channel for team ghosts: nobody there is told." in answer.summary


def test_team_from_tag_naming_no_team_falls_back_and_says_why() -> None:
    t = table({"name": "owner", "match": {}, "team_from_tag": "owner", "team": "security"})
    answer = explain(replace(FACTS, tags={"owner": "marketing"}), t, NOW)
    assert (
        answer.rules[0].reasons[-1] == "tag owner is 'marketing', which names no team: fallback team security"
    )
    assert answer.routes[0].routed_by == "rule:owner"


def test_example_in_the_schema_is_a_valid_answer() -> None:
    Explanation.model_validate(Explanation.model_json_schema()["examples"][0])
