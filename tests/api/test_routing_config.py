"""/v1/teams, /v1/channels, /v1/rules, /v1/silences: CRUD, order, references, validation, secrets, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from app.main import create_app
from app.models import AuditRecord
from app.settings import Settings
from tests.conftest import ADMIN_TOKEN

ROUTING_TABLES = ("silences", "routing_rules", "channels", "teams")


@pytest.fixture(autouse=True)
def empty_routing(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in ROUTING_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))


def team(client: Any, name: str, **extra: Any) -> Any:
    resp = client.post("/v1/teams", json={"name": name, **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def rule(client: Any, name: str, team_name: str = "payments", **extra: Any) -> Any:
    return client.post("/v1/rules", json={"name": name, "team": team_name, **extra})


def slack(name: str = "payments-slack", **extra: Any) -> dict[str, Any]:
    return {"name": name, "team": "payments", "kind": "slack", "target": "C0123PAYMT", **extra}


def audit_rows(engine: Engine, prefix: str) -> list[AuditRecord]:
    with Session(engine) as session:
        stmt = select(AuditRecord).where(AuditRecord.action.startswith(prefix)).order_by(AuditRecord.id)  # type: ignore[attr-defined]
        return list(session.execute(stmt).scalars())


def future(hours: float = 1) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def errors_of(resp: Any) -> list[str]:
    assert resp.status_code == 422, resp.text
    assert resp.json()["code"] == "invalid"
    return [error["field"] for error in resp.json()["errors"]]


# Teams


def test_team_crud_round_trip(client: Any) -> None:
    created = team(
        client,
        "payments",
        timezone="Europe/Paris",
        quiet_hours={"start": "20:00", "end": "08:00"},
        policy={"group_wait": "1m", "min_severity": "medium"},
    )
    assert created["policy"]["group_wait"] == "1m"
    assert created["policy"]["repeat_interval"] == "1d"
    assert created["quiet_hours"]["start"] == "20:00:00"
    assert client.get("/v1/teams/payments").json() == created
    assert [t["name"] for t in client.get("/v1/teams").json()] == ["payments"]

    replaced = client.put("/v1/teams/payments", json={"name": "payments", "description": "Billing"})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["timezone"] == "UTC"
    assert replaced.json()["quiet_hours"] is None

    patched = client.patch("/v1/teams/payments", json={"timezone": "America/New_York"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["timezone"], patched.json()["description"]) == ("America/New_York", "Billing")

    assert client.delete("/v1/teams/payments").status_code == 204
    missing = client.get("/v1/teams/payments")
    assert missing.status_code == 404
    assert "payments" in missing.json()["detail"]


def test_duplicate_team_is_409(client: Any) -> None:
    team(client, "payments")
    resp = client.post("/v1/teams", json={"name": "payments"})
    assert resp.status_code == 409
    assert "payments" in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Payments"}, "name"),
        ({"name": "p", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "p", "quiet_hours": {"start": "08:00", "end": "08:00"}}, "quiet_hours"),
        ({"name": "p", "policy": {"group_by": ["team", "colour"]}}, "policy.group_by"),
        ({"name": "p", "policy": {"group_wait": "soon"}}, "policy.group_wait"),
        ({"name": "p", "colour": "red"}, "colour"),
    ],
)
def test_invalid_team_is_422_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    assert field in errors_of(client.post("/v1/teams", json=body))
    assert client.get("/v1/teams").json() == []


def test_put_cannot_rename_and_patch_is_validated_whole(client: Any) -> None:
    team(client, "payments")
    assert errors_of(client.put("/v1/teams/payments", json={"name": "billing"})) == ["name"]
    assert "timezone" in errors_of(client.patch("/v1/teams/payments", json={"timezone": "Nowhere/City"}))
    assert "name" in errors_of(client.patch("/v1/teams/payments", json={"name": "other"}))
    assert client.patch("/v1/teams/ghost", json={"description": "x"}).status_code == 404


def test_the_default_flag_moves_to_the_newest_default_team(client: Any, engine: Engine) -> None:
    team(client, "security-ops", default=True)
    team(client, "platform", default=True)
    flags = {t["name"]: t["default"] for t in client.get("/v1/teams").json()}
    assert flags == {"security-ops": False, "platform": True}
    moved = [row for row in audit_rows(engine, "team.updated") if row.target_id == "security-ops"]
    assert [(row.before, row.after) for row in moved] == [({"default": True}, {"default": False})]


def test_a_referenced_team_cannot_be_deleted(client: Any) -> None:
    team(client, "payments")
    assert client.post("/v1/channels", json=slack()).status_code == 201
    assert rule(client, "billing-repos", match={"repository": "acme/billing-*"}).status_code == 201
    resp = client.delete("/v1/teams/payments")
    assert resp.status_code == 409
    assert "payments-slack" in resp.json()["detail"] and "billing-repos" in resp.json()["detail"]
    client.delete("/v1/channels/payments-slack")
    client.delete("/v1/rules/billing-repos")
    assert client.delete("/v1/teams/payments").status_code == 204


# Channels


def test_channel_shows_its_secret_name_and_whether_it_resolves(
    client: Any, settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    team(client, "payments")
    monkeypatch.delenv("TOCSIN_SECRET_SLACK_BOT", raising=False)
    created = client.post("/v1/channels", json=slack(secret_ref="SLACK_BOT"))
    assert created.status_code == 201, created.text
    assert (created.json()["secret_ref"], created.json()["secret_configured"]) == ("SLACK_BOT", False)

    monkeypatch.setenv("TOCSIN_SECRET_SLACK_BOT", "xoxb-very-secret")
    shown = client.get("/v1/channels/payments-slack")
    assert shown.json()["secret_configured"] is True
    assert "xoxb-very-secret" not in shown.text and "xoxb-very-secret" not in client.get("/v1/channels").text

    monkeypatch.delenv("TOCSIN_SECRET_SLACK_BOT")
    (tmp_path / "SLACK_BOT").write_text("xoxb-from-a-file")
    mounted = create_app(settings.model_copy(update={"secrets_dir": tmp_path}), engine)
    with TestClient(mounted, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as with_dir:
        resp = with_dir.get("/v1/channels/payments-slack")
    assert resp.json()["secret_configured"] is True
    assert "xoxb-from-a-file" not in resp.text
    assert client.get("/v1/channels/payments-slack").json()["secret_configured"] is False


def test_channel_crud_and_team_move(client: Any) -> None:
    team(client, "payments")
    team(client, "platform")
    client.post("/v1/channels", json=slack())
    email = {"name": "appsec-mail", "team": "payments", "kind": "email", "target": "a@example.com"}
    refused = client.post("/v1/channels", json={**email, "options": {"any": "thing"}})
    assert refused.status_code == 422 and "any" in refused.text
    mail_options = {"host": "smtp.example.com", "from_address": "tocsin@example.com"}
    assert client.post("/v1/channels", json={**email, "options": mail_options}).status_code == 201
    moved = client.patch("/v1/channels/payments-slack", json={"team": "platform", "enabled": False})
    assert moved.status_code == 200, moved.text
    assert (moved.json()["team"], moved.json()["enabled"]) == ("platform", False)
    assert [c["name"] for c in client.get("/v1/channels").json()] == ["appsec-mail", "payments-slack"]
    assert client.post("/v1/channels", json=slack()).status_code == 409
    assert client.delete("/v1/channels/payments-slack").status_code == 204
    assert client.delete("/v1/channels/payments-slack").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (slack(team="nobody"), "team"),
        (slack(kind="carrier-pigeon"), "kind"),
        (slack(target="not a channel"), "target"),
        (slack(options={"colour": "red"}), "options.colour"),
        (slack(secret_ref="lower-case"), "secret_ref"),
        (slack(token="xoxb-inline"), "token"),
    ],
)
def test_invalid_channel_is_422_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    team(client, "payments")
    assert field in errors_of(client.post("/v1/channels", json=body))
    assert client.get("/v1/channels").json() == []


# Rules


def test_rules_append_insert_reorder_and_close_gaps(client: Any) -> None:
    team(client, "payments")
    for name in ("a", "b", "c"):
        assert rule(client, name).status_code == 201
    inserted = client.post("/v1/rules", params={"position": 0}, json={"name": "first", "team": "payments"})
    assert inserted.json()["position"] == 0
    names = lambda: [(r["name"], r["position"]) for r in client.get("/v1/rules").json()]  # noqa: E731
    assert names() == [("first", 0), ("a", 1), ("b", 2), ("c", 3)]

    reordered = client.put("/v1/rules/order", json={"names": ["c", "b", "a", "first"]})
    assert reordered.status_code == 200, reordered.text
    assert [r["name"] for r in reordered.json()] == ["c", "b", "a", "first"]
    assert client.delete("/v1/rules/b").status_code == 204
    assert names() == [("c", 0), ("a", 1), ("first", 2)]


def test_reorder_must_list_exactly_the_current_rules(client: Any) -> None:
    team(client, "payments")
    rule(client, "a")
    rule(client, "b")
    missing = client.put("/v1/rules/order", json={"names": ["a"]})
    assert missing.status_code == 409 and "missing b" in missing.json()["detail"]
    unknown = client.put("/v1/rules/order", json={"names": ["a", "b", "zz"]})
    assert unknown.status_code == 409 and "unknown zz" in unknown.json()["detail"]
    assert errors_of(client.put("/v1/rules/order", json={"names": ["a", "a", "b"]})) == ["names"]
    assert [r["name"] for r in client.get("/v1/rules").json()] == ["a", "b"]


def test_rule_round_trip_with_every_matcher(client: Any) -> None:
    team(client, "payments")
    body = {
        "name": "everything",
        "match": {
            "source": "guardduty",
            "type": ["Recon:EC2/*"],
            "account_id": ["111111111111"],
            "region": "eu-west-1",
            "resource_type": "AwsEc2Instance",
            "resource_id": "arn:aws:ec2:*",
            "resource_id_regex": "i-[0-9a-f]+",
            "tags": {"env": "prod"},
            "repository": "acme/pay-*",
            "path": "services/billing/**",
            "severity_min": "medium",
            "score_min": 40,
        },
        "team": "payments",
        "team_from_tag": "owner",
        "continue": True,
        "policy": {"group_wait": "10s"},
    }
    created = rule(client, "everything", **{k: v for k, v in body.items() if k not in ("name", "team")})
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["continue"] is True
    assert out["match"]["tags"] == ["env=prod"]
    assert out["match"]["source"] == ["guardduty"]
    assert out["policy"]["group_wait"] == "10s"
    assert client.put("/v1/rules/everything", json=out | {"position": None} if False else body).json() == out


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "r", "team": "nobody"}, "team"),
        ({"name": "r"}, "body"),
        ({"name": "r", "team": "payments", "match": {"tags": ["env"]}}, "match.tags"),
        ({"name": "r", "team": "payments", "match": {"resource_id_regex": "("}}, "match.resource_id_regex"),
        ({"name": "r", "team": "payments", "match": {"severity_min": "urgent"}}, "match.severity_min"),
        ({"name": "r", "team": "payments", "match": {"colour": "red"}}, "match.colour"),
        ({"name": "order", "team": "payments"}, "name"),
    ],
)
def test_invalid_rule_is_422_naming_the_field(client: Any, body: dict[str, Any], field: str) -> None:
    team(client, "payments")
    assert field in errors_of(client.post("/v1/rules", json=body))
    assert client.get("/v1/rules").json() == []


def test_rule_position_out_of_range_and_duplicates(client: Any) -> None:
    team(client, "payments")
    rule(client, "a")
    assert errors_of(
        client.post("/v1/rules", params={"position": 5}, json={"name": "b", "team": "payments"})
    ) == ["position"]
    assert rule(client, "a").status_code == 409
    assert client.get("/v1/rules/ghost").status_code == 404


# Silences


def test_silence_states_and_expiry_keep_it(client: Any) -> None:
    now = datetime.now(UTC)
    active = client.post(
        "/v1/silences",
        json={"match": {"account_id": "333333333333"}, "ends_at": future(), "reason": "pentest"},
    )
    assert active.status_code == 201, active.text
    assert (active.json()["state"], active.json()["created_by"]) == ("active", "test-admin")
    pending = client.post(
        "/v1/silences",
        json={
            "finding_id": "0123456789abcdef",
            "starts_at": (now + timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=2)).isoformat(),
            "reason": "change window",
            "created_by": "alice",
        },
    ).json()
    assert (pending["state"], pending["created_by"]) == ("pending", "alice")

    def ids(state: str) -> list[str]:
        return [s["id"] for s in client.get("/v1/silences", params={"state": state}).json()]

    assert (ids("active"), ids("pending"), ids("expired")) == ([active.json()["id"]], [pending["id"]], [])
    expired = client.delete(f"/v1/silences/{pending['id']}")
    assert expired.status_code == 200
    assert expired.json()["state"] == "expired"
    assert ids("expired") == [pending["id"]] and ids("pending") == []
    assert len(client.get("/v1/silences").json()) == 2
    assert client.delete(f"/v1/silences/{pending['id']}").json() == expired.json()
    assert (
        client.put(
            f"/v1/silences/{pending['id']}", json={"finding_id": "x", "ends_at": future(), "reason": "again"}
        ).status_code
        == 409
    )


def test_silence_can_be_extended(client: Any, engine: Engine) -> None:
    body = {"match": {"type": "Recon:*"}, "ends_at": future(1), "reason": "noisy"}
    created = client.post("/v1/silences", json=body).json()
    later = future(48)
    resp = client.put(f"/v1/silences/{created['id']}", json={**body, "ends_at": later})
    assert resp.status_code == 200, resp.text
    assert datetime.fromisoformat(resp.json()["ends_at"]) == datetime.fromisoformat(later)
    assert [row.action for row in audit_rows(engine, "silence.")] == ["silence.created", "silence.updated"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"ends_at": future(), "reason": "everything"}, "body"),
        ({"match": {"type": "x"}, "ends_at": "2020-01-01T00:00:00Z", "reason": "old"}, "ends_at"),
        ({"match": {"type": "x"}, "ends_at": "2030-01-01T00:00:00", "reason": "naive"}, "body"),
        ({"match": {"type": "x"}, "ends_at": future(), "reason": ""}, "reason"),
        ({"match": {"tags": ["=x"]}, "ends_at": future(), "reason": "r"}, "match.tags"),
    ],
)
def test_invalid_silence_is_422(client: Any, body: dict[str, Any], field: str) -> None:
    assert field in errors_of(client.post("/v1/silences", json=body))
    assert client.get("/v1/silences").json() == []


def test_unknown_silence_is_404(client: Any) -> None:
    for resp in (client.get("/v1/silences/nope"), client.delete("/v1/silences/nope")):
        assert resp.status_code == 404 and "nope" in resp.json()["detail"]


# Audit


def test_every_write_is_audited_with_caller_and_request_id(anon: Any, token_for: Any, engine: Engine) -> None:
    alice = token_for("admin", name="ops-alice")
    calls = [
        ("POST", "/v1/teams", {"name": "payments"}),
        ("PATCH", "/v1/teams/payments", {"description": "Billing"}),
        ("POST", "/v1/channels", slack()),
        ("PUT", "/v1/channels/payments-slack", slack(target="#payments-alerts")),
        ("POST", "/v1/rules", {"name": "a", "team": "payments"}),
        ("POST", "/v1/rules", {"name": "b", "team": "payments"}),
        ("PATCH", "/v1/rules/a", {"continue": True}),
        ("PUT", "/v1/rules/order", {"names": ["b", "a"]}),
        ("DELETE", "/v1/rules/a", None),
        ("DELETE", "/v1/rules/b", None),
        ("DELETE", "/v1/channels/payments-slack", None),
        ("DELETE", "/v1/teams/payments", None),
    ]
    request_ids = []
    for method, path, body in calls:
        resp = anon.request(method, path, json=body, headers=alice)
        assert resp.status_code < 300, f"{method} {path}: {resp.text}"
        request_ids.append(resp.headers["X-Request-ID"])
    rows = audit_rows(engine, "")
    rows = [row for row in rows if not row.action.startswith("token.")]
    assert [row.action for row in rows] == [
        "team.created",
        "team.updated",
        "channel.created",
        "channel.updated",
        "rule.created",
        "rule.created",
        "rule.updated",
        "rule.reordered",
        "rule.deleted",
        "rule.deleted",
        "channel.deleted",
        "team.deleted",
    ]
    assert {row.actor for row in rows} == {"ops-alice"}
    assert [row.request_id for row in rows] == request_ids
    assert (rows[1].before, rows[1].after) == ({"description": ""}, {"description": "Billing"})
    assert (rows[3].before, rows[3].after) == ({"target": "C0123PAYMT"}, {"target": "#payments-alerts"})
    assert rows[7].after == {"order": ["b", "a"]}


def test_a_put_that_changes_nothing_writes_no_audit(client: Any, engine: Engine) -> None:
    created = team(client, "payments")
    body = {k: created[k] for k in ("name", "description", "timezone", "quiet_hours", "policy", "default")}
    assert client.put("/v1/teams/payments", json=body).status_code == 200
    assert [row.action for row in audit_rows(engine, "team.")] == ["team.created"]


def test_refused_writes_leave_no_audit(client: Any, engine: Engine) -> None:
    team(client, "payments")
    client.post("/v1/teams", json={"name": "payments"})
    client.post("/v1/rules", json={"name": "r", "team": "nobody"})
    client.delete("/v1/teams/nobody")
    assert [row.action for row in audit_rows(engine, "")] == ["team.created"]


def test_read_scope_reads_but_cannot_write(anon: Any, client: Any, token_for: Any) -> None:
    team(client, "payments")
    reader = token_for("read")
    assert anon.get("/v1/teams/payments", headers=reader).status_code == 200
    assert anon.delete("/v1/teams/payments", headers=reader).status_code == 403
