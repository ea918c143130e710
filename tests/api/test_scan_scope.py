"""Scan scopes: a complete re-scan resolves what it no longer reports; findings that return regress."""

from __future__ import annotations

from typing import Any

from tests.integrations._trivy_docs import os_result, report, vuln
from tests.samples import SCANNERS


def trivy(*cves: str) -> dict[str, Any]:
    return report(os_result(*[vuln(VulnerabilityID=cve, PkgName=f"pkg-{cve}") for cve in cves]))


def scan(client: Any, document: dict[str, Any], **params: Any) -> dict[str, Any]:
    resp = client.post("/v1/ingest/trivy", json=document, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def statuses(client: Any) -> dict[str, str]:
    items = client.get("/v1/findings", params={"limit": 500}).json()["items"]
    return {item["type"]: item["status"] for item in items}


SCOPE = {"scope": "image:registry.example.com/shop/api", "complete": "true"}


def test_complete_rescan_resolves_what_is_gone_and_regresses_what_returns(client: Any) -> None:
    scan(client, trivy("CVE-1", "CVE-2", "CVE-3"), **SCOPE)
    second = scan(client, trivy("CVE-1", "CVE-2"), **SCOPE)
    assert second["resolved"] == 1
    assert statuses(client) == {"CVE-1": "open", "CVE-2": "open", "CVE-3": "resolved"}
    gone = next(i for i in client.get("/v1/findings").json()["items"] if i["type"] == "CVE-3")
    assert client.get(f"/v1/findings/{gone['id']}").json()["events"][0]["kind"] == "resolved_by_rescan"
    third = scan(client, trivy("CVE-1", "CVE-2", "CVE-3"), **SCOPE)
    assert third["resolved"] == 0
    assert statuses(client)["CVE-3"] == "open"
    assert client.get(f"/v1/findings/{gone['id']}").json()["events"][0]["kind"] == "regressed"


def test_partial_report_never_resolves(client: Any) -> None:
    scan(client, trivy("CVE-1", "CVE-2"), scope=SCOPE["scope"])
    body = scan(client, trivy("CVE-1"), scope=SCOPE["scope"])  # complete defaults to false
    assert body["resolved"] == 0
    assert statuses(client) == {"CVE-1": "open", "CVE-2": "open"}


def test_empty_complete_report_resolves_the_whole_scope(client: Any) -> None:
    scan(client, trivy("CVE-1", "CVE-2"), **SCOPE)
    body = scan(client, report(), **SCOPE)
    assert (body["accepted"], body["resolved"]) == (0, 2)
    assert set(statuses(client).values()) == {"resolved"}


def test_other_scopes_are_left_alone(client: Any) -> None:
    scan(client, trivy("CVE-1"), **SCOPE)
    other = report(
        os_result(
            vuln(VulnerabilityID="CVE-9", PkgName="x"), target="registry.example.com/shop/web:2 (debian 12.5)"
        ),
        ArtifactName="registry.example.com/shop/web:2",
    )
    scan(client, other, scope="image:registry.example.com/shop/web", complete="true")
    scan(client, report(), scope="image:registry.example.com/shop/web", complete="true")
    assert statuses(client) == {"CVE-1": "open", "CVE-9": "resolved"}


def test_triaged_findings_are_not_reopened_or_resolved_by_a_rescan(client: Any) -> None:
    first = scan(client, trivy("CVE-1", "CVE-2"), **SCOPE)
    fp = first["results"][1]["id"]
    client.patch(f"/v1/findings/{fp}", json={"status": "false_positive", "note": "not reachable"})
    scan(client, trivy("CVE-1"), **SCOPE)
    assert client.get(f"/v1/findings/{fp}").json()["status"] == "false_positive"


def test_complete_needs_a_scope(client: Any) -> None:
    resp = client.post("/v1/ingest/trivy", json=trivy("CVE-1"), params={"complete": "true"})
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "complete"
    assert client.get("/v1/stats").json()["total"] == 0


def test_a_scan_sent_in_parts_resolves_only_what_no_part_reported(client: Any) -> None:
    scan(client, trivy("CVE-1", "CVE-2", "CVE-3"), **SCOPE)
    parts = {"scope": SCOPE["scope"], "scan": "ci-run-42"}
    scan(client, trivy("CVE-1"), **parts)
    last = scan(client, trivy("CVE-2"), **parts, complete="true")
    assert last["resolved"] == 1
    assert statuses(client) == {"CVE-1": "open", "CVE-2": "open", "CVE-3": "resolved"}
    bad = client.post("/v1/ingest/trivy", json=trivy("CVE-1"), params={"scan": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "scan"


def test_an_empty_json_lines_report_is_an_empty_scan(client: Any) -> None:
    """TruffleHog prints nothing when it finds nothing: with complete=true that resolves the scope."""
    line = (SCANNERS / "trufflehog" / "v3_git.json").read_bytes()
    params = {"scope": "repo:acme/api@main", "complete": "true"}
    first = client.post("/v1/ingest/trufflehog", content=line, params=params)
    assert first.status_code == 200 and first.json()["created"] >= 1
    empty = client.post("/v1/ingest/trufflehog", content=b"", params=params)
    assert empty.status_code == 200, empty.text
    assert empty.json()["resolved"] == first.json()["created"]
    assert client.post("/v1/ingest/trivy", content=b"").status_code == 422  # not a line-oriented format


def _gitleaks(path: str) -> bytes:
    import json

    leak = {"RuleID": "generic-api-key", "Secret": "s3cr3t-value-0123456789", "File": path, "StartLine": 3}
    return json.dumps([leak]).encode()


def test_a_repo_scope_places_path_only_findings_in_its_repository(client: Any) -> None:
    def post(scope: str) -> dict[str, Any]:
        resp = client.post(
            "/v1/ingest/gitleaks",
            content=_gitleaks("config/.env"),
            params={"scope": scope},
            headers={"content-type": "application/json"},
        )
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    assert post("repo:acme/api@main")["created"] == 1
    assert post("repo:acme/web@main")["created"] == 1  # the same path in another repository
    assert post("repo:acme/api@release")["unchanged"] == 1  # the branch is not part of the identity
    repositories = sorted(
        client.get(f"/v1/findings/{item['id']}").json()["location"]["repository"]
        for item in client.get("/v1/findings").json()["items"]
    )
    assert repositories == ["acme/api", "acme/web"]
