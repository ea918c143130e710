"""GET /v1/findings (filters, sorting, cursor pages), GET /v1/findings/{id}, GET /v1/stats."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import finding, post


@pytest.fixture
def seeded(client: Any) -> dict[str, str]:
    """Six findings across sources, accounts, severities and tags; returns type -> id."""
    batch = [
        finding(
            type="A",
            title="Open SSH port",
            severity="critical",
            source="guardduty",
            source_id="g1",
            resource={
                "id": "arn:i-1",
                "account_id": "111",
                "tags": {"env": "prod", "team": "web"},
                "public": True,
            },
        ),
        finding(
            type="B",
            title="Bucket without encryption",
            severity="high",
            source="securityhub",
            resource={"id": "arn:s3-1", "account_id": "111", "tags": {"env": "dev"}},
        ),
        finding(
            type="C", title="Old openssl", severity="medium", resource={"id": "img:1", "account_id": "222"}
        ),
        finding(type="D", title="Weak TLS", severity=15, resource={"id": "img:2", "account_id": "222"}),
        finding(type="E", title="Info only", severity="informational", resource={"id": "img:3"}),
        finding(
            type="F",
            title="eval() in handler",
            severity="high",
            source="semgrep",
            location={"repository": "github.com/acme/shop", "path": "app/x.py", "line": 3},
        ),
    ]
    body = post(client, *batch).json()
    return {f["type"]: r["id"] for f, r in zip(batch, body["results"], strict=True)}


def types(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [item["type"] for item in resp.json()["items"]]


def test_default_sort_is_score_descending(client: Any, seeded: dict[str, str]) -> None:
    items = client.get("/v1/findings").json()["items"]
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert items[0]["type"] == "A"  # critical, public, prod


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("severity_min=high", {"A", "B", "F"}),
        ("severity_min=HIGH", {"A", "B", "F"}),
        ("severity_min=40", {"A", "B", "C", "F"}),
        ("source=guardduty", {"A"}),
        ("source=guardduty,semgrep", {"A", "F"}),
        ("type=C", {"C"}),
        ("account_id=222", {"C", "D"}),
        ("resource_id=arn:s3-1", {"B"}),
        ("tag=env=prod", {"A"}),
        ("tag=env=dev", {"B"}),
        ("tag=env=prod&tag=team=web", {"A"}),
        ("tag=env=prod&tag=team=data", set()),
        ("q=openssl", {"C"}),
        ("q=OPENSSL", {"C"}),
        ("q=100%25", set()),
        ("status=open", {"A", "B", "C", "D", "E", "F"}),
        ("status=resolved", set()),
    ],
)
def test_filters(client: Any, seeded: dict[str, str], query: str, expected: set[str]) -> None:
    assert set(types(client.get(f"/v1/findings?{query}"))) == expected


def test_status_and_since_filters(client: Any, seeded: dict[str, str]) -> None:
    client.patch(f"/v1/findings/{seeded['B']}", json={"status": "acknowledged"})
    assert set(types(client.get("/v1/findings?status=acknowledged"))) == {"B"}
    assert set(types(client.get("/v1/findings?status=open,acknowledged"))) == set(seeded)
    assert types(client.get("/v1/findings?since=2999-01-01T00:00:00Z")) == []
    assert len(types(client.get("/v1/findings?since=2000-01-01T00:00:00Z"))) == 6


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("severity_min=severe", "severity_min"),
        ("status=closed", "status"),
        ("sort=title", "sort"),
        ("tag=novalue", "tag"),
        ("cursor=garbage!!", "cursor"),
        ("limit=0", "limit"),
    ],
)
def test_bad_query_names_the_parameter(client: Any, query: str, field: str) -> None:
    resp = client.get(f"/v1/findings?{query}")
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == field


@pytest.mark.parametrize("sort", ["-score", "-last_seen", "first_seen"])
def test_cursor_pages_cover_everything_once(client: Any, sort: str) -> None:
    post(client, *[finding(type=f"T{i}", severity=i % 100) for i in range(57)])
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 10, "sort": sort} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/findings", params=params).json()
        seen.extend(item["id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 57 and len(set(seen)) == 57


def test_cursor_is_stable_while_new_findings_arrive(client: Any) -> None:
    post(client, *[finding(type=f"T{i}", severity=10 + i) for i in range(20)])
    first = client.get("/v1/findings", params={"limit": 10}).json()
    # Higher-scoring findings arrive between the pages: they must not shift the second page.
    post(client, *[finding(type=f"NEW{i}", severity="critical") for i in range(5)])
    second = client.get("/v1/findings", params={"limit": 10, "cursor": first["next_cursor"]}).json()
    ids = [i["id"] for i in first["items"]] + [i["id"] for i in second["items"]]
    assert len(set(ids)) == 20
    assert not any(item["type"].startswith("NEW") for item in second["items"])


def test_cursor_must_match_sort(client: Any) -> None:
    post(client, *[finding(type=f"T{i}") for i in range(3)])
    cursor = client.get("/v1/findings", params={"limit": 1}).json()["next_cursor"]
    resp = client.get("/v1/findings", params={"limit": 1, "cursor": cursor, "sort": "-last_seen"})
    assert resp.status_code == 422
    assert "sort" in resp.json()["detail"]


def test_detail_has_breakdown_aliases_history(client: Any, seeded: dict[str, str]) -> None:
    detail = client.get(f"/v1/findings/{seeded['A']}").json()
    assert detail["occurrences"] == 1
    assert detail["aliases"] == ["guardduty:g1"]
    assert detail["events"][0]["kind"] == "created"
    assert detail["event_count"] == 1
    factors = {f["name"]: f for f in detail["score_breakdown"]["factors"]}
    assert set(factors) == {"exposure", "environment", "data_sensitivity", "confidence", "recurrence"}
    assert factors["exposure"]["value"] > 1 and "public" in factors["exposure"]["reason"]
    assert factors["environment"]["reason"] == "tag env=prod"
    assert detail["score_breakdown"]["score"] == detail["score"]
    assert detail["raw"]["source_id"] == "g1"  # without its own raw, the posted finding is kept verbatim


def test_unknown_finding_is_404(client: Any) -> None:
    resp = client.get("/v1/findings/doesnotexist")
    assert resp.status_code == 404
    assert "doesnotexist" in resp.json()["detail"]


def test_stats(client: Any, seeded: dict[str, str]) -> None:
    client.patch(f"/v1/findings/{seeded['E']}", json={"status": "false_positive", "note": "test image"})
    stats = client.get("/v1/stats").json()
    assert stats["total"] == 6
    assert stats["by_status"] == {"open": 5, "false_positive": 1}
    assert stats["by_severity"] == {"critical": 1, "high": 2, "medium": 1, "low": 1, "informational": 1}
    assert stats["by_source"] == {"guardduty": 1, "securityhub": 1, "trivy": 3, "semgrep": 1}
