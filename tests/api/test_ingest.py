"""POST /v1/findings: validation per item, deduplication, lifecycle, batch behaviour."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, event

from tests.helpers import finding, post


def test_valid_findings_stored_even_when_others_fail(client: Any) -> None:
    bad_severity = finding(type="T-2", severity="catastrophic")
    extra_field = finding(type="T-3", colour="red")
    bad_resource = finding(type="T-4", resource={"id": 42})
    resp = post(client, finding(), bad_severity, extra_field, bad_resource, "not an object")
    assert resp.status_code == 200
    body = resp.json()
    assert (body["accepted"], body["created"]) == (1, 1)
    failed = {f["index"]: f["errors"] for f in body["failed"]}
    assert set(failed) == {1, 2, 3, 4}
    assert failed[1][0]["field"] == "severity" and "catastrophic" in failed[1][0]["message"]
    assert failed[2][0]["field"] == "colour" and "unknown field" in failed[2][0]["message"]
    assert failed[3][0]["field"] == "resource.id"
    assert "must be an object" in failed[4][0]["message"]
    assert body["results"] == [{"index": 0, "id": body["results"][0]["id"], "outcome": "created"}]
    listed = client.get("/v1/findings").json()["items"]
    assert [item["type"] for item in listed] == ["CVE-2024-3094"]


def test_repeat_batch_creates_nothing_and_counts_occurrences(client: Any) -> None:
    batch = [finding(type=f"CVE-{i}") for i in range(5)]
    first = post(client, *batch).json()
    assert first["created"] == 5
    second = post(client, *batch).json()
    assert second["created"] == 0
    assert second["unchanged"] == 5
    assert [r["id"] for r in second["results"]] == [r["id"] for r in first["results"]]
    detail = client.get(f"/v1/findings/{first['results'][0]['id']}").json()
    assert detail["occurrences"] == 2
    assert detail["last_seen"] >= detail["first_seen"]
    assert [e["kind"] for e in detail["events"]] == ["seen", "created"]


def test_changed_content_is_updated_not_new(client: Any) -> None:
    first = post(client, finding(description="old text")).json()
    second = post(client, finding(description="reworded text", severity="critical")).json()
    assert second["updated"] == 1 and second["created"] == 0
    detail = client.get(f"/v1/findings/{first['results'][0]['id']}").json()
    assert detail["description"] == "reworded text"
    assert detail["severity_label"] == "critical"
    assert detail["events"][0]["kind"] == "updated"


def test_volatile_fields_do_not_change_identity(client: Any) -> None:
    a = post(client, finding(observed_at="2026-01-01T00:00:00Z", description="a")).json()
    b = post(client, finding(observed_at="2026-02-01T00:00:00Z", description="b", confidence=10)).json()
    assert a["results"][0]["id"] == b["results"][0]["id"]
    other = post(client, finding(resource={"id": "registry.example.com/shop/web:1"})).json()
    assert other["created"] == 1


def test_source_id_is_the_identity_when_given(client: Any) -> None:
    a = post(client, finding(source="guardduty", source_id="gd-1", type="Recon:EC2/Portscan")).json()
    b = post(
        client, finding(source="GuardDuty", source_id="gd-1", type="Recon:EC2/Portscan", title="new")
    ).json()
    assert a["results"][0]["id"] == b["results"][0]["id"]
    c = post(client, finding(source="guardduty", source_id="gd-2", type="Recon:EC2/Portscan")).json()
    assert c["created"] == 1


def test_finding_matched_by_alias_from_another_path(client: Any) -> None:
    direct = post(client, finding(source="guardduty", source_id="abc123", type="Backdoor:EC2/Spambot")).json()
    via_hub = finding(
        source="securityhub",
        source_id="arn:aws:securityhub:eu-west-1::product/aws/guardduty/abc123",
        type="Backdoor:EC2/Spambot",
        aliases=["guardduty:abc123"],
    )
    again = post(client, via_hub).json()
    assert again["created"] == 0
    finding_id = direct["results"][0]["id"]
    assert again["results"][0]["id"] == finding_id
    detail = client.get(f"/v1/findings/{finding_id}").json()
    assert "guardduty:abc123" in detail["aliases"]
    assert "securityhub:arn:aws:securityhub:eu-west-1::product/aws/guardduty/abc123" in detail["aliases"]
    assert detail["occurrences"] == 2
    # The hub key now finds it too, without the alias.
    third = post(client, finding(source="securityhub", source_id=via_hub["source_id"], type="x")).json()
    assert third["results"][0]["id"] == finding_id


def test_duplicates_inside_one_batch_are_merged(client: Any) -> None:
    same = finding()
    body = post(client, same, same, finding(description="changed")).json()
    assert body["created"] == 1
    assert [r["outcome"] for r in body["results"]] == ["created", "unchanged", "updated"]
    assert len({r["id"] for r in body["results"]}) == 1
    detail = client.get(f"/v1/findings/{body['results'][0]['id']}").json()
    assert detail["occurrences"] == 3
    assert detail["description"] == "changed"


def test_same_finding_1000_times_in_one_batch(client: Any) -> None:
    body = post(client, *[finding()] * 1000).json()
    assert (body["accepted"], body["created"]) == (1000, 1)
    assert client.get(f"/v1/findings/{body['results'][0]['id']}").json()["occurrences"] == 1000


def test_finding_without_identity_is_rejected_with_reason(client: Any) -> None:
    body = post(client, finding(resource={"type": "host"})).json()
    assert body["accepted"] == 0
    assert "no identity" in body["failed"][0]["errors"][0]["message"]


def test_source_resolved_then_regressed(client: Any) -> None:
    fid = post(client, finding()).json()["results"][0]["id"]
    resolved = post(client, finding(status="resolved")).json()
    assert resolved["updated"] == 1
    detail = client.get(f"/v1/findings/{fid}").json()
    assert detail["status"] == "resolved"
    assert detail["events"][0]["kind"] == "resolved_by_source"
    post(client, finding())
    detail = client.get(f"/v1/findings/{fid}").json()
    assert detail["status"] == "open"
    assert detail["events"][0]["kind"] == "regressed"
    assert detail["events"][0]["from_status"] == "resolved"


def test_triage_resolved_finding_reported_again_regresses(client: Any) -> None:
    fid = post(client, finding()).json()["results"][0]["id"]
    assert (
        client.patch(f"/v1/findings/{fid}", json={"status": "resolved", "note": "patched"}).status_code == 200
    )
    post(client, finding())
    detail = client.get(f"/v1/findings/{fid}").json()
    assert detail["status"] == "open"
    assert [e["kind"] for e in detail["events"][:2]] == ["regressed", "triage"]


def test_acknowledged_stays_acknowledged_on_repeat(client: Any) -> None:
    fid = post(client, finding()).json()["results"][0]["id"]
    client.patch(f"/v1/findings/{fid}", json={"status": "acknowledged", "note": "on it"})
    post(client, finding())
    detail = client.get(f"/v1/findings/{fid}").json()
    assert (detail["status"], detail["status_note"]) == ("acknowledged", "on it")


def test_new_finding_reported_resolved_is_stored_resolved(client: Any) -> None:
    fid = post(client, finding(status="resolved")).json()["results"][0]["id"]
    assert client.get(f"/v1/findings/{fid}").json()["status"] == "resolved"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", '{"findings"'),
        (b'{"items": []}', '{"findings"'),
        (b'{"findings": {}}', "must be a list"),
        (b'{"findings": []}', "1 to 1000"),
        (b'{"findings": [], "extra": 1}', "unknown top-level"),
    ],
)
def test_bad_envelope_is_422_with_message(client: Any, body: bytes, needle: str) -> None:
    resp = client.post("/v1/findings", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert needle in resp.json()["detail"]


def test_more_than_1000_findings_is_refused_naming_the_limit(client: Any) -> None:
    resp = post(client, *[finding(type=f"T-{i}") for i in range(1001)])
    assert resp.status_code == 422
    assert "1 to 1000" in resp.json()["detail"] and "1001" in resp.json()["detail"]
    assert client.get("/v1/stats").json()["total"] == 0


def test_body_over_limit_is_413(client: Any) -> None:
    big = b'{"findings": [' + b" " * (11 * 1024 * 1024) + b"]}"
    resp = client.post("/v1/findings", content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert "TOCSIN_MAX_BODY_BYTES" in resp.json()["detail"]


def test_streamed_body_over_limit_is_413(client: Any) -> None:
    def chunks() -> Any:
        yield b'{"findings": ['
        for _ in range(12):
            yield b" " * (1024 * 1024)
        yield b"]}"

    resp = client.post("/v1/findings", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413


def test_ingest_uses_constant_round_trips(client: Any, engine: Engine) -> None:
    """The number of statements does not grow with the batch (no query per finding)."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    def round_trips(batch: list[dict[str, Any]]) -> int:
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            assert post(client, *batch).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return len(statements)

    client.get("/v1/stats")  # the token's first use writes last_used_at; keep it out of the count
    small_new = round_trips([finding(type=f"S-{i}") for i in range(3)])
    large_new = round_trips([finding(type=f"L-{i}") for i in range(600)])
    large_repeat = round_trips(
        [finding(type=f"L-{i}", description="changed" if i % 2 else None) for i in range(600)]
    )
    assert large_new == small_new
    assert large_repeat <= small_new + 2
    assert large_new < 20


def test_source_counted_occurrences_are_followed_not_added(client: Any) -> None:
    """A source that counts for itself (GuardDuty service.count) is not double-counted across paths."""
    direct = finding(
        source="guardduty", source_id="gd-9", occurrences=5, first_observed_at="2026-01-01T00:00:00Z"
    )
    fid = post(client, direct).json()["results"][0]["id"]
    via_hub = finding(source="guardduty", source_id="gd-9", occurrences=5)
    post(client, via_hub)
    detail = client.get(f"/v1/findings/{fid}").json()
    assert detail["occurrences"] == 5
    assert detail["first_seen"].startswith("2026-01-01")
    post(client, finding(source="guardduty", source_id="gd-9", occurrences=7))
    post(client, finding(source="guardduty", source_id="gd-9", occurrences=6))  # a late, older copy
    assert client.get(f"/v1/findings/{fid}").json()["occurrences"] == 7


def test_nul_characters_are_dropped_not_a_server_error(client: Any) -> None:
    """Scanners copy NUL bytes from binaries; PostgreSQL text can't hold them."""
    nul = finding(
        title="bad\u0000title",
        description="d\u0000",
        resource={"id": "img:\u00001", "tags": {"env\u0000": "prod\u0000"}},
        raw={"note": "kept\u0000verbatim"},
    )
    body = post(client, nul).json()
    assert body["created"] == 1, body
    detail = client.get(f"/v1/findings/{body['results'][0]['id']}").json()
    assert detail["title"] == "badtitle"
    assert detail["resource"]["id"] == "img:1"
    assert detail["resource"]["tags"] == {"env": "prod"}
    assert detail["raw"] == {"note": "kept\u0000verbatim"}
