"""POST /v1/jira/webhook on SQLite and PostgreSQL: the shared secret, done -> resolved with the Jira user in
the audit log, the resolution map, reopening, unknown keys and idempotency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from app.clock import new_id
from app.db import unit_of_work
from app.main import create_app
from app.models.routing import NotificationChannel, Team
from app.repositories.outbox import Intent, enqueue
from app.settings import Settings
from tests.delivery.conftest import T0, clear_outbox, make_finding

SECRET = "jira-hook-secret-4b7e21c9"
ACCOUNT = "5b10ac8d82e05b22cc7d4ef5"


@pytest.fixture
def hook(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    clear_outbox(engine)
    configured = settings.model_copy(
        update={"jira_webhook_secret": SecretStr(SECRET), "dispatcher_embedded": False}
    )
    with TestClient(create_app(configured, engine)) as client:
        yield client
    clear_outbox(engine)


def ticket(engine: Engine, key: str, count: int = 2, **options: Any) -> list[str]:
    """A Jira channel with one group of ``count`` findings whose ticket is ``key``."""
    team_id, channel_id = new_id(), new_id()
    ids = [new_id() for _ in range(count)]
    with unit_of_work(engine) as session:
        session.add(
            Team(id=team_id, name="payments", timezone="UTC", policy={}, created_at=T0, updated_at=T0)
        )
        session.flush()
        session.add(
            NotificationChannel(
                id=channel_id,
                name="payments-jira",
                team_id=team_id,
                kind="jira",
                target="SEC",
                options={"base_url": "https://acme.atlassian.net", **options},
                created_at=T0,
                updated_at=T0,
            )
        )
        for i, fid in enumerate(ids):
            session.add(make_finding(fid, f"finding {i}", 80.0, T0))
        session.flush()
        intents = [
            Intent(
                finding_id=fid,
                channel_id=channel_id,
                team="payments",
                event="new",
                routed_by="rule:test",
                group_key="team=payments",
                group_labels={"team": "payments"},
                group_wait=30.0,
                group_interval=300.0,
            )
            for fid in ids
        ]
        enqueue(session, intents, T0)
        session.execute(text("UPDATE notification_groups SET thread_ref = :k"), {"k": key})
    return ids


def payload(key: str, category: str = "done", status: str = "Done", resolution: str | None = "Done") -> Any:
    return {
        "webhookEvent": "jira:issue_updated",
        "user": {"accountId": ACCOUNT, "displayName": "Alice Admin"},
        "issue": {
            "key": key,
            "fields": {
                "status": {"name": status, "statusCategory": {"key": category}},
                "resolution": {"name": resolution} if resolution else None,
            },
        },
    }


def statuses(engine: Engine, ids: list[str]) -> list[str]:
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, status FROM findings")).all())
    return [rows[i] for i in ids]


def test_wrong_or_missing_secret_is_401_and_changes_nothing(hook: TestClient, engine: Engine) -> None:
    ids = ticket(engine, "SEC-7")
    for kwargs in (
        {},
        {"params": {"secret": "nope"}},
        {"headers": {"X-Tocsin-Webhook-Secret": SECRET[:-1]}},
    ):
        answer = hook.post("/v1/jira/webhook", json=payload("SEC-7"), **kwargs)  # type: ignore[arg-type]
        assert answer.status_code == 401, answer.text
    assert statuses(engine, ids) == ["open", "open"]


def test_unconfigured_secret_refuses(settings: Settings, engine: Engine) -> None:
    with TestClient(create_app(settings.model_copy(update={"dispatcher_embedded": False}), engine)) as c:
        answer = c.post("/v1/jira/webhook", params={"secret": ""}, json=payload("SEC-7"))
    assert answer.status_code == 401 and "TOCSIN_JIRA_WEBHOOK_SECRET" in answer.text


def test_done_resolves_with_the_jira_user_in_the_audit_log(hook: TestClient, engine: Engine) -> None:
    ids = ticket(engine, "SEC-7")
    answer = hook.post("/v1/jira/webhook", params={"secret": SECRET}, json=payload("SEC-7"))

    assert answer.status_code == 200 and answer.json() == {"matched": 2, "changed": 2, "ignored": None}
    assert statuses(engine, ids) == ["resolved", "resolved"]
    with engine.connect() as conn:
        audits = conn.execute(
            text("SELECT actor, target_id FROM audit_log WHERE action = 'finding.triage'")
        ).all()
        events = conn.execute(text("SELECT actor, note FROM finding_events WHERE kind = 'triage'")).all()
    assert {a.actor for a in audits} == {f"jira:{ACCOUNT}"} and {a.target_id for a in audits} == set(ids)
    assert all("Alice Admin" in e.note and "SEC-7" in e.note for e in events)

    # Idempotent: Jira retries, or echoes Tocsin's own transition.
    again = hook.post("/v1/jira/webhook", headers={"X-Tocsin-Webhook-Secret": SECRET}, json=payload("SEC-7"))
    assert again.json()["changed"] == 0 and statuses(engine, ids) == ["resolved", "resolved"]


def test_resolution_map_and_reopen(hook: TestClient, engine: Engine) -> None:
    ids = ticket(engine, "SEC-9", 1, resolution_map={"Won't Do": "false_positive"})
    done = hook.post(
        "/v1/jira/webhook", params={"secret": SECRET}, json=payload("SEC-9", resolution="Won't Do")
    )
    assert done.json()["changed"] == 1 and statuses(engine, ids) == ["false_positive"]

    reopened = hook.post(
        "/v1/jira/webhook",
        params={"secret": SECRET},
        json=payload("SEC-9", category="new", status="To Do", resolution=None),
    )
    assert reopened.json()["changed"] == 1 and statuses(engine, ids) == ["open"]
    # Not done and already open: nothing to do.
    same = hook.post(
        "/v1/jira/webhook", params={"secret": SECRET}, json=payload("SEC-9", "indeterminate", "In Progress")
    )
    assert same.json() == {"matched": 1, "changed": 0, "ignored": None}


def test_suppressed_by_resolution_map(hook: TestClient, engine: Engine) -> None:
    ids = ticket(engine, "SEC-3", 1, resolution_map={"Risk Accepted": "suppressed"}, suppress_days=7)
    hook.post(
        "/v1/jira/webhook", params={"secret": SECRET}, json=payload("SEC-3", resolution="Risk Accepted")
    )
    assert statuses(engine, ids) == ["suppressed"]


def test_unknown_key_and_other_events_are_200(hook: TestClient, engine: Engine) -> None:
    ticket(engine, "SEC-7")
    unknown = hook.post("/v1/jira/webhook", params={"secret": SECRET}, json=payload("SEC-404"))
    assert unknown.status_code == 200 and unknown.json()["matched"] == 0
    other = hook.post(
        "/v1/jira/webhook", params={"secret": SECRET}, json={"webhookEvent": "jira:issue_created"}
    )
    assert other.status_code == 200 and other.json()["matched"] == 0 and other.json()["ignored"]
    bad = hook.post("/v1/jira/webhook", params={"secret": SECRET}, content=b"not json")
    assert bad.status_code == 422
