"""Routing rules (order, continue, team_from_tag, default), group keys, policies, silences, quiet hours."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from app.pipeline.route import (
    ActiveSilence,
    ChannelRef,
    Facts,
    Route,
    RoutingTable,
    group_key,
    held_by_quiet_hours,
    quiet_hours_end,
    route,
    silence_for,
    wants,
)
from app.pipeline.route_spec import Matchers, Policy, QuietHours, RuleSpec, TeamSpec

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

FACTS = Facts(
    finding_id="f1",
    source="guardduty",
    type="S3/PublicRead",
    severity=80.0,
    score=72.0,
    account_id="123456789012",
    region="eu-west-1",
    resource_type="AwsS3Bucket",
    resource_id="arn:aws:s3:::acme-invoices",
    repository=None,
    path=None,
    tags={"env": "prod", "owner": "Payments"},
)


def team(name: str, **kwargs: Any) -> TeamSpec:
    return TeamSpec.model_validate({"name": name, **kwargs})


def rule(name: str, **kwargs: Any) -> RuleSpec:
    return RuleSpec.model_validate({"name": name, **kwargs})


def table(*rules: RuleSpec, default: str | None = "platform", **teams: TeamSpec) -> RoutingTable:
    specs = {
        "payments": team("payments"),
        "security": team("security", policy={"group_by": ["team", "resource_id"], "min_severity": "high"}),
        "platform": team("platform", default=default == "platform"),
        **teams,
    }
    channels = [
        ChannelRef("c1", "payments-slack", "payments", "slack"),
        ChannelRef("c2", "payments-old", "payments", "slack", enabled=False),
        ChannelRef("c3", "security-slack", "security", "slack"),
    ]
    return RoutingTable(teams=specs, rules=list(rules), channels=channels)


def teams_of(routes: list[Route]) -> list[tuple[str, str]]:
    return [(r.team, r.routed_by) for r in routes]


def test_first_match_wins() -> None:
    t = table(
        rule("s3-prod", match={"type": "S3/*", "tags": ["env=prod"]}, team="payments"),
        rule("all-s3", match={"type": "S3/*"}, team="security"),
    )
    routes = route(FACTS, t)
    assert teams_of(routes) == [("payments", "rule:s3-prod")]
    assert routes[0].rule == "s3-prod"


def test_disabled_rules_are_skipped() -> None:
    t = table(
        rule("s3-prod", match={"type": "S3/*"}, team="payments", enabled=False),
        rule("all-s3", match={"type": "S3/*"}, team="security"),
    )
    assert teams_of(route(FACTS, t)) == [("security", "rule:all-s3")]


def test_continue_adds_later_matches_once_per_team() -> None:
    t = table(
        rule("audit", match={"severity_min": "high"}, team="security", **{"continue": True}),
        rule("again", match={"type": "S3/*"}, team="security", **{"continue": True}),
        rule("s3", match={"type": "S3/*"}, team="payments"),
        rule("never", match={}, team="platform"),
    )
    assert teams_of(route(FACTS, t)) == [("security", "rule:audit"), ("payments", "rule:s3")]


def test_team_from_tag_lowercased_with_fallback() -> None:
    t = table(rule("owner-tag", match={"region": "eu-*"}, team_from_tag="owner", team="platform"))
    assert teams_of(route(FACTS, t)) == [("payments", "tag:owner")]
    unknown = replace(FACTS, tags={"owner": "nobody"})
    assert teams_of(route(unknown, t)) == [("platform", "rule:owner-tag")]
    missing = replace(FACTS, tags={})
    assert teams_of(route(missing, t)) == [("platform", "rule:owner-tag")]


def test_team_from_tag_without_fallback_does_not_route() -> None:
    t = table(
        rule("owner-tag", match={}, team_from_tag="owner"),
        rule("s3", match={"type": "S3/*"}, team="security"),
    )
    assert teams_of(route(FACTS, t)) == [("payments", "tag:owner")]
    assert teams_of(route(replace(FACTS, tags={}), t)) == [("security", "rule:s3")]


def test_no_match_goes_to_default_team_or_nowhere() -> None:
    t = table(rule("code", match={"repository": "acme/*"}, team="payments"))
    assert teams_of(route(FACTS, t)) == [("platform", "default")]
    assert t.default_team == "platform"
    nobody = table(rule("code", match={"repository": "acme/*"}, team="payments"), default=None)
    assert nobody.default_team is None
    assert route(FACTS, nobody) == []


def test_route_policy_is_team_policy_with_rule_override() -> None:
    t = table(rule("s3", match={}, team="security", policy={"group_wait": "1m", "events": ["new"]}))
    policy = route(FACTS, t)[0].policy
    assert policy.group_wait == 60.0 and policy.events == ["new"]
    assert policy.min_severity == "high" and policy.group_by == ["team", "resource_id"]  # from the team


def test_channels_of_lists_enabled_channels_only() -> None:
    t = table()
    assert [c.name for c in t.channels_of("payments")] == ["payments-slack"]
    assert t.channels_of("platform") == []


def test_group_key_labels_and_length() -> None:
    r = Route(
        "payments", "rule:s3", Policy(group_by=["team", "type", "severity", "finding", "repository"]), "s3"
    )
    key, labels = group_key(FACTS, r)
    assert key == "team=payments|type=S3/PublicRead|severity=high|finding=f1|repository="
    assert labels == {
        "team": "payments",
        "type": "S3/PublicRead",
        "severity": "high",
        "finding": "f1",
        "repository": "",
    }
    piped = replace(FACTS, type="a|b")
    assert group_key(piped, r)[0].startswith("team=payments|type=a\\|b|")
    long_a, _ = group_key(replace(FACTS, type="x" * 600 + "a"), r)
    long_b, _ = group_key(replace(FACTS, type="x" * 600 + "b"), r)
    assert len(long_a) == len(long_b) == 512 and long_a != long_b
    assert group_key(replace(FACTS, type="x" * 600 + "a"), r)[0] == long_a  # stable


def test_wants_says_why_not() -> None:
    policy = Policy(min_severity="medium", min_score=40)
    assert wants(policy, "new", FACTS) is None
    assert wants(policy, "resolved", FACTS) == (
        "event 'resolved' is not in this policy's events [new, regressed, escalated, reminder]"
    )
    low = replace(FACTS, severity=25.0)
    assert wants(policy, "new", low) == "severity 25 (low) below min_severity medium"
    assert wants(policy, "new", replace(FACTS, score=12.0)) == "score 12 below min_score 40"
    medium = replace(FACTS, severity=55.0)
    assert wants(policy, "reminder", medium) == "reminders only at or above high; severity 55 (medium)"
    assert wants(policy, "reminder", FACTS) is None
    assert wants(policy, "reminder", replace(FACTS, status="acknowledged")) is not None
    assert wants(policy, "new", replace(FACTS, status="suppressed")) == "the finding is suppressed"


def silence(sid: str, start: timedelta, end: timedelta, **match: Any) -> ActiveSilence:
    return ActiveSilence(
        id=sid,
        matchers=Matchers.model_validate(match),
        finding_id=None,
        starts_at=NOW + start,
        ends_at=NOW + end,
        reason=f"reason {sid}",
        created_by="alice",
    )


def test_silences_active_expired_future() -> None:
    hour = timedelta(hours=1)
    active = silence("active", -hour, hour, type="S3/*")
    expired = silence("expired", -2 * hour, -hour, type="S3/*")
    future = silence("future", hour, 2 * hour, type="S3/*")
    other = silence("other", -hour, 3 * hour, type="IAM/*")
    assert silence_for(FACTS, [expired, future, other], NOW) is None
    assert silence_for(FACTS, [expired, active, future, other], NOW) is active
    assert silence_for(FACTS, [active], NOW + hour) is None  # ends_at is exclusive
    assert silence_for(FACTS, [future], NOW + hour) is future  # starts_at is inclusive
    longer = silence("longer", -hour, 5 * hour, tags=["env=prod"])
    assert silence_for(FACTS, [active, longer], NOW) is longer  # the one that ends last


def test_silence_for_one_finding() -> None:
    one = replace(silence("one", -timedelta(hours=1), timedelta(hours=1)), finding_id="f1")
    assert silence_for(FACTS, [one], NOW) is one
    assert silence_for(replace(FACTS, finding_id="f2"), [one], NOW) is None


PARIS = team("payments", timezone="Europe/Paris", quiet_hours={"start": "22:00", "end": "07:00"})


def paris(*args: int) -> datetime:
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo("Europe/Paris"))  # type: ignore[misc]


def test_quiet_hours_over_midnight_in_team_timezone() -> None:
    # 2026-01-15 22:30 Paris = 21:30 UTC (winter, UTC+1): quiet until 07:00 Paris = 06:00 UTC.
    assert quiet_hours_end(PARIS, paris(2026, 1, 15, 22, 30)) == datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
    assert quiet_hours_end(PARIS, paris(2026, 1, 16, 3, 0)) == datetime(2026, 1, 16, 6, 0, tzinfo=UTC)
    assert quiet_hours_end(PARIS, paris(2026, 1, 16, 7, 0)) is None
    assert quiet_hours_end(PARIS, paris(2026, 1, 15, 21, 59)) is None
    assert quiet_hours_end(PARIS, paris(2026, 1, 15, 12, 0)) is None
    assert quiet_hours_end(team("x"), NOW) is None


def test_quiet_hours_across_dst_change() -> None:
    # Night of 28-29 March 2026: Paris goes from UTC+1 to UTC+2 at 02:00 local.
    assert quiet_hours_end(PARIS, paris(2026, 3, 28, 23, 0)) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    # Night of 24-25 October 2026: back from UTC+2 to UTC+1.
    assert quiet_hours_end(PARIS, paris(2026, 10, 24, 23, 0)) == datetime(2026, 10, 25, 6, 0, tzinfo=UTC)
    # Summer: 07:00 Paris is 05:00 UTC; 21:30 UTC is 23:30 Paris, in the window.
    assert quiet_hours_end(PARIS, datetime(2026, 7, 1, 21, 30, tzinfo=UTC)) == datetime(
        2026, 7, 2, 5, 0, tzinfo=UTC
    )
    assert quiet_hours_end(PARIS, datetime(2026, 7, 1, 19, 30, tzinfo=UTC)) is None


def test_quiet_hours_days_are_the_day_the_window_starts() -> None:
    weekend = team(
        "payments",
        timezone="America/New_York",
        quiet_hours=QuietHours.model_validate({"start": "20:00", "end": "08:00", "days": ["fri", "sat"]}),
    )
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    friday_night = datetime(2026, 5, 15, 23, 0, tzinfo=ny)  # Friday
    saturday_early = datetime(2026, 5, 16, 6, 0, tzinfo=ny)  # in Friday's window
    sunday_early = datetime(2026, 5, 17, 6, 0, tzinfo=ny)  # in Saturday's window
    monday_early = datetime(2026, 5, 18, 6, 0, tzinfo=ny)  # Sunday's window does not exist
    thursday_night = datetime(2026, 5, 14, 23, 0, tzinfo=ny)
    assert quiet_hours_end(weekend, friday_night) == datetime(2026, 5, 16, 8, 0, tzinfo=ny)
    assert quiet_hours_end(weekend, saturday_early) == datetime(2026, 5, 16, 8, 0, tzinfo=ny)
    assert quiet_hours_end(weekend, sunday_early) == datetime(2026, 5, 17, 8, 0, tzinfo=ny)
    assert quiet_hours_end(weekend, monday_early) is None
    assert quiet_hours_end(weekend, thursday_night) is None


def test_daytime_window() -> None:
    lunch = team("payments", timezone="Asia/Tokyo", quiet_hours={"start": "12:00", "end": "13:00"})
    assert quiet_hours_end(lunch, datetime(2026, 1, 1, 3, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, 4, 0, tzinfo=UTC
    )
    assert quiet_hours_end(lunch, datetime(2026, 1, 1, 4, 0, tzinfo=UTC)) is None


def test_critical_findings_are_never_held() -> None:
    night = paris(2026, 1, 15, 23, 0)
    assert held_by_quiet_hours(PARIS, replace(FACTS, severity=89.9), night) is not None
    assert held_by_quiet_hours(PARIS, replace(FACTS, severity=90.0), night) is None
    assert held_by_quiet_hours(PARIS, replace(FACTS, severity=89.9), paris(2026, 1, 15, 12, 0)) is None
