"""Ingest routes what changed and queues notifications in the same transaction (the outbox), on SQLite and
PostgreSQL: owners are stored on findings, a scanner's burst becomes one group per group key, repeats
queue nothing, and resolution, regression, escalation, re-scans and reminders queue the right events."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from app.clock import new_id, utcnow
from app.db import unit_of_work
from app.delivery.reminders import enqueue_reminders
from app.models.notifications import Notification, NotificationGroup
from app.models.routing import NotificationChannel, RoutingRule, Silence, Team
from app.pipeline.route_spec import Policy
from tests.helpers import finding, post


def _setup(engine: Engine, payments_policy: dict[str, Any] | None = None) -> dict[str, str]:
    now = utcnow()
    stamps = {"created_at": now, "updated_at": now}
    ids = {name: new_id() for name in ("payments", "platform", "pay-slack", "pay-mail", "plat-slack")}
    policy = Policy.model_validate(payments_policy or {}).model_dump(mode="json")
    with unit_of_work(engine) as session:
        session.add(Team(id=ids["payments"], name="payments", policy=policy, **stamps))
        session.add(Team(id=ids["platform"], name="platform", policy={}, is_default=True, **stamps))
        session.flush()
        for name, team, kind in (
            ("pay-slack", "payments", "slack"),
            ("pay-mail", "payments", "email"),
            ("plat-slack", "platform", "slack"),
        ):
            session.add(
                NotificationChannel(
                    id=ids[name], name=name, team_id=ids[team], kind=kind, target="C0PAY", **stamps
                )
            )
        session.add(
            RoutingRule(
                id=new_id(),
                name="payments-by-tag",
                position=1,
                matchers={"tags": ["owner=payments"]},
                team="payments",
                **stamps,
            )
        )
    return ids


def _paid(n: int, **overrides: Any) -> dict[str, Any]:
    base = finding(
        source="trivy",
        type=f"CVE-2026-{n % 3:04d}",
        title=f"vulnerable package {n}",
        severity="high",
        resource={"type": "container_image", "id": f"registry/pay:{n}", "tags": {"owner": "payments"}},
    )
    base.update(overrides)
    return base


def _notifications(engine: Engine) -> list[Notification]:
    with unit_of_work(engine) as session:
        return list(session.scalars(select(Notification)).all())


def test_a_burst_of_findings_is_owned_and_queued_in_one_group_per_key(client: Any, engine: Engine) -> None:
    ids = _setup(engine)
    answer = post(client, *[_paid(i) for i in range(500)])
    assert answer.status_code == 200, answer.text

    page = client.get("/v1/findings", params={"team": "payments", "limit": 500}).json()
    assert len(page["items"]) == 500
    assert {item["routed_by"] for item in page["items"]} == {"rule:payments-by-tag"}

    queued = _notifications(engine)
    # Two channels for payments, every finding new: 1,000 intents...
    assert Counter(n.channel_id for n in queued) == {ids["pay-slack"]: 500, ids["pay-mail"]: 500}
    assert {n.event for n in queued} == {"new"} and {n.status for n in queued} == {"pending"}
    with unit_of_work(engine) as session:
        groups = session.scalars(select(NotificationGroup)).all()
    # ...in one group per (channel, team, type): 3 types x 2 channels = 6 messages, not 1,000.
    assert len(groups) == 6
    assert {g.labels["team"] for g in groups} == {"payments"}


def test_unowned_findings_go_to_the_default_team(client: Any, engine: Engine) -> None:
    ids = _setup(engine)
    post(client, finding(resource={"type": "container_image", "id": "registry/other:1"}))
    item = client.get("/v1/findings").json()["items"][0]
    assert (item["team"], item["routed_by"]) == ("platform", "default")
    assert [n.channel_id for n in _notifications(engine)] == [ids["plat-slack"]]


def test_repeats_queue_nothing_and_a_resolution_is_told_when_the_policy_wants_it(
    client: Any, engine: Engine
) -> None:
    _setup(engine, {"events": ["new", "regressed", "resolved"]})
    post(client, _paid(1))
    post(client, _paid(1))
    post(client, _paid(1))
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2}

    post(client, _paid(1, status="resolved"))
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2, "resolved": 2}

    post(client, _paid(1))  # back after resolution
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2, "resolved": 2, "regressed": 2}


def test_a_policy_without_resolved_events_queues_none(client: Any, engine: Engine) -> None:
    _setup(engine)  # default events: new, regressed, escalated, reminder
    post(client, _paid(1))
    post(client, _paid(1, status="resolved"))
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2}


def test_a_score_crossing_the_threshold_upwards_escalates(client: Any, engine: Engine) -> None:
    _setup(engine, {"escalation_score": 70, "min_severity": "low"})
    post(client, _paid(1, severity="medium"))
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2}
    # The pending "new" intents are delivered (the escalation must not be folded into them).
    with unit_of_work(engine) as session:
        session.execute(update(Notification).values(status="sent", sent_at=utcnow()))
    post(client, _paid(1, severity="critical"))
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2, "escalated": 2}
    post(client, _paid(1, severity="critical"))  # still above: no second escalation
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2, "escalated": 2}


def test_a_complete_rescan_tells_the_owner_what_it_resolved(client: Any, engine: Engine) -> None:
    _setup(engine, {"events": ["new", "resolved"]})
    scope = {"scope": "image:registry/pay", "complete": "true"}
    first = {"findings": [_paid(1), _paid(2)]}
    assert client.post("/v1/ingest/native", params=scope, json=first).status_code == 200
    assert client.post("/v1/ingest/native", params=scope, json={"findings": [_paid(1)]}).status_code == 200
    assert Counter(n.event for n in _notifications(engine)) == {"new": 4, "resolved": 2}


def test_reminders_are_queued_for_open_high_findings_after_the_repeat_interval(
    client: Any, engine: Engine
) -> None:
    _setup(engine, {"repeat_interval": "1h", "reminder_min_severity": "high"})
    post(client, _paid(1, severity="high"), _paid(2, severity="medium"))
    now = utcnow()
    with unit_of_work(engine) as session:
        session.execute(
            update(Notification).values(
                status="sent", sent_at=now - timedelta(hours=2), created_at=now - timedelta(hours=2)
            )
        )
        assert enqueue_reminders(session, now) == 0 + 2  # the high one, on both channels
    with unit_of_work(engine) as session:
        assert enqueue_reminders(session, now) == 0  # already queued
    reminders = [n for n in _notifications(engine) if n.event == "reminder"]
    assert len(reminders) == 2 and len({n.finding_id for n in reminders}) == 1


@pytest.mark.parametrize("status", ["acknowledged", "suppressed"])
def test_triaged_findings_do_not_notify_when_they_change(client: Any, engine: Engine, status: str) -> None:
    _setup(engine)
    post(client, _paid(1, severity="medium"))
    finding_id = client.get("/v1/findings").json()["items"][0]["id"]
    body: dict[str, Any] = {"status": status, "note": "accepted risk"}
    if status == "suppressed":
        body["suppressed_until"] = (utcnow() + timedelta(days=7)).isoformat()
    assert client.patch(f"/v1/findings/{finding_id}", json=body).status_code == 200, body
    post(client, _paid(1, severity="critical"))
    assert Counter(n.event for n in _notifications(engine)) == {"new": 2}


def test_silenced_findings_are_stored_routed_and_show_the_silence(client: Any, engine: Engine) -> None:
    _setup(engine)
    now = utcnow()
    silence_id, expired_id = new_id(), new_id()
    with unit_of_work(engine) as session:
        for sid, ends in ((silence_id, now + timedelta(days=1)), (expired_id, now - timedelta(minutes=1))):
            session.add(
                Silence(
                    id=sid,
                    matchers={"type": ["CVE-2026-0001"]},
                    starts_at=now - timedelta(hours=1),
                    ends_at=ends,
                    reason="patch rolling out",
                    created_by="alice",
                    created_at=now,
                    updated_at=now,
                )
            )
    post(client, _paid(1), _paid(2))  # types CVE-2026-0001 and CVE-2026-0002
    items = {i["type"]: i for i in client.get("/v1/findings").json()["items"]}
    assert items["CVE-2026-0001"]["silenced_by"] == silence_id
    assert items["CVE-2026-0002"]["silenced_by"] is None
    assert items["CVE-2026-0001"]["team"] == "payments"  # still routed
    detail = client.get(f"/v1/findings/{items['CVE-2026-0001']['id']}").json()
    assert detail["silenced_by"] == silence_id


def test_ticket_channels_follow_resolution_and_regression_whatever_the_policy_events(
    client: Any, engine: Engine
) -> None:
    ids = _setup(engine)  # default events: no "resolved"
    now = utcnow()
    jira_id = new_id()
    with unit_of_work(engine) as session:
        session.add(
            NotificationChannel(
                id=jira_id,
                name="pay-jira",
                team_id=ids["payments"],
                kind="jira",
                target="PAY",
                created_at=now,
                updated_at=now,
            )
        )
    post(client, _paid(1))
    post(client, _paid(1, status="resolved"))
    post(client, _paid(1))
    by_channel = Counter((n.channel_id, n.event) for n in _notifications(engine))
    assert by_channel[(jira_id, "resolved")] == 1 and by_channel[(jira_id, "regressed")] == 1
    assert by_channel[(ids["pay-slack"], "resolved")] == 0  # chat channels keep to the policy
    assert by_channel[(ids["pay-slack"], "regressed")] == 1  # regressed is in the default events


def test_closing_or_reopening_a_finding_by_hand_tells_its_ticket(client: Any, engine: Engine) -> None:
    ids = _setup(engine)
    now = utcnow()
    jira_id = new_id()
    with unit_of_work(engine) as session:
        session.add(
            NotificationChannel(
                id=jira_id,
                name="pay-jira",
                team_id=ids["payments"],
                kind="jira",
                target="PAY",
                created_at=now,
                updated_at=now,
            )
        )
    post(client, _paid(1))
    finding_id = client.get("/v1/findings").json()["items"][0]["id"]
    assert client.patch(f"/v1/findings/{finding_id}", json={"status": "resolved"}).status_code == 200
    assert client.patch(f"/v1/findings/{finding_id}", json={"status": "open"}).status_code == 200
    by_channel = Counter((n.channel_id, n.event) for n in _notifications(engine))
    assert by_channel[(jira_id, "resolved")] == 1 and by_channel[(jira_id, "regressed")] == 1
    assert by_channel[(ids["pay-slack"], "resolved")] == 0


def test_acknowledging_a_finding_acknowledges_its_incident_only(client: Any, engine: Engine) -> None:
    ids = _setup(engine)
    now = utcnow()
    pd_id, jira_id = new_id(), new_id()
    with unit_of_work(engine) as session:
        for cid, name, kind in ((pd_id, "pay-pd", "pagerduty"), (jira_id, "pay-jira", "jira")):
            session.add(
                NotificationChannel(
                    id=cid,
                    name=name,
                    team_id=ids["payments"],
                    kind=kind,
                    target="PAY",
                    created_at=now,
                    updated_at=now,
                )
            )
    post(client, _paid(1))
    finding_id = client.get("/v1/findings").json()["items"][0]["id"]
    assert client.patch(f"/v1/findings/{finding_id}", json={"status": "acknowledged"}).status_code == 200
    acknowledged = [n.channel_id for n in _notifications(engine) if n.event == "acknowledged"]
    assert acknowledged == [pd_id]
